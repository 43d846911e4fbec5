"""Operator actions: each runs the same guarded code path as the CLI or the worker, and is audited.

An action that is refused (already requeued, already resolved, nothing left to reverse) changes
nothing and is still recorded with why it was refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..payments import history, ledger, operations, risk, stores
from ..payments.reversal import reverse_rejected_charge
from ..payments.states import PaymentState
from ..processors.base import ProcessorError
from ..services import Services
from . import audit
from .attention import PAYMENT, needs_attention, notification_payment

MAX_REASON = 2000
MAX_STORE_KEY = 255


class ActionRefused(ValueError):
    """The action cannot be done now; the message says why."""


@dataclass(frozen=True)
class Done:
    payment_id: int
    message: str


def _reason(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ActionRefused("give a reason: it is kept in the audit log")
    if len(text) > MAX_REASON:
        raise ActionRefused(f"the reason is longer than {MAX_REASON} characters")
    return text


def _audit(services: Services, actor: str, action: str, payment_id: int | None, reason: str, outcome: str, **details: object) -> None:
    with services.db.transaction() as session:
        audit.record(session, actor, action, f"payment:{payment_id}" if payment_id else "", reason, outcome, **details)


def requeue_notification(services: Services, actor: str, notification_id: int, reason: str) -> Done:
    """Send a dead notification round again (the CLI's guarded requeue)."""
    reason = _reason(reason)
    payment_id = notification_payment(services, notification_id)
    if payment_id is None:
        raise ActionRefused(f"there is no notification {notification_id}")
    try:
        operations.requeue_notification(services, notification_id, actor=actor, note=reason)
    except operations.OperationRefused as exc:
        _audit(services, actor, "notification.requeue", payment_id, reason, "refused: not dead", notification_id=notification_id)
        raise ActionRefused(f"notification {notification_id} is not dead (already requeued or delivered)") from exc
    _audit(services, actor, "notification.requeue", payment_id, reason, "pending again", notification_id=notification_id)
    return Done(payment_id, f"notification {notification_id} is pending again")


def resolve_entry(services: Services, actor: str, entry_id: int, happened: bool, note: str) -> Done:
    """Record what the processor's own records show for an unresolved void or refund."""
    note = _reason(note)
    payment_id = history.payment_of_ledger_entry(services, entry_id)
    if payment_id is None:
        raise ActionRefused(f"there is no ledger entry {entry_id}")
    try:
        outcome = operations.resolve_ledger_entry(services, entry_id, happened=happened, actor=actor, note=note).outcome
    except operations.OperationRefused as exc:
        _audit(services, actor, "ledger.resolve", payment_id, note, f"refused: {exc}", entry_id=entry_id, happened=happened)
        raise ActionRefused(f"ledger entry {entry_id} is no longer unresolved ({exc})") from exc
    _audit(services, actor, "ledger.resolve", payment_id, note, outcome, entry_id=entry_id, happened=happened)
    return Done(payment_id, f"ledger entry {entry_id} is now {outcome}")


def reverse_charge(services: Services, actor: str, payment_id: int, reason: str) -> Done:
    """Give back a charge that needs attention: a rejected order's (the worker's exactly-once
    reversal, now instead of after its backoff), or one the store never confirmed."""
    reason = _reason(reason)
    if not any(item.kind == PAYMENT and item.ref == payment_id for item in needs_attention(services)):
        _audit(services, actor, "payment.reverse", payment_id, reason, "refused: no standing charge to reverse")
        raise ActionRefused(f"payment {payment_id} has no charge waiting to be reversed")
    try:
        if history.state_of(services, payment_id) == PaymentState.REJECTED:
            operations.retry(services, payment_id, actor=actor, note=reason)
            reverse_rejected_charge(services, payment_id)
        else:
            operations.reverse_charge(services, payment_id, actor=actor, reason=reason)
    except (operations.OperationRefused, ProcessorError) as exc:
        _audit(services, actor, "payment.reverse", payment_id, reason, f"refused: {exc}")
        raise ActionRefused(f"the reversal could not be done: {exc}") from exc
    last = history.last_ledger_entry(services, payment_id)
    assert last is not None  # it needed attention as a charge: its sale at least is there
    outcome = f"{last.kind} {last.outcome}" + (f": {last.message}" if last.message else "")
    _audit(services, actor, "payment.reverse", payment_id, reason, outcome, entry_id=last.id)
    if last.kind == ledger.SALE:
        raise ActionRefused("the reversal could not be started (are the merchant's credentials still held?)")
    return Done(payment_id, f"reversal: {outcome}")


def resolve_sale(services: Services, actor: str, payment_id: int, charged: bool, processor_transaction_id: str, note: str) -> Done:
    """Settle a charge attempt whose outcome the gateway could not learn, from the processor's records."""
    note = _reason(note)
    processor_transaction_id = (processor_transaction_id or "").strip()[:128]
    try:
        state = operations.resolve_sale(services, payment_id, charged=charged, processor_transaction_id=processor_transaction_id,
                                        actor=actor, note=note)
    except operations.OperationRefused as exc:
        _audit(services, actor, "payment.resolve_sale", payment_id, note, f"refused: {exc}", charged=charged)
        raise ActionRefused(str(exc)) from exc
    _audit(services, actor, "payment.resolve_sale", payment_id, note, state, charged=charged,
           processor_transaction_id=processor_transaction_id)
    what = f"recorded as charged ({processor_transaction_id}) and the store is told" if charged else "open again: nothing was charged"
    return Done(payment_id, f"payment {payment_id} is {what}")


def save_store(services: Services, actor: str, key: str, values: dict[str, str], reason: str) -> Done:
    """Edit how a store is shown to its shoppers (stores.save_identity, as `gateway stores set`)."""
    reason = _reason(reason)
    if len(key) > MAX_STORE_KEY:
        raise ActionRefused(f"a store key (its notification host) has at most {MAX_STORE_KEY} characters")
    before = stores.identity(services, key)
    try:
        saved = stores.save_identity(services, key, **values)
    except stores.ProfileError as exc:
        raise ActionRefused(str(exc)) from exc
    changed = {name: getattr(saved, name) for name in stores.EDITABLE if getattr(saved, name) != getattr(before, name)}
    with services.db.transaction() as session:
        audit.record(session, actor, "store.update", f"store:{key}", reason, "saved", changed=changed)
    return Done(0, f"{saved.display_name}: saved" + (f" ({', '.join(changed)})" if changed else " (nothing changed)"))


def save_risk_thresholds(services: Services, actor: str, key: str, values: dict[str, str], reason: str) -> Done:
    """Set a store's risk thresholds (risk.set_thresholds, as `gateway risk thresholds`); blank keeps one."""
    reason = _reason(reason)
    if len(key) > MAX_STORE_KEY:
        raise ActionRefused(f"a store key (its notification host) has at most {MAX_STORE_KEY} characters")
    try:
        given = {name: int(values[name]) for name in risk.THRESHOLD_NAMES if values.get(name, "").strip()}
        before = risk.thresholds(services, key)
        saved = risk.set_thresholds(services, key, actor, **given)
    except ValueError as exc:
        raise ActionRefused(f"thresholds not saved: {exc}") from exc
    changed = {name: getattr(saved, name) for name in risk.THRESHOLD_NAMES if getattr(saved, name) != getattr(before, name)}
    with services.db.transaction() as session:
        audit.record(session, actor, "store.risk_thresholds", f"store:{key}", reason, "saved", changed=changed)
    return Done(0, f"{key}: risk thresholds saved" + (f" ({', '.join(changed)})" if changed else " (nothing changed)"))
