"""The randomkeys signed requests have used, so each request is accepted once."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, checked_enum, utcnow


class Endpoint(StrEnum):
    """The signed endpoints of the platform's protocol."""

    CHECKOUT = "checkout"
    POST_ORDER = "post-order"


class SeenRequest(Base):
    """Every randomkey a signed request from the platform has used: each is accepted once.

    The protocol's md5 signature covers only a few fields and carries no time, so a captured
    request could otherwise be sent again, or with its unsigned fields changed, forever.
    """

    __tablename__ = "seen_requests"
    # Retention deletes old checkout records along it (post-order records are kept forever).
    __table_args__ = (Index("ix_seen_requests_endpoint_created_at", "endpoint", "created_at"),)

    randomkey: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[Endpoint] = mapped_column(checked_enum(Endpoint, "ck_seen_requests_endpoint", 16))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
