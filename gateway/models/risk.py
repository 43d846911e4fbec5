"""What the risk step remembers: one row per card attempt it saw, and each store's own thresholds.

A signal row holds a keyed fingerprint of the card (never its number), the client's address and
network, and how the attempt ended; the risk step counts these rows over sliding windows."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, checked_enum, utcnow


class RiskOutcome(StrEnum):
    APPROVED = "approved"  # the processor charged the card
    DECLINED = "declined"  # the processor declined it
    UNKNOWN = "unknown"  # the processor's answer never came
    REFUSED = "refused"  # the risk step refused it: the shopper saw a decline
    CHALLENGED = "challenged"  # the risk step asked for a proof of work first: nothing was sent


class RiskSignal(Base):
    """One card attempt as the risk step saw it."""

    __tablename__ = "risk_signals"
    __table_args__ = (
        Index("ix_risk_signals_store_at", "store_key", "at"),
        # The risk read at every attempt: the store's newest attempts, newest first, and this order's
        # attempts, each without reading every attempt the store had in the window (a sale, an attack).
        Index("ix_risk_signals_store_id", "store_key", "id"),
        Index("ix_risk_signals_order_at", "store_key", "orderid", "at"),
        Index("ix_risk_signals_card_at", "card_fingerprint", "at"),
        Index("ix_risk_signals_network_at", "network", "at"),
        Index("ix_risk_signals_at", "at"),  # retention's deletes, oldest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    store_key: Mapped[str] = mapped_column(String(255))
    payment_id: Mapped[int] = mapped_column(Integer, index=True)
    orderid: Mapped[int] = mapped_column(BigInteger)
    card_fingerprint: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), index=True)
    network: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[RiskOutcome] = mapped_column(checked_enum(RiskOutcome, "ck_risk_signals_outcome", 12))
    reason: Mapped[str] = mapped_column(String(64), default="")  # the processor's decline code


class RiskThresholds(Base):
    """A store's own thresholds; a store without a row uses the defaults (gateway.payments.risk)."""

    __tablename__ = "risk_thresholds"
    __table_args__ = (
        CheckConstraint("attack_decline_percent BETWEEN 1 AND 100", name="ck_risk_thresholds_decline_percent"),
        CheckConstraint("attack_min_attempts >= 1 AND attack_attempts_per_minute >= 1 AND card_declines >= 1 "
                        "AND address_declines >= 1 AND network_declines >= 1 AND payment_cards >= 1 "
                        "AND order_cards >= 1 AND card_stores >= 1", name="ck_risk_thresholds_positive"),
    )

    store_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    attack_decline_percent: Mapped[int] = mapped_column(Integer)
    attack_min_attempts: Mapped[int] = mapped_column(Integer)
    attack_attempts_per_minute: Mapped[int] = mapped_column(Integer)
    card_declines: Mapped[int] = mapped_column(Integer)
    address_declines: Mapped[int] = mapped_column(Integer)
    network_declines: Mapped[int] = mapped_column(Integer)
    payment_cards: Mapped[int] = mapped_column(Integer)
    order_cards: Mapped[int] = mapped_column(Integer)
    card_stores: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
