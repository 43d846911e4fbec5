"""The risk step between the card form and the processor: stop card testers before they cost a fee.

Each card attempt is judged on what the gateway saw of earlier ones (``risk_signals``, counted over
sliding windows) and ends as allow, challenge (a proof of work the shopper's browser solves first)
or refuse (the shopper sees an ordinary decline; nothing reaches the processor). A store whose
decline ratio or attempt rate passes its threshold is *under attack*: every attempt there must
solve a challenge, and a card, address or network declined once on another payment (or a payment
tried from a second address) is refused, until the windows pass.
Cards are known only by a keyed fingerprint (HMAC-SHA256), never by their number.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import statistics
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, bindparam, case, func, or_, select, true
from sqlalchemy.orm import Session

from .. import prepared as driver
from ..cards import Card
from ..db import Database
from ..memo import Recent, memory_of
from ..models import Payment, RiskOutcome, RiskSignal, RiskThresholds, one_of, utcnow
from ..observability import events
from ..services import Services
from .thresholds import DEFAULTS as DEFAULTS
from .thresholds import THRESHOLD_NAMES as THRESHOLD_NAMES
from .thresholds import Thresholds as Thresholds

SIGNAL_WINDOW = timedelta(hours=1)  # card, address, network, payment and order signals
ATTACK_WINDOW = timedelta(minutes=10)  # a store's decline ratio
RATE_WINDOW = timedelta(minutes=1)  # a store's attempt rate
UNCAPPED = 2**31 - 1  # the attempts of a store's last minute, all counted (an operator's status, not a decision)
FINGERPRINT_LABEL = b"card-fingerprint"
# Decline reasons that mark testing: the number, its CVC or the card itself is what is being probed.
TESTING_REASONS = ("invalid_number", "incorrect_cvc", "do_not_honor", "stolen_card", "card_declined")
DECLINED_OUTCOMES = (RiskOutcome.DECLINED, RiskOutcome.REFUSED)
ALLOW, CHALLENGE, REFUSE = "allow", "challenge", "refuse"




@dataclass(frozen=True)
class Signals:
    """What the windows hold about this attempt's card, client, payment, order and store."""

    card_declines: int = 0
    card_stores: int = 0
    address_declines: int = 0
    network_declines: int = 0
    network_testing_declines: int = 0
    payment_cards: int = 1
    order_cards: int = 1
    payment_addresses: int = 0  # other client addresses this payment's attempts came from
    store_judged: int = 0
    store_declines: int = 0
    store_attempts_last_minute: int = 0


@dataclass(frozen=True)
class Decision:
    kind: str  # allow, challenge or refuse
    reasons: tuple[str, ...]
    fingerprint: str = ""
    address: str = ""


def card_fingerprint(secret_key: str, number: str) -> str:
    """The card's keyed fingerprint: equal for equal numbers, and useless without GATEWAY_SECRET_KEY."""
    key = hmac.new(secret_key.encode(), FINGERPRINT_LABEL, hashlib.sha256).digest()
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


def network_of(address: str) -> str:
    """The /24 an IPv4 client is in; an IPv6 client already comes as its /64 (web.limits.client_address)."""
    try:
        return str(ipaddress.ip_network(f"{address}/24", strict=False))
    except ValueError:
        return address


def thresholds(services: Services, store_key: str) -> Thresholds:
    """A store's thresholds, remembered per worker for THRESHOLDS_SECONDS (one query fewer per card
    attempt): a change shows at once in the worker that saved it and within that time in the others."""
    recent = memory_of(_RECENT_THRESHOLDS, services.db, THRESHOLDS_CACHED, THRESHOLDS_SECONDS)
    return recent.get_or_make(store_key, lambda: _read_thresholds(services, store_key))


def _read_thresholds(services: Services, store_key: str) -> Thresholds:
    with services.db.read() as session:
        row = session.get(RiskThresholds, store_key)
        return DEFAULTS if row is None else Thresholds(**{name: getattr(row, name) for name in THRESHOLD_NAMES})


THRESHOLDS_SECONDS = 10.0
THRESHOLDS_CACHED = 1024
_RECENT_THRESHOLDS: WeakKeyDictionary[Database, Recent[str, Thresholds]] = WeakKeyDictionary()


def set_thresholds(services: Services, store_key: str, actor: str, **changes: int) -> Thresholds:
    """Store a store's thresholds: the ones given, the others as they were. Raises ValueError on a bad value."""
    chosen = replace(_read_thresholds(services, store_key), **changes)
    if not 1 <= chosen.attack_decline_percent <= 100 or min(getattr(chosen, n) for n in THRESHOLD_NAMES) < 1:
        raise ValueError("thresholds are whole numbers of at least 1, and the decline percent at most 100")
    with services.db.transaction() as session:
        row = session.get(RiskThresholds, store_key) or RiskThresholds(store_key=store_key)
        for name in THRESHOLD_NAMES:
            setattr(row, name, getattr(chosen, name))
        row.updated_by = actor
        session.add(row)
    recent = _RECENT_THRESHOLDS.get(services.db)
    if recent is not None:
        recent.forget(store_key)  # once committed: this worker applies the change at once
    return chosen


def assess(services: Services, payment: Payment, card: Card, client_address: str, solution_ok: bool | None) -> Decision:
    """Judge one card attempt before it is claimed; the decision is on the payment's timeline.

    ``solution_ok`` is None when no challenge was posted, else whether the posted one was solved."""
    fingerprint = card_fingerprint(services.settings.secret_key, card.number)
    limits = thresholds(services, payment.store_key)
    found = signals(services, payment, fingerprint, client_address, limits)
    kind, reasons = decide(found, limits, solution_ok)
    decision = Decision(kind, reasons, fingerprint, client_address)
    if kind == CHALLENGE:
        remember(services, payment, decision, RiskOutcome.CHALLENGED)
    events.risk_decision(services.db, payment.id, kind, reasons, under_attack(found, limits), payment.store_key)
    return decision


def needs_challenge(services: Services, payment: Payment, client_address: str) -> bool:
    """Whether the page should show the challenge before the shopper submits a card."""
    limits = thresholds(services, payment.store_key)
    return bool(_challenge_reasons(signals(services, payment, "", client_address, limits), limits))


def decide(found: Signals, limits: Thresholds, solution_ok: bool | None) -> tuple[str, tuple[str, ...]]:
    """A challenge comes first (nothing is learnt without paying for it), then a refusal, else allow."""
    challenge = _challenge_reasons(found, limits)
    if challenge and not solution_ok:
        return CHALLENGE, challenge
    solved = ("challenge_solved",) if challenge else ()
    refuse = _refusal_reasons(found, limits)
    if refuse:
        return REFUSE, refuse + solved
    return ALLOW, challenge + solved


def under_attack(found: Signals, limits: Thresholds) -> bool:
    ratio_past = (found.store_judged >= limits.attack_min_attempts
                  and found.store_declines * 100 >= limits.attack_decline_percent * found.store_judged)
    return ratio_past or found.store_attempts_last_minute >= limits.attack_attempts_per_minute


def _challenge_reasons(found: Signals, limits: Thresholds) -> tuple[str, ...]:
    checks = (
        ("store_under_attack", under_attack(found, limits)),
        ("address_declines", found.address_declines >= 1),
        ("network_declines", found.network_declines >= 1),
        ("network_testing_declines", found.network_testing_declines >= 1),
        ("payment_addresses", found.payment_addresses >= 1),
    )
    return tuple(reason for reason, hit in checks if hit)


def _refusal_reasons(found: Signals, limits: Thresholds) -> tuple[str, ...]:
    attack = under_attack(found, limits)
    checks = (
        ("card_declines", found.card_declines >= (1 if attack else limits.card_declines)),
        ("card_stores", found.card_stores >= limits.card_stores),
        ("address_declines", found.address_declines >= (1 if attack else limits.address_declines)),
        ("network_declines", found.network_declines >= (1 if attack else limits.network_declines)),
        ("payment_addresses", attack and found.payment_addresses >= 1),
        ("payment_cards", found.payment_cards >= limits.payment_cards),
        ("order_cards", found.order_cards >= limits.order_cards),
    )
    return tuple(reason for reason, hit in checks if hit)


def signals(services: Services, payment: Payment, fingerprint: str, client_address: str, limits: Thresholds) -> Signals:
    """This attempt's card, client, payment and order over SIGNAL_WINDOW, and its store's recent attempts:
    one read (two single-row aggregates side by side), built once, that takes no write lock."""
    now = utcnow()
    values = {"fingerprint": fingerprint, "store_key": payment.store_key, "orderid": payment.orderid,
              "payment_id": payment.id, "address": client_address, "network": network_of(client_address),
              "since": now - SIGNAL_WINDOW, "sample": limits.attack_min_attempts,
              "attack_since": now - ATTACK_WINDOW, "minute_since": now - RATE_WINDOW,
              "minute_cap": limits.attack_attempts_per_minute}
    (card_declines, card_stores, address_declines, network_declines, testing, payment_cards, order_cards,
     payment_addresses, judged, declines, last_minute) = (int(value) for value in services.db.row(_SIGNALS, values))
    new_card = 1 if fingerprint else 0
    if not identifies_a_client(client_address):
        address_declines = network_declines = testing = payment_addresses = 0
    return Signals(card_declines, card_stores + new_card, address_declines, network_declines, testing,
                   payment_cards + new_card, order_cards + new_card, payment_addresses, judged, declines, last_minute)


def identifies_a_client(address: str) -> bool:
    """A loopback address is this machine (development, or a proxy on the same host without
    GATEWAY_TRUSTED_PROXIES): every shopper would share it, so it is no signal about any one of them."""
    try:
        return not ipaddress.ip_network(address, strict=False).network_address.is_loopback
    except ValueError:
        return bool(address)


_DECLINED = one_of(RiskSignal.outcome, DECLINED_OUTCOMES)
_JUDGED = RiskSignal.outcome != RiskOutcome.CHALLENGED


def _count(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)


def _distinct(value: SQLColumnExpression[str], *conditions: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count(func.distinct(case((and_(*conditions), value))))


def _around() -> Select[*tuple[Any, ...]]:
    same_card = RiskSignal.card_fingerprint == bindparam("fingerprint")
    same_order = and_(RiskSignal.store_key == bindparam("store_key"), RiskSignal.orderid == bindparam("orderid"))
    this_payment = RiskSignal.payment_id == bindparam("payment_id")
    other_card = RiskSignal.card_fingerprint != bindparam("fingerprint")
    elsewhere = RiskSignal.payment_id != bindparam("payment_id")  # a shopper retrying on their own payment is not a tester
    same_network = RiskSignal.network == bindparam("network")
    return select(
        _count(same_card, _DECLINED), _distinct(RiskSignal.store_key, same_card, RiskSignal.store_key != bindparam("store_key")),
        _count(RiskSignal.address == bindparam("address"), _DECLINED, elsewhere),
        _count(same_network, _DECLINED, elsewhere),
        _count(same_network, _DECLINED, elsewhere, one_of(RiskSignal.reason, TESTING_REASONS)),
        _distinct(RiskSignal.card_fingerprint, this_payment, other_card, _JUDGED),
        _distinct(RiskSignal.card_fingerprint, same_order, other_card, _JUDGED),
        _distinct(RiskSignal.address, this_payment, RiskSignal.address != bindparam("address")),
    ).where(RiskSignal.at >= bindparam("since"), or_(same_card, same_network, this_payment, same_order))


def _store_counts() -> Select[*tuple[Any, ...]]:
    """The store's last ``sample`` judged attempts in ATTACK_WINDOW (how many, how many declined), and its
    attempts in the last minute, up to ``minute_cap``: the ratio follows an attack within a few attempts,
    whatever came before, and neither count reads more of a busy store's attempts than it needs."""
    recent = (select(RiskSignal.outcome).where(RiskSignal.store_key == bindparam("store_key"),
                                               RiskSignal.at >= bindparam("attack_since"), _JUDGED)
              .order_by(RiskSignal.id.desc()).limit(bindparam("sample")).subquery())
    minute = (select(RiskSignal.id).where(RiskSignal.store_key == bindparam("store_key"), RiskSignal.at >= bindparam("minute_since"))
              .limit(bindparam("minute_cap")).subquery())  # counting stops where the answer cannot change
    last_minute = select(func.count()).select_from(minute).scalar_subquery()
    return select(func.count(), _count(one_of(recent.c.outcome, DECLINED_OUTCOMES)), last_minute).select_from(recent)


def _store_numbers(session: Session, values: dict[str, Any]) -> tuple[int, int, int]:
    judged, declines, last_minute = session.execute(_STORE_COUNTS, values).one()
    return int(judged), int(declines), int(last_minute)


# Built once: constructing them anew cost more CPU than running them (a tenth of a pay submission).
_STORE_COUNTS = _store_counts()
_SIGNALS = driver.hot((lambda around, store: select(*around.c, *store.c).select_from(around.join(store, true())))(
    _around().subquery(), _STORE_COUNTS.subquery()))  # two one-row aggregates, side by side


def remember(services: Services, payment: Payment, decision: Decision, outcome: RiskOutcome, reason: str = "") -> None:
    """Add this attempt's end to the windows (one statement, built once)."""
    with services.db.one_statement() as session:
        record(session, signal(payment, decision, outcome, reason))


def signal(payment: Payment, decision: Decision, outcome: RiskOutcome, reason: str = "") -> dict[str, Any]:
    """This attempt's end as a row of the windows, for a caller that writes it in its own transaction."""
    return {"at": utcnow(), "store_key": payment.store_key, "payment_id": payment.id, "orderid": payment.orderid,
            "card_fingerprint": decision.fingerprint, "address": decision.address,
            "network": network_of(decision.address), "outcome": outcome, "reason": reason[:64]}


def record(session: Session, row: dict[str, Any]) -> None:
    """Write an attempt's end (``signal``) inside the session's transaction."""
    driver.run(session.connection(), REMEMBER, row)


REMEMBER = driver.insert_of(RiskSignal, ("at", "store_key", "payment_id", "orderid", "card_fingerprint", "address", "network",
                                          "outcome", "reason"))


_SALE_SECONDS: deque[float] = deque(maxlen=64)


def observe_sale(seconds: float) -> None:
    """How long the processor took to answer a sale, so a refusal can take as long."""
    _SALE_SECONDS.append(seconds)


def wait_like_a_sale() -> None:
    """A refusal answers after the processor's typical (median) answer time, so timing tells nothing."""
    if _SALE_SECONDS:
        time.sleep(statistics.median(_SALE_SECONDS))


@dataclass(frozen=True)
class StoreStatus:
    store_key: str
    judged: int
    declines: int
    attempts_last_minute: int
    under_attack: bool


def store_status(services: Services) -> list[StoreStatus]:
    """Every store with card attempts in ATTACK_WINDOW, and whether it is under attack now."""
    now = utcnow()
    statuses = []
    with services.db.transaction() as session:
        keys = session.scalars(select(RiskSignal.store_key).where(RiskSignal.at >= now - ATTACK_WINDOW)
                               .group_by(RiskSignal.store_key).order_by(RiskSignal.store_key)).all()
    for store_key in keys:
        limits = thresholds(services, store_key)
        values = {"store_key": store_key, "sample": limits.attack_min_attempts, "attack_since": now - ATTACK_WINDOW,
                  "minute_since": now - RATE_WINDOW, "minute_cap": UNCAPPED}
        with services.db.read() as session:
            judged, declines, last_minute = _store_numbers(session, values)
        found = Signals(store_judged=judged, store_declines=declines, store_attempts_last_minute=last_minute)
        statuses.append(StoreStatus(store_key, judged, declines, last_minute, under_attack(found, limits)))
    return statuses
