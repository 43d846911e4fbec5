"""A store's card-testing thresholds and their defaults: plain data, so the CLI can name its options
without loading the risk step (and the database code behind it) for every command."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Thresholds:
    """When signals turn into a challenge or a refusal; a store may set its own (``risk_thresholds``)."""

    attack_decline_percent: int = 50  # a store's declines among its last attempts the processor or we judged
    attack_min_attempts: int = 20  # ... the last this many (in ATTACK_WINDOW), once there are this many
    attack_attempts_per_minute: int = 60  # or this many card attempts in the last minute
    card_declines: int = 2  # a card declined this often in an hour is refused (once, under attack)
    address_declines: int = 3  # declines on other payments from one client address: refused (challenged from one)
    network_declines: int = 6  # declines on other payments from one /24 or /64: refused (challenged from one)
    payment_cards: int = 3  # distinct cards tried on one payment
    order_cards: int = 4  # distinct cards tried on one order, over all its payments
    card_stores: int = 3  # stores one card was tried at in an hour


DEFAULTS = Thresholds()
THRESHOLD_NAMES = tuple(f.name for f in fields(Thresholds))
