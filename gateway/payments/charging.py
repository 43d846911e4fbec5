"""Exchange 2: the shopper's card is charged at most once per payment session.

A charge attempt starts by moving the session from ``open`` to ``authorizing`` in one guarded
UPDATE while holding the locks of every session of the same order; whoever loses that race
charges nothing. The processor is called outside any database transaction, and its answer is
recorded (charge, ledger entry and outbox notification together) in one transaction.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from .. import budget
from ..cards import Card, CardFormError, parse_card
from ..models import LedgerEntry, Notification, PaymentSession, SessionState, Transaction, UTCDateTime, utcnow
from ..observability import events
from ..processors.base import (
    Charge,
    Found,
    MerchantAuthenticationError,
    OutcomeUnknown,
    ProcessorError,
    SaleLookup,
    SaleRequest,
)
from ..protocol.errors import ErrorCode
from ..services import Services
from ..vault import Credentials, VaultError
from . import attention, ledger
from .completion import deliver_if_claimed, enqueue_outcome
from .states import SESSIONS

log = logging.getLogger(__name__)
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # secrets.token_urlsafe's alphabet
STALE_AFTER = timedelta(minutes=2)
ORDER_BUSY = "This order has already been paid, or is being paid in another window. Nothing was charged."
CANNOT_CHARGE = "This payment page can no longer take payments. Return to the store and check out again; nothing was charged."
BUSY_STATES = (SessionState.AUTHORIZING.value, SessionState.APPROVED.value, SessionState.COMPLETED.value)


@dataclass
class SubmitResult:
    payment: PaymentSession
    field_errors: dict[str, str] = field(default_factory=dict)
    decline: str = ""
    busy: bool = False  # not started: the worker had no room for it within the request's budget


# A payment with its notification, as every shopper request reads it. Built once: constructing the
# query and its cache key anew cost about a sixth of a session lookup's CPU.
_WITH_NOTIFICATION = select(PaymentSession).options(joinedload(PaymentSession.notification))
_BY_TOKEN = _WITH_NOTIFICATION.where(PaymentSession.token == bindparam("token"))
_BY_ID = _WITH_NOTIFICATION.where(PaymentSession.id == bindparam("id"))
_STATE = select(PaymentSession.state).where(PaymentSession.id == bindparam("id"))


def find_session(services: Services, token: str) -> PaymentSession | None:
    if not TOKEN_SHAPE.fullmatch(token):
        return None  # not one of ours (and never a NUL or a megabyte sent on to the database)
    with services.db.one_statement() as session:
        return session.scalars(_BY_TOKEN, {"token": token}).first()


def is_expired(payment: PaymentSession) -> bool:
    return payment.state == SessionState.OPEN.value and payment.expires_at <= utcnow()


def submit_card(services: Services, payment: PaymentSession, form: dict[str, str]) -> SubmitResult:
    """Validate the card and charge it, unless this session is already being (or has been) paid."""
    if payment.state != SessionState.OPEN.value or is_expired(payment):
        return SubmitResult(payment)
    try:
        card = parse_card(form)
    except CardFormError as exc:
        return SubmitResult(payment, field_errors=exc.errors)
    claimed = _claim(services, payment, card)
    if claimed is None:
        current = _reload(services, payment.id)
        if current.state == SessionState.OPEN.value and not is_expired(current):
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
        order_id=payment.orderid,
        test_mode=payment.test_mode,
        email=payment.email,
    )
    try:
        charge = services.processor.sale(request)
    except OutcomeUnknown as exc:
        # Maybe charged: stay `authorizing` (the shopper waits on the status page) until
        # recover_stale_authorizations asks the processor what became of this attempt.
        log.warning("order %s attempt %s: outcome unknown (%s)", payment.orderid, attempt, exc.merchant_message)
        events.charge_unknown(services, payment.id, exc)
        return SubmitResult(_reload(services, payment.id))
    except ProcessorError as exc:
        events.charge_declined(services, payment.id, exc)
        return _record_decline(services, payment.id, exc)
    notification = _record_charge(services, payment.id, attempt, charge)
    if notification is None:
        return SubmitResult(_reload(services, payment.id))
    events.charge_approved()
    answer = deliver_if_claimed(services, notification)
    confirmed = _confirmed(services, payment) if answer is not None and answer.processed else None
    return SubmitResult(confirmed or _reload(services, payment.id))


def sale_reference(payment_id: int, attempt: int) -> str:
    """Unique per charge attempt (and at most 20 characters, Authorize.Net's refId limit)."""
    return f"ps{payment_id}a{attempt}"


def recover_stale_authorizations(services: Services, older_than: timedelta = STALE_AFTER) -> int:
    """Settle attempts whose process died mid-charge, each on its own: record the charge the processor
    has, reopen only on its authoritative "absent", otherwise keep asking (with backoff) in plain view."""
    now = utcnow()
    with services.db.transaction() as session:
        stale = session.scalars(
            select(PaymentSession).where(
                PaymentSession.state == SessionState.AUTHORIZING.value,
                PaymentSession.updated_at < now - older_than,
                attention.due(now),
            )
        ).all()
    return sum(attention.isolated(services, payment.id, "crash recovery", lambda p=payment: _recover(services, p))
               for payment in stale)


def forget_expired_credentials(services: Services) -> int:
    """An abandoned payment page needs no merchant credentials any more."""
    with services.db.transaction() as session:
        return session.execute(
            update(PaymentSession)
            .where(
                PaymentSession.state == SessionState.OPEN.value,
                PaymentSession.expires_at <= utcnow(),
                PaymentSession.credentials_sealed.is_not(None),
            )
            .values(credentials_sealed=None)
        ).rowcount


def _recover(services: Services, payment: PaymentSession) -> None:
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
            order_id=payment.orderid,
            submitted_at=payment.updated_at,
        )
    )
    if result.found is Found.FOUND:
        assert result.charge is not None
        notification = _record_charge(services, payment.id, payment.attempt, result.charge)
        if notification is not None:
            deliver_if_claimed(services, notification)
    elif result.found is Found.ABSENT:
        with services.db.transaction() as session:
            _transition(session, payment.id, payment.attempt, SessionState.OPEN)
            attention.clear(session, payment.id)
    else:
        attention.record_failure(services, payment.id, f"the processor cannot yet say whether it charged: {result.reason}")


def cancel(services: Services, payment: PaymentSession) -> bool:
    """The shopper goes back to the store; only an open session can be cancelled."""
    with services.db.transaction() as session:
        return SESSIONS.move(session, payment.id, SessionState.OPEN, SessionState.CANCELLED, credentials_sealed=None)


# The order's sessions, locked in id order before the move is decided (MATERIALIZED: never folded
# into it); PostgreSQL hands a locked row over as the last writer committed it.
_SIBLINGS = (
    select(PaymentSession.state)
    .where(PaymentSession.store_key == bindparam("order_store"), PaymentSession.orderid == bindparam("order_id"))
    .order_by(PaymentSession.id)
    .with_for_update()
    .cte("siblings")
    .prefix_with("MATERIALIZED")
)
_CLAIM = SESSIONS.prepare(
    SessionState.OPEN, SessionState.AUTHORIZING,
    PaymentSession.expires_at > bindparam("now", type_=UTCDateTime()),
    PaymentSession.credentials_sealed.is_not(None),  # erased meanwhile (cancelled, expired)
    ~select(_SIBLINGS.c.state).where(_SIBLINGS.c.state.in_(BUSY_STATES)).exists(),
    returning=(PaymentSession.attempt,),
    attempt=PaymentSession.attempt + 1,
    card_brand=bindparam("brand"),
    card_last4=bindparam("last4"),
    card_exp_month=bindparam("exp_month"),
    card_exp_year=bindparam("exp_year"),
    updated_at=bindparam("moved_at", type_=UTCDateTime()),
)


def _claim(services: Services, payment: PaymentSession, card: Card) -> tuple[int, Credentials] | None:
    """Move the session to ``authorizing`` unless it, or another session of its order, is being paid.

    One statement, one round trip: it locks the order's sessions and moves this one only if none of
    them is being paid; of two racing claims on the order, the second sees the first's move. SQLite
    runs it holding the database's write lock."""
    credentials = _open_credentials(services, payment)
    if credentials is None:
        return None  # nothing could be charged: the session must not be left `authorizing`
    now = utcnow()
    with services.db.one_statement() as session:
        claimed = SESSIONS.run(session, _CLAIM, payment.id, order_store=payment.store_key, order_id=payment.orderid,
                               now=now, moved_at=now, brand=card.brand, last4=card.last4,
                               exp_month=card.exp_month, exp_year=card.exp_year).first()
    return None if claimed is None else (claimed.attempt, credentials)


def _open_credentials(services: Services, payment: PaymentSession) -> Credentials | None:
    """The merchant credentials to charge with, or None (flagged for an operator) when they are unusable.

    They are sealed once at checkout and only ever erased, so the copy read with the session is the
    one to open; the claim itself checks that they have not been erased since."""
    if payment.credentials_sealed is None:
        return None
    try:
        return services.vault.open(payment.credentials_sealed)
    except VaultError as exc:
        with services.db.transaction() as session:
            attention.flag(session, payment.id, f"cannot charge: {exc}")
        return None


# Recording a charge settles the attempt and reads back what the charge's rows repeat.
_APPROVE = SESSIONS.prepare(
    SessionState.AUTHORIZING, SessionState.APPROVED, PaymentSession.attempt == bindparam("this_attempt"),
    returning=(PaymentSession.id, PaymentSession.orderid, PaymentSession.invoice, PaymentSession.amount_total,
               PaymentSession.notification_url, PaymentSession.card_brand, PaymentSession.card_last4,
               PaymentSession.card_exp_month, PaymentSession.card_exp_year, PaymentSession.test_mode,
               PaymentSession.credentials_fingerprint),
    **attention.CLEARED,
)
_NEW_TRANSACTION = Transaction.__table__.insert().returning(Transaction.__table__.c.id)
_NEW_SALE_ENTRY = LedgerEntry.__table__.insert()


def _record_charge(services: Services, payment_id: int, attempt: int, charge: Charge) -> Notification | None:
    """Record an approved charge with its notification; None (and flagged) if the attempt was resolved
    meanwhile. The notification comes back claimed for delivery if this request has time to send it.
    Plain statements built once: the rows are written here and never read back through this session."""
    with services.db.transaction() as session:
        payment = SESSIONS.run(session, _APPROVE, payment_id, this_attempt=attempt).first()
        if payment is None:
            attention.flag(session, payment_id, f"charge {charge.transaction_id} of {charge.amount} {charge.currency} "
                           f"arrived after attempt {attempt} was resolved and is not recorded: void it at the processor")
            return None
        transaction_id = session.connection().execute(_NEW_TRANSACTION, {
            "session_id": payment.id,
            "processor": services.processor.name,
            "processor_txn_id": charge.transaction_id,
            "orderid": payment.orderid,
            "invoice": payment.invoice,
            "currency": charge.currency,
            "amount": charge.amount,
            "card_brand": payment.card_brand,
            "card_last4": payment.card_last4,
            "card_exp_month": payment.card_exp_month or 0,
            "card_exp_year": payment.card_exp_year or 0,
            "test_mode": payment.test_mode,
            "credentials_fingerprint": payment.credentials_fingerprint,
        }).scalar_one()
        session.connection().execute(_NEW_SALE_ENTRY, {
            "transaction_id": transaction_id,
            "kind": ledger.SALE,
            "amount": charge.amount,
            "outcome": ledger.APPROVED,
            "processor_ref": charge.transaction_id,
            "message": charge.message,
        })
        notification = enqueue_outcome(session, services, payment, approved=True, transactionid=charge.transaction_id,
                                       claimed=budget.allows_call())
        log.info("order %s charged: %s %s", payment.orderid, charge.transaction_id, charge.amount)
        return notification


def _record_decline(services: Services, payment_id: int, error: ProcessorError) -> SubmitResult:
    notification = None
    with services.db.transaction() as session:
        payment = session.get(PaymentSession, payment_id)
        assert payment is not None
        declines = payment.decline_count + 1
        give_up = isinstance(error, MerchantAuthenticationError) or declines >= services.settings.max_declines
        state = SessionState.FAILED if give_up else SessionState.OPEN
        payment = _transition(session, payment_id, payment.attempt, state)
        payment.decline_count = declines
        payment.last_decline = error.message
        if give_up:
            payment.credentials_sealed = None
            code = ErrorCode.MERCHANT_AUTHENTICATION if isinstance(error, MerchantAuthenticationError) else ErrorCode.CARD_DECLINED
            payment.error_code, payment.error_message = code.value, error.merchant_message
            notification = enqueue_outcome(session, services, payment, approved=False, errorcode=code.value,
                                           errormessage=error.merchant_message, claimed=budget.allows_call())
        log.info("order %s attempt %s declined (%s)", payment.orderid, payment.attempt, error.code)
    if notification is not None:
        deliver_if_claimed(services, notification)
    return SubmitResult(_reload(services, payment_id), decline=error.message)


def _transition(session: Session, payment_id: int, attempt: int, target: SessionState) -> PaymentSession:
    """Leave ``authorizing`` for this attempt; the guard makes a stale writer fail loudly."""
    payment = SESSIONS.move_and_load(session, payment_id, SessionState.AUTHORIZING, target, PaymentSession.attempt == attempt)
    if payment is None:
        raise RuntimeError(f"payment session {payment_id} left 'authorizing' behind our back")
    return payment


def _confirmed(services: Services, payment: PaymentSession) -> PaymentSession | None:
    """The payment the store has just confirmed, if it is now ``completed``; None otherwise.

    A completed payment's page is a redirect to its returnurl, which was fixed at checkout: so the
    session read at the start of the request, with its state brought up to date, is all the answer
    needs. Reading the state alone costs about a third of reading the whole session again."""
    with services.db.one_statement() as session:
        state = session.connection().execute(_STATE, {"id": payment.id}).scalar_one()
    if state != SessionState.COMPLETED.value:
        return None
    payment.state = state
    return payment


def _reload(services: Services, payment_id: int) -> PaymentSession:
    with services.db.one_statement() as session:
        return session.scalars(_BY_ID, {"id": payment_id}).one()
