"""The audit log: every operator action, written with the change it describes."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..models.console import AuditRecord


def record(session: Session, actor: str, action: str, target: str = "", reason: str = "", outcome: str = "",
           **details: Any) -> AuditRecord:
    """Add one audit row inside the caller's transaction, so the action and its record commit together."""
    row = AuditRecord(at=utcnow(), actor=actor[:120], action=action, target=target[:255], reason=reason,
                      outcome=outcome[:255], details=details)
    session.add(row)
    session.flush()
    return row


def recent(session: Session, limit: int = 200, actor: str = "", action: str = "") -> list[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditRecord.actor == actor)
    if action:
        query = query.where(AuditRecord.action == action)
    return list(session.scalars(query))
