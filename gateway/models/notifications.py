"""The outbox of CompleteOrderRequests to the store, and the log of each delivery attempt."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, checked_enum, partial, utcnow

if TYPE_CHECKING:
    from .payments import Payment


class NotificationState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class Notification(Base):
    """The CompleteOrderRequest for a payment: an outbox row written with the payment outcome."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="ck_notifications_attempts"),
        CheckConstraint("lease >= 0", name="ck_notifications_lease"),
        # The worker's due list and the dead letters: a few rows among every notification ever sent.
        Index("ix_notifications_due", "next_attempt_at", **partial("state = 'pending'")),
        Index("ix_notifications_dead", "payment_id", **partial("state = 'dead'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[NotificationState] = mapped_column(
        checked_enum(NotificationState, "ck_notifications_state", 12), default=NotificationState.PENDING, index=True
    )
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

    payment: Mapped["Payment"] = relationship(back_populates="notification")
    attempt_log: Mapped[list["NotificationAttempt"]] = relationship(order_by="NotificationAttempt.id")


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # for retention
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    http_status: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    response_snippet: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
