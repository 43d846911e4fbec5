"""How shopper requests read a payment: statements built once, since every page view runs them.

Constructing a query and its cache key anew cost about a sixth of a lookup's CPU.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from .. import prepared as driver
from ..models import Notification, NotificationState, Payment, PaymentState, utcnow
from ..services import Services

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # secrets.token_urlsafe's alphabet
_BY_ID = select(Payment).options(joinedload(Payment.notification)).where(Payment.id == bindparam("id"))


def find_payment(services: Services, token: str) -> Payment | None:
    """The payment a shopper's token names, with its notification's id and state; None for a token that
    is not ours. Read as a page view's is (one Core statement, on the driver) and handed over unattached
    to any session, as the ORM's was once its session closed: loading it through the ORM cost a fifth of
    a pay submission's CPU."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None  # not one of ours (and never a NUL or a megabyte sent on to the database)
    row = services.db.lookup(_PAYMENT_BY_TOKEN, {"token": token})
    if row is None:
        return None
    notification_id, notification_state = row.pop("notification_id"), row.pop("notification_state")
    payment = Payment(**row)
    if notification_id is not None:
        payment.notification = Notification(id=notification_id, state=notification_state)
    return payment


def reload(services: Services, payment_id: int) -> Payment:
    with services.db.read() as session:
        return session.scalars(_BY_ID, {"id": payment_id}).one()


@dataclass(frozen=True, slots=True)
class PaymentView:
    """What the shopper's pages show of a payment. A page view reads it in one Core statement: the ORM's
    session, identity map and joined loading cost three times the query itself."""

    id: int
    token: str
    store_key: str
    invoice: str
    currency: str
    amount_total: int
    tax_total: int
    shipping_total: int
    discount: int
    items: list[dict[str, Any]]
    state: PaymentState
    attempt: int
    decline_count: int
    card_brand: str
    card_last4: str
    error_code: str
    test_mode: bool
    cancel_url: str
    return_url: str
    error_url: str
    expires_at: datetime
    notification_id: int | None
    notification_state: NotificationState | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentView:
        """The view of a payment the pay path has just loaded (with its notification)."""
        notification = payment.notification
        values = {name: getattr(payment, name) for name in _PAYMENT_FIELDS}
        return cls(**values, notification_id=None if notification is None else notification.id,
                   notification_state=None if notification is None else notification.state)


_PAYMENT_FIELDS = tuple(item.name for item in fields(PaymentView) if not item.name.startswith("notification_"))
_payments, _notifications = Payment.__table__, Notification.__table__
_VIEW_BY_TOKEN = driver.hot(select(*(_payments.c[name] for name in _PAYMENT_FIELDS), _notifications.c.id.label("notification_id"),
                         _notifications.c.state.label("notification_state"))
                  .select_from(_payments.outerjoin(_notifications))
                  .where(_payments.c.token == bindparam("token")))


def find_view(services: Services, token: str) -> PaymentView | None:
    """A page view's read: what the shopper sees of the payment a token names; None for one not ours."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    row = services.db.lookup(_VIEW_BY_TOKEN, {"token": token})
    return None if row is None else PaymentView(**row)


class Expiring(Protocol):
    @property
    def state(self) -> PaymentState: ...

    @property
    def expires_at(self) -> datetime: ...


def is_expired(payment: Expiring) -> bool:
    return payment.state == PaymentState.OPEN and payment.expires_at <= utcnow()


_PAYMENT_BY_TOKEN = driver.hot(select(*(column.label(name) for name, column in Payment.__mapper__.columns.items()),
                            _notifications.c.id.label("notification_id"), _notifications.c.state.label("notification_state"))
                     .select_from(_payments.outerjoin(_notifications))
                     .where(_payments.c.token == bindparam("token")))
