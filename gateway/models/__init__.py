"""Tables of the gateway, one module per subject; every public name is re-exported here.

Money is always an integer number of minor units. Nothing in this package imports from the rest
of the gateway, so any module may import the tables without a cycle."""
from __future__ import annotations

from .base import Base, UTCDateTime, checked_enum, one_of, utcnow
from .console import OPERATOR, ROLES, VIEWER, AuditRecord, ConsoleAccount, ConsoleSignIn, LoginFailure, PaymentEvent, Role
from .notifications import Notification, NotificationAttempt, NotificationState
from .payments import (
    PAID_STATES,
    Charge,
    LedgerEntry,
    LedgerKind,
    LedgerOutcome,
    Payment,
    PaymentState,
    PostOrderRequest,
    PostOrderState,
)
from .replay import Endpoint, SeenRequest
from .risk import RiskOutcome, RiskSignal, RiskThresholds
from .sandbox import SandboxCharge
from .stores import StoreProfile

__all__ = [
    "one_of",
    "OPERATOR", "PAID_STATES", "ROLES", "VIEWER",
    "AuditRecord", "Base", "ConsoleAccount", "ConsoleSignIn", "Endpoint", "LedgerEntry", "LedgerKind",
    "LedgerOutcome", "LoginFailure", "Notification", "NotificationAttempt", "NotificationState",
    "PaymentEvent", "Payment", "PostOrderRequest", "PostOrderState", "RiskOutcome", "RiskSignal",
    "RiskThresholds", "Role", "SandboxCharge",
    "SeenRequest", "PaymentState", "StoreProfile", "Charge", "UTCDateTime", "checked_enum", "utcnow",
]
