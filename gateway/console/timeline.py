"""One payment's story, in order: what the store asked, what the shopper did, what money moved,
what the store was told and what operators did about it. Merchant credentials never appear."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..models.console import AuditRecord
from ..money import format_money
from ..payments import history, ledger
from ..services import Services

if TYPE_CHECKING:
    from ..models.console import PaymentEvent
    from ..models.payments import Payment


# Authorize.Net's address-verification (avsResultCode) and security-code (cvvResultCode) results, in
# an operator's words; the sandbox answers with the same codes.
AVS_RESULTS = {
    "A": "street matches, postcode does not",
    "B": "no address given to check",
    "E": "address check error",
    "G": "card issued outside the US: not checked",
    "N": "neither street nor postcode match",
    "P": "not applicable to this sale",
    "R": "issuer unavailable: retry",
    "S": "not supported by the issuer",
    "U": "address information unavailable",
    "W": "9-digit postcode matches, street does not",
    "X": "street and 9-digit postcode match",
    "Y": "street and postcode match",
    "Z": "postcode matches, street does not",
}
CVV_RESULTS = {
    "M": "match",
    "N": "does not match",
    "P": "not processed",
    "S": "should have been sent: the issuer says the card has one",
    "U": "issuer cannot check it",
}


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    title: str
    details: dict[str, str] = field(default_factory=dict)
    status: str = ""  # good, bad, or empty


@dataclass(frozen=True)
class Timeline:
    payment: Payment
    events: list[Event]


def timeline(services: Services, payment_id: int) -> Timeline | None:
    """The payment's record from the payments package, with what operators did about it (the audit log)."""
    found = history.record(services, payment_id)
    if found is None:
        return None
    with services.db.transaction() as session:
        actions = session.scalars(select(AuditRecord).where(AuditRecord.target == f"payment:{payment_id}")).all()
    payment = found.payment
    events = [_checkout(payment), *(_recorded(e) for e in found.events), *_money(payment),
              *_notifications(payment), *(_action(a) for a in actions)]
    return Timeline(payment, sorted(events, key=lambda event: event.at))


def _checkout(payment: Payment) -> Event:
    return Event(payment.created_at, "checkout", "CheckoutRequest accepted", {
        "store": payment.store_key,
        "order": f"{payment.orderid} (invoice {payment.invoice})",
        "amount": format_money(payment.amount_total, payment.currency),
        "test mode": "yes" if payment.test_mode else "no",
        "shopper e-mail": payment.email,
        "notification URL": payment.notification_url,
        "merchant credentials": "•••••••• (held)" if payment.credentials_sealed else "•••••••• (erased)",
        "state now": payment.state,
    })


def _recorded(event: PaymentEvent) -> Event:
    titles = {"page_view": "Shopper opened the payment page", "charge_declined": "Card declined",
              "charge_unknown": "Charge outcome unknown", "risk_allow": "Risk step: allowed",
              "risk_challenge": "Risk step: challenge asked (nothing sent to the processor)",
              "risk_refuse": "Risk step: refused (the shopper saw a decline)"}
    status = {"charge_declined": "bad", "charge_unknown": "bad", "risk_refuse": "bad"}.get(event.kind, "")
    if event.kind.startswith("risk_"):
        return Event(event.at, event.kind, titles.get(event.kind, event.kind), {"reasons": event.detail or "none"}, status)
    return Event(event.at, event.kind, titles.get(event.kind, event.kind), {"detail": event.detail} if event.detail else {}, status)


def _money(payment: Payment) -> list[Event]:
    charge = payment.charge
    if charge is None:
        return []
    checks = {"address check (AVS)": _result(charge.avs_result, AVS_RESULTS),
              "security code check (CVV)": _result(charge.cvv_result, CVV_RESULTS)}
    return [
        Event(entry.created_at, f"ledger_{entry.kind}", f"{entry.kind.capitalize()} {entry.outcome}", {
            "amount": format_money(entry.amount, charge.currency),
            "processor reference": entry.processor_ref or "",
            "card": f"{charge.card_brand} ending {charge.card_last4}",
            "message": entry.message,
            **(checks if entry.kind == ledger.SALE else {}),
        }, "good" if entry.outcome == "approved" else "bad")
        for entry in charge.ledger
    ]


def _result(code: str, meanings: dict[str, str]) -> str:
    """A processor's check result as "code: meaning"; "not reported" when it sent none."""
    if not code:
        return "not reported"
    return f"{code}: {meanings.get(code.upper(), 'a code this console does not know')}"


def _notifications(payment: Payment) -> list[Event]:
    notification = payment.notification
    if notification is None:
        return []
    approved = notification.payload.get("approved")
    events = [
        Event(attempt.started_at, "notification_attempt", f"Store notified (attempt {number})", {
            "HTTP status": str(attempt.http_status or "no answer"),
            "duration": f"{attempt.duration_ms} ms",
            "answer": attempt.response_snippet[:300],
            "error": attempt.error,
        }, "bad" if attempt.error else "good")
        for number, attempt in enumerate(notification.attempt_log, start=1)
    ]
    events.insert(0, Event(notification.created_at, "notification", "CompleteOrderRequest queued", {
        "approved": str(approved), "state now": notification.state,
        "store processed": {True: "yes", False: "no", None: "not yet"}[notification.processed],
    }, "bad" if notification.state == "dead" else ""))
    return events


def _action(record: AuditRecord) -> Event:
    return Event(record.at, "operator", f"Operator {record.actor}: {record.action}",
                 {"why": record.reason, "outcome": record.outcome}, "")
