"""Exchange 2: the shopper's card is charged at most once per payment.

A charge attempt starts by moving the payment from ``open`` to ``authorizing`` in one guarded
UPDATE while holding the locks of every payment of the same order; whoever loses that race
charges nothing. The processor is called outside any database transaction, and its answer is
recorded (see :mod:`.attempts`) in one transaction.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select

from ..cards import Card, CardFormError, parse_card
from ..models import Payment, PaymentState, RiskOutcome, UTCDateTime, one_of, utcnow
from ..observability import events
from ..processors.base import CardDeclined, OutcomeUnknown, ProcessorError, SaleRequest
from ..services import Services
from ..vault import Credentials, VaultError
from . import attention, risk
from .attempts import record_charge, record_decline, sale_reference
from .completion import deliver_if_claimed
from .queries import is_expired, reload
from .states import PAYMENTS

log = logging.getLogger(__name__)
ORDER_BUSY = "This order has already been paid, or is being paid in another window. Nothing was charged."
CANNOT_CHARGE = "This payment page can no longer take payments. Return to the store and check out again; nothing was charged."
# What a refusal by the risk step shows: the processor's own generic decline, word for word.
REFUSED = CardDeclined("Your card was declined.", code="risk_refused",
                       merchant_message="refused by the gateway's risk step before reaching the processor")
BUSY_STATES = (PaymentState.AUTHORIZING, PaymentState.APPROVED, PaymentState.COMPLETED)


@dataclass
class SubmitResult:
    payment: Payment
    field_errors: dict[str, str] = field(default_factory=dict)
    decline: str = ""
    busy: bool = False  # not started: the worker had no room for it within the request's budget
    challenge: bool = False  # the risk step wants a solved challenge first; nothing was sent or counted


def submit_card(services: Services, payment: Payment, form: dict[str, str], client_address: str = "",
                solution_ok: bool | None = None) -> SubmitResult:
    """Validate the card and charge it, unless this payment is already being (or has been) paid, or
    the risk step (gateway.payments.risk) wants a challenge solved first or refuses the card."""
    if payment.state != PaymentState.OPEN or is_expired(payment):
        return SubmitResult(payment)
    try:
        card = parse_card(form, services.processor.accepts)
    except CardFormError as exc:
        return SubmitResult(payment, field_errors=exc.errors)
    decision = risk.assess(services, payment, card, client_address, solution_ok)
    if decision.kind == risk.CHALLENGE:
        return SubmitResult(payment, challenge=True)
    claimed = _claim(services, payment, card)
    if claimed is None:
        current = reload(services, payment.id)
        if current.state == PaymentState.OPEN and not is_expired(current):
            unusable = current.credentials_sealed is None or bool(current.attention)
            return SubmitResult(current, decline=CANNOT_CHARGE if unusable else ORDER_BUSY)
        return SubmitResult(current)
    attempt, credentials = claimed
    request = SaleRequest(
        amount=payment.amount_total,
        currency=payment.currency,
        card=card,
        credentials=credentials,
        reference=sale_reference(payment.id, attempt),
        invoice=payment.invoice,
        orderid=payment.orderid,
        test_mode=payment.test_mode,
        email=payment.email,
    )
    if decision.kind == risk.REFUSE:
        risk.wait_like_a_sale()
        return _declined(services, payment, decision, REFUSED, RiskOutcome.REFUSED)
    started = time.monotonic()
    try:
        charge = services.processor.sale(request)
    except OutcomeUnknown as exc:
        risk.remember(services, payment, decision, RiskOutcome.UNKNOWN, exc.code)
        return _outcome_unknown(services, payment, attempt, exc)
    except ProcessorError as exc:
        risk.observe_sale(time.monotonic() - started)
        # Only the card's own refusal tells about the card; refused credentials or an unreachable
        # processor say nothing of it, and must not make a card, address or store look like testing.
        said = RiskOutcome.DECLINED if isinstance(exc, CardDeclined) else RiskOutcome.UNKNOWN
        return _declined(services, payment, decision, exc, said)
    except Exception as exc:  # noqa: BLE001 - a connector's bug must neither answer 500 nor leave the attempt unexplained
        # The traceback's frames, not the exception's text: that could quote what was sent.
        log.error("order %s attempt %s: the processor call failed unexpectedly (%s)\n%s", payment.orderid, attempt,
                  exc.__class__.__name__, "".join(traceback.format_tb(exc.__traceback__)))
        return _outcome_unknown(services, payment, attempt, OutcomeUnknown(
            "We are confirming your payment with the card network.",
            merchant_message=f"the processor call failed unexpectedly ({exc.__class__.__name__}); the outcome is unknown"))
    risk.observe_sale(time.monotonic() - started)
    notification = record_charge(services, payment, attempt, charge,
                                 risk_signal=risk.signal(payment, decision, RiskOutcome.APPROVED))
    if notification is None:
        return SubmitResult(reload(services, payment.id))
    events.charge_approved()
    delivery = deliver_if_claimed(services, notification)
    if delivery is not None and delivery.completed:
        # A completed payment's page is a redirect to its returnurl, fixed at checkout: the payment
        # read at the start of the request, with its new state, is all the answer needs.
        payment.state = PaymentState.COMPLETED
        return SubmitResult(payment)
    return SubmitResult(reload(services, payment.id))


def _declined(services: Services, payment: Payment, decision: risk.Decision, error: ProcessorError,
              outcome: RiskOutcome) -> SubmitResult:
    """A decline, the processor's or the risk step's: the same record, the same page for the shopper."""
    risk.remember(services, payment, decision, outcome, error.code)
    events.charge_declined(services.db, payment.id, error)
    record_decline(services, payment.id, error)
    return SubmitResult(reload(services, payment.id), decline=error.message)


def _outcome_unknown(services: Services, payment: Payment, attempt: int, exc: OutcomeUnknown) -> SubmitResult:
    """Maybe charged: stay `authorizing` (the shopper waits on the status page) until
    recovery.recover_stale_authorizations asks the processor what became of this attempt."""
    log.warning("order %s attempt %s: outcome unknown (%s)", payment.orderid, attempt, exc.merchant_message)
    events.charge_unknown(services.db, payment.id, exc)
    return SubmitResult(reload(services, payment.id))


def cancel(services: Services, payment: Payment) -> bool:
    """The shopper goes back to the store; only an open payment can be cancelled."""
    with services.db.transaction() as session:
        return PAYMENTS.move(session, payment.id, PaymentState.OPEN, PaymentState.CANCELLED, credentials_sealed=None)


# The order's payments, locked in id order before the move is decided (MATERIALIZED: never folded
# into it); PostgreSQL hands a locked row over as the last writer committed it.
_SIBLINGS = (
    select(Payment.state)
    .where(Payment.store_key == bindparam("order_store"), Payment.orderid == bindparam("order_of"))
    .order_by(Payment.id)
    .with_for_update()
    .cte("siblings")
    .prefix_with("MATERIALIZED")
)
_CLAIM = PAYMENTS.prepare(
    PaymentState.OPEN, PaymentState.AUTHORIZING,
    Payment.expires_at > bindparam("now", type_=UTCDateTime()),
    Payment.credentials_sealed.is_not(None),  # erased meanwhile (cancelled, expired)
    ~select(_SIBLINGS.c.state).where(one_of(_SIBLINGS.c.state, BUSY_STATES)).exists(),
    returning=(Payment.attempt,),
    attempt=Payment.attempt + 1,
    card_brand=bindparam("brand"),
    card_last4=bindparam("last4"),
    card_exp_month=bindparam("exp_month"),
    card_exp_year=bindparam("exp_year"),
    updated_at=bindparam("moved_at", type_=UTCDateTime()),
)


def _claim(services: Services, payment: Payment, card: Card) -> tuple[int, Credentials] | None:
    """Move the payment to ``authorizing`` unless it, or another payment of its order, is being paid.

    One statement, one round trip: it locks the order's payments and moves this one only if none of
    them is being paid; of two racing claims on the order, the second sees the first's move. SQLite
    runs it holding the database's write lock."""
    credentials = _open_credentials(services, payment)
    if credentials is None:
        return None  # nothing could be charged: the payment must not be left `authorizing`
    now = utcnow()
    with services.db.one_statement() as session:
        claimed = PAYMENTS.run(session, _CLAIM, payment.id, order_store=payment.store_key, order_of=payment.orderid,
                               now=now, moved_at=now, brand=card.brand, last4=card.last4,
                               exp_month=card.exp_month, exp_year=card.exp_year).first()
    return None if claimed is None else (claimed.attempt, credentials)


def _open_credentials(services: Services, payment: Payment) -> Credentials | None:
    """The merchant credentials to charge with, or None (flagged for an operator) when they are unusable.

    They are sealed once at checkout and only ever erased, so the copy read with the payment is the
    one to open; the claim itself checks that they have not been erased since."""
    if payment.credentials_sealed is None:
        return None
    try:
        return services.vault.open(payment.credentials_sealed)
    except VaultError as exc:
        with services.db.transaction() as session:
            attention.flag(session, payment.id, f"cannot charge: {exc}")
        return None

