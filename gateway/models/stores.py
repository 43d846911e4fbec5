"""How each store is shown to its shoppers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


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
