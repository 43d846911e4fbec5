"""Tables of the gateway. Money is always an integer number of minor units."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class SessionState(str, Enum):
    OPEN = "open"  # waiting for the shopper's card
    AUTHORIZING = "authorizing"  # one charge attempt is in flight; nobody else may start one
    APPROVED = "approved"  # charged; the store has not yet confirmed the order
    COMPLETED = "completed"  # the store answered processed=1
    REJECTED = "rejected"  # the store answered processed=0; the charge is voided
    FAILED = "failed"  # too many declines; the store was told approved=0
    CANCELLED = "cancelled"  # the shopper went back to the store


PAID_STATES = (SessionState.APPROVED.value, SessionState.COMPLETED.value)


class LedgerOutcome(str, Enum):
    PENDING = "pending"  # reserved; the processor call is (or was, if its process died) in flight
    APPROVED = "approved"
    DECLINED = "declined"
    UNKNOWN = "unknown"  # nobody knows whether the processor did it: holds its amount until resolved


class PostOrderState(str, Enum):
    PROCESSING = "processing"  # claimed by one request; a crashed claim is taken over once stale
    ANSWERED = "answered"


class PaymentSession(Base):
    """One CheckoutRequest and the shopper's way through the hosted page."""

    __tablename__ = "payment_sessions"
    __table_args__ = (UniqueConstraint("store_key", "orderid", "randomkey", name="uq_session_request"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    store_key: Mapped[str] = mapped_column(String(255), index=True)
    orderid: Mapped[int] = mapped_column(BigInteger, index=True)
    invoice: Mapped[str] = mapped_column(String(64))
    randomkey: Mapped[str] = mapped_column(String(128), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_total: Mapped[int] = mapped_column(BigInteger)
    tax_total: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_total: Mapped[int] = mapped_column(BigInteger, default=0)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    email: Mapped[str] = mapped_column(String(254), default="")
    billing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    shipping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cancel_url: Mapped[str] = mapped_column(Text)
    error_url: Mapped[str] = mapped_column(Text)
    notification_url: Mapped[str] = mapped_column(Text)
    return_url: Mapped[str] = mapped_column(Text)
    credentials_sealed: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    credentials_fingerprint: Mapped[str] = mapped_column(String(64))
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20), default=SessionState.OPEN.value, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    decline_count: Mapped[int] = mapped_column(Integer, default=0)
    last_decline: Mapped[str] = mapped_column(Text, default="")
    card_brand: Mapped[str] = mapped_column(String(20), default="")
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    card_exp_month: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    card_exp_year: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    # Why the payment ended badly: the store's errorcode if it gave one, else ours; errorurl gets it.
    error_code: Mapped[str] = mapped_column(String(64), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    # Needs attention: why the gateway cannot finish this payment by itself ("" when it can).
    attention: Mapped[str] = mapped_column(Text, default="")
    attention_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    # Background work on this session failed `failures` times in a row; next try not before retry_at.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    transaction: Mapped[Optional["Transaction"]] = relationship(back_populates="session", uselist=False)
    notification: Mapped[Optional["Notification"]] = relationship(back_populates="session", uselist=False)


class Transaction(Base):
    """An approved charge at the processor; the store knows it by ``processor_txn_id``."""

    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("processor", "processor_txn_id", name="uq_transaction_processor_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("payment_sessions.id"), unique=True)
    processor: Mapped[str] = mapped_column(String(32))
    processor_txn_id: Mapped[str] = mapped_column(String(128), index=True)
    orderid: Mapped[int] = mapped_column(BigInteger)
    invoice: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    card_brand: Mapped[str] = mapped_column(String(20))
    card_last4: Mapped[str] = mapped_column(String(4))
    card_exp_month: Mapped[int] = mapped_column(Integer)
    card_exp_year: Mapped[int] = mapped_column(Integer)
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    credentials_fingerprint: Mapped[str] = mapped_column(String(64))
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[PaymentSession] = relationship(back_populates="transaction")
    ledger: Mapped[list["LedgerEntry"]] = relationship(back_populates="transaction", order_by="LedgerEntry.id")


class LedgerEntry(Base):
    """Every money movement on a transaction, successful or not."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # sale, void, refund
    amount: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(10))  # approved, declined, error
    processor_ref: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    request_key: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    # Needs attention: e.g. the processor's late answer contradicts an operator's resolution.
    attention: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    transaction: Mapped[Transaction] = relationship(back_populates="ledger")


class PostOrderRequest(Base):
    """A RefundRequest seen once, with the answer we gave, so a retry moves no money."""

    __tablename__ = "post_order_requests"
    __table_args__ = (UniqueConstraint("orderid", "randomkey", name="uq_post_order_request"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    orderid: Mapped[int] = mapped_column(BigInteger)
    randomkey: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12), default=PostOrderState.PROCESSING.value)
    response: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True, default=utcnow)


class NotificationState(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Notification(Base):
    """The CompleteOrderRequest for a session: an outbox row written with the payment outcome."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("payment_sessions.id"), unique=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), default=NotificationState.PENDING.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)
    # Fencing token: each claim increments it, and only the holder of the latest claim may write.
    lease: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)
    response_errorcode: Mapped[str] = mapped_column(String(64), default="")
    response_errormessage: Mapped[str] = mapped_column(Text, default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True)

    session: Mapped[PaymentSession] = relationship(back_populates="notification")
    attempt_log: Mapped[list["NotificationAttempt"]] = relationship(order_by="NotificationAttempt.id")


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    http_status: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    response_snippet: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")


class SandboxCharge(Base):
    """The sandbox processor's own book of charges, so voids and refunds survive a restart."""

    __tablename__ = "sandbox_charges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    card_brand: Mapped[str] = mapped_column(String(20))
    card_last4: Mapped[str] = mapped_column(String(4))
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    settles_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoreProfile(Base):
    """How a store is shown to its shoppers; stores are told apart by their notification host."""

    __tablename__ = "store_profiles"

    store_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(120))
    logo_url: Mapped[str] = mapped_column(Text, default="")
    support_email: Mapped[str] = mapped_column(String(254), default="")
    support_phone: Mapped[str] = mapped_column(String(40), default="")
    support_url: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SeenRequest(Base):
    """Every randomkey a signed request from the platform has used: each is accepted once.

    The protocol's md5 signature covers only a few fields and carries no time, so a captured
    request could otherwise be sent again, or with its unsigned fields changed, forever.
    """

    __tablename__ = "seen_requests"

    randomkey: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
from .console import models as _console_models  # noqa: E402,F401  (console tables, for Alembic and tests)
