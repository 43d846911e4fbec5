"""Approved charges the store was never told of (their notification went dead): the explicit policy.

The money is captured but the store has no order. Such a payment is flagged at once, so an operator
can fix the store and requeue the notification; if nobody has within
``GATEWAY_UNCONFIRMED_CHARGE_HOURS``, the configured ``GATEWAY_UNCONFIRMED_CHARGE_ACTION`` applies:
``reverse`` (default) gives the shopper's money back as if the store had rejected the order;
``keep`` keeps the charge, erases the merchant credentials and leaves the payment flagged for the
merchant to settle with the shopper by hand.
"""
from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import select

from ..models import Notification, NotificationState, Payment, PaymentState, utcnow
from ..services import Services
from . import attention
from .reversal import reverse_rejected_charge
from .states import PAYMENTS

STORE_UNREACHABLE = "store_unreachable"


def settle_unconfirmed_charges(services: Services) -> int:
    """Flag newly dead confirmations, and apply the policy to those flagged longer than the deadline."""
    deadline = utcnow() - timedelta(hours=services.settings.unconfirmed_charge_hours)
    with services.db.transaction() as session:
        rows = session.execute(
            select(Payment.id, Payment.attention_at, Notification.id)
            .join(Notification, Notification.payment_id == Payment.id)
            .where(
                Payment.state == PaymentState.APPROVED,
                Notification.state == NotificationState.DEAD,
                Payment.credentials_sealed.is_not(None),
            )
        ).all()
    acted = 0
    for payment_id, flagged_at, notification_id in rows:
        if flagged_at is None:
            with services.db.transaction() as session:
                attention.flag(session, payment_id, _reason(services, notification_id))
        elif flagged_at <= deadline:
            policy = partial(apply_policy, services, payment_id, services.settings.unconfirmed_charge_action)
            acted += attention.isolated(services, payment_id, "the unconfirmed-charge policy", policy)
    return acted


def apply_policy(services: Services, payment_id: int, action: str, note: str = "") -> bool:
    """Reverse or keep an approved charge the store never confirmed; False if it is no longer approved."""
    why = note or f"the store never confirmed the order within {services.settings.unconfirmed_charge_hours:g} hours"
    with services.db.transaction() as session:
        if action == "reverse":
            moved = PAYMENTS.move(session, payment_id, PaymentState.APPROVED, PaymentState.REJECTED,
                                  error_code=STORE_UNREACHABLE, error_message=f"charge reversed: {why}"[:2000])
        else:
            payment = session.get(Payment, payment_id, populate_existing=True)
            moved = payment is not None and payment.state == PaymentState.APPROVED
            if payment is not None and moved:
                attention.flag(session, payment_id, f"charge kept although {why}: tell the store of the order by hand")
                payment.credentials_sealed = None
    if moved and action == "reverse":
        reverse_rejected_charge(services, payment_id)
    return moved


def _reason(services: Services, notification_id: int) -> str:
    hours = services.settings.unconfirmed_charge_hours
    action = "reversed" if services.settings.unconfirmed_charge_action == "reverse" else "kept"
    return (f"charged, but the store was never told (notification {notification_id} is dead): fix the store and "
            f"requeue it, or the charge is {action} after {hours:g} hours")
