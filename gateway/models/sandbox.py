"""The sandbox processor's own book of charges."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class SandboxCharge(Base):
    """The sandbox processor's own book of charges, so voids and refunds survive a restart."""

    __tablename__ = "sandbox_charges"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_sandbox_charges_amount"),
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="ck_sandbox_charges_refunded"),
    )

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
