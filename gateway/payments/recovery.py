"""Finishing what a crash left behind on the charging side, for the background rounds (gateway.jobs):
charge attempts whose process died mid-call, and merchant credentials nobody needs any more."""
from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import select, update

from ..models import Payment, PaymentState, utcnow
from ..processors.base import Found, SaleLookup
from ..services import Services
from ..vault import VaultError
from . import attention
from .attempts import leave_authorizing, record_charge, sale_reference
from .completion import deliver_if_claimed

STALE_AFTER = timedelta(minutes=2)  # longer than any processor call may take


def recover_stale_authorizations(services: Services, older_than: timedelta = STALE_AFTER) -> int:
    """Settle attempts whose process died mid-charge, each on its own: record the charge the processor
    has, reopen only on its authoritative "absent", otherwise keep asking (with backoff) in plain view."""
    now = utcnow()
    with services.db.transaction() as session:
        stale = session.scalars(
            select(Payment).where(
                Payment.state == PaymentState.AUTHORIZING,
                Payment.updated_at < now - older_than,
                attention.due(now),
            )
        ).all()
    return sum(attention.isolated(services, payment.id, "crash recovery", partial(_recover, services, payment))
               for payment in stale)


def forget_expired_credentials(services: Services) -> int:
    """An abandoned payment page needs no merchant credentials any more."""
    with services.db.transaction() as session:
        return session.connection().execute(
            update(Payment)
            .where(
                Payment.state == PaymentState.OPEN,
                Payment.expires_at <= utcnow(),
                Payment.credentials_sealed.is_not(None),
            )
            .values(credentials_sealed=None)
        ).rowcount


def _recover(services: Services, payment: Payment) -> None:
    if payment.credentials_sealed is None:
        with services.db.transaction() as session:
            attention.flag(session, payment.id, "the charge's outcome is unknown and the merchant credentials are gone: "
                           "check the processor, then resolve the sale by hand")
        return
    try:
        credentials = services.vault.open(payment.credentials_sealed)
    except VaultError as exc:
        raise VaultError(f"{exc}: check the processor, then resolve the sale by hand") from exc
    result = services.processor.find_sale(
        SaleLookup(
            reference=sale_reference(payment.id, payment.attempt),
            invoice=payment.invoice,
            amount=payment.amount_total,
            currency=payment.currency,
            credentials=credentials,
            test_mode=payment.test_mode,
            orderid=payment.orderid,
            submitted_at=payment.updated_at,  # the claim's move to `authorizing`; attention keeps it
            card_last4=payment.card_last4,
        )
    )
    if result.found is Found.FOUND:
        assert result.charge is not None
        notification = record_charge(services, payment, payment.attempt, result.charge)
        if notification is not None:
            deliver_if_claimed(services, notification)
    elif result.found is Found.ABSENT:
        with services.db.transaction() as session:
            leave_authorizing(session, payment.id, payment.attempt, PaymentState.OPEN)
            attention.clear(session, payment.id)
    else:
        attention.record_failure(services, payment.id, f"the processor cannot yet say whether it charged: {result.reason}")
