"""Tables of the operator console: accounts, their sessions, failed logins, the audit log and payment events."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, checked_enum, utcnow


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything, changes nothing
    OPERATOR = "operator"  # may also act on payments and accounts


VIEWER, OPERATOR = Role.VIEWER, Role.OPERATOR
ROLES = (VIEWER, OPERATOR)


class ConsoleAccount(Base):
    """A member of the provider's staff; the password is an argon2 hash, the TOTP secret is sealed."""

    __tablename__ = "console_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(checked_enum(Role, "ck_console_accounts_role", 10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_sealed: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConsoleSignIn(Base):
    """A signed-in browser; the cookie holds a random token whose hash is the key here."""

    __tablename__ = "console_sign_ins"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("console_accounts.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    notice: Mapped[str] = mapped_column(Text, default="")  # an action's outcome, shown once on the next page
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # for retention


class LoginFailure(Base):
    """One failed sign-in, counted per account and per address to lock out guessing across workers."""

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditRecord(Base):
    """Who did what, when and why; rows are only ever added (the database refuses UPDATE, DELETE and TRUNCATE)."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(255), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PaymentEvent(Base):
    """Something that happened to a payment session and is not kept elsewhere (page views, declines)."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # for retention
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


@event.listens_for(AuditRecord, "before_update")
@event.listens_for(AuditRecord, "before_delete")
def _append_only(*_args: Any) -> None:
    raise PermissionError("the audit log is append-only")
