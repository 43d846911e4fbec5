"""The payment itself: its state, its charge, every money movement on it, and post-order requests.

Money is always an integer number of minor units, and the database refuses an amount or a count
that cannot be right (see the ``ck_`` constraints), whatever code writes it."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, checked_enum, partial, utcnow

if TYPE_CHECKING:
    from .notifications import Notification


class PaymentState(StrEnum):
    OPEN = "open"  # waiting for the shopper's card
    AUTHORIZING = "authorizing"  # one charge attempt is in flight; nobody else may start one
    APPROVED = "approved"  # charged; the store has not yet confirmed the order
    COMPLETED = "completed"  # the store answered processed=1
    REJECTED = "rejected"  # the store answered processed=0; the charge is voided
    FAILED = "failed"  # too many declines; the store was told approved=0
    CANCELLED = "cancelled"  # the shopper went back to the store


PAID_STATES = (PaymentState.APPROVED, PaymentState.COMPLETED)
RESULT_CODE_MAX = 4  # a charge's AVS or CVV code: Authorize.Net's are one letter


class LedgerKind(StrEnum):
    SALE = "sale"  # the charge itself
    VOID = "void"
    REFUND = "refund"


class LedgerOutcome(StrEnum):
    PENDING = "pending"  # reserved; the processor call is (or was, if its process died) in flight
    APPROVED = "approved"
    DECLINED = "declined"
    UNKNOWN = "unknown"  # nobody knows whether the processor did it: holds its amount until resolved


class PostOrderState(StrEnum):
    PROCESSING = "processing"  # claimed by one request; a crashed claim is taken over once stale
    ANSWERED = "answered"


class Payment(Base):
    """One CheckoutRequest and the shopper's way through the hosted page."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("store_key", "orderid", "randomkey", name="uq_payment_request"),
        # The CheckoutRequest schema accepts amounttotal from 1: nothing is charged for nothing.
        CheckConstraint("amount_total > 0", name="ck_payments_amount_total"),
        CheckConstraint("tax_total >= 0", name="ck_payments_tax_total"),
        CheckConstraint("shipping_total >= 0", name="ck_payments_shipping_total"),
        CheckConstraint("discount >= 0", name="ck_payments_discount"),
        CheckConstraint("attempt >= 0", name="ck_payments_attempt"),
        CheckConstraint("decline_count >= 0", name="ck_payments_decline_count"),
        CheckConstraint("failures >= 0", name="ck_payments_failures"),
        # What operators and the worker look for is a few rows among years of history: partial indexes
        # hold only those, so each query costs what it returns (migration 0012).
        Index("ix_payments_attention", "attention_at", **partial("attention <> ''")),
        Index("ix_payments_sealed", "state", "expires_at", **partial("credentials_sealed IS NOT NULL")),
        # The console's search fields and its keyset order (newest first, then by id).
        Index("ix_payments_created_at_id", "created_at", "id"),
        Index("ix_payments_invoice", "invoice"),
        Index("ix_payments_amount_total", "amount_total"),
        Index("ix_payments_card_last4", "card_last4"),
        # A store's newest payments, and the store list's last payment of each (history.latest_payment_by_store).
        Index("ix_payments_store_key_created_at", "store_key", "created_at"),
        # The store is searched by the start of its key: LIKE 'prefix%' uses this whatever the collation.
        Index("ix_payments_store_key_prefix", "store_key", postgresql_ops={"store_key": "varchar_pattern_ops"}),
    )

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
    state: Mapped[PaymentState] = mapped_column(
        checked_enum(PaymentState, "ck_payments_state", 20), default=PaymentState.OPEN, index=True
    )
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

    charge: Mapped[Optional["Charge"]] = relationship(back_populates="payment", uselist=False)
    notification: Mapped[Optional["Notification"]] = relationship(back_populates="payment", uselist=False)


class Charge(Base):
    """An approved charge at the processor; the store knows it by ``processor_transaction_id``."""

    __tablename__ = "charges"
    __table_args__ = (
        UniqueConstraint("processor", "processor_transaction_id", name="uq_charge_processor_transaction_id"),
        CheckConstraint("amount > 0", name="ck_charges_amount"),
        # Never more refunded (or held for a refund) than was captured, whatever the code does.
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="ck_charges_refunded"),
        CheckConstraint(f"length(avs_result) <= {RESULT_CODE_MAX}", name="ck_charges_avs_result"),
        CheckConstraint(f"length(cvv_result) <= {RESULT_CODE_MAX}", name="ck_charges_cvv_result"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    processor: Mapped[str] = mapped_column(String(32))
    processor_transaction_id: Mapped[str] = mapped_column(String(128), index=True)
    orderid: Mapped[int] = mapped_column(BigInteger)
    invoice: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    # The sum of this charge's refund entries that hold money (pending, unknown or approved), kept in
    # step by gateway.payments.ledger in the same database transaction as every ledger move.
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    card_brand: Mapped[str] = mapped_column(String(20))
    card_last4: Mapped[str] = mapped_column(String(4))
    card_exp_month: Mapped[int] = mapped_column(Integer)
    card_exp_year: Mapped[int] = mapped_column(Integer)
    # The processor's address (AVS) and security-code (CVV) checks of the sale, as its codes; "" unknown.
    avs_result: Mapped[str] = mapped_column(String, default="", server_default="")
    cvv_result: Mapped[str] = mapped_column(String, default="", server_default="")
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    credentials_fingerprint: Mapped[str] = mapped_column(String(64))
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="charge")
    ledger: Mapped[list["LedgerEntry"]] = relationship(back_populates="charge", order_by="LedgerEntry.id")


class LedgerEntry(Base):
    """Every money movement on a charge, successful or not."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_ledger_entries_amount"),
        # The entries needing someone: unsettled, or contradicted after an operator's resolution.
        Index("ix_ledger_entries_unsettled", "charge_id",
              **partial("outcome IN ('pending', 'unknown') OR attention <> ''")),
        Index("ix_ledger_entries_request_key", "request_key", **partial("request_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"), index=True)
    kind: Mapped[LedgerKind] = mapped_column(checked_enum(LedgerKind, "ck_ledger_entries_kind", 10))
    amount: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[LedgerOutcome] = mapped_column(checked_enum(LedgerOutcome, "ck_ledger_entries_outcome", 10))
    processor_ref: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    request_key: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    # Needs attention: e.g. the processor's late answer contradicts an operator's resolution.
    attention: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    charge: Mapped[Charge] = relationship(back_populates="ledger")


class PostOrderRequest(Base):
    """A RefundRequest seen once, with the answer we gave, so a retry moves no money."""

    __tablename__ = "post_order_requests"
    __table_args__ = (
        UniqueConstraint("orderid", "randomkey", name="uq_post_order_request"),
        Index("ix_post_order_requests_processing", "claimed_at", **partial("state = 'processing'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    orderid: Mapped[int] = mapped_column(BigInteger)
    randomkey: Mapped[str] = mapped_column(String(128))
    state: Mapped[PostOrderState] = mapped_column(
        checked_enum(PostOrderState, "ck_post_order_requests_state", 12), default=PostOrderState.PROCESSING
    )
    response: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime, nullable=True, default=utcnow)
