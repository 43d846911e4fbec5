"""Exchange 1: a signed CheckoutRequest becomes a payment session the shopper can pay."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import PAID_STATES, PaymentSession, utcnow
from ..notifications.client import UnsafeDestination
from ..protocol.errors import ErrorCode, ProtocolError
from ..protocol.requests import SignedRequest, load_signed
from ..protocol.schemas import CheckoutRequestSchema
from ..services import Services
from ..stores import store_key
from ..vault import Credentials
from . import replay

CHECKOUT_REQUEST = CheckoutRequestSchema()  # schemas are stateless on load; building one per request is slow


def start_checkout(services: Services, body: bytes) -> PaymentSession:
    """Validate the CheckoutRequest and return its payment session, new or (for a retry) existing."""
    request = load_signed(
        body, CHECKOUT_REQUEST, services.settings.private_key, ("orderid", "invoice", "amounttotal"), "CheckoutRequest"
    )
    if request.data["type"].strip().lower() != "sale":
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"type must be 'sale' on the Gateway Checkout URL, got {request.data['type']!r}",
        )
    check_store_urls(services, request.data)
    try:
        with services.db.transaction() as session:
            return _find_or_create(session, services, request)
    except IntegrityError:
        # A concurrent retry of the same request inserted it first: answer with that one.
        with services.db.transaction() as session:
            return _find_or_create(session, services, request)


def check_store_urls(services: Services, data: dict[str, Any]) -> None:
    """Refuse, before any money moves, a checkout whose outcome we could never report or show.

    The notification URL passes the very checks delivery applies (https in production, no
    private, loopback, link-local or tunnelled-loopback targets); in production the shopper's
    return, cancel and error pages must be https too, as the hosted page only sends people there.
    """
    store = services.store
    try:
        store.check(data["notificationurl"])
    except UnsafeDestination as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"notificationurl refused: {exc}") from exc
    if services.settings.is_production:
        for name in ("returnurl", "cancelurl", "errorurl"):
            if urlsplit(data[name]).scheme != "https":
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must use https")


def _find_or_create(session: Session, services: Services, request: SignedRequest) -> PaymentSession:
    data = request.data
    digest = request.digest(services.settings.secret_key)
    if not replay.first_use(session, replay.CHECKOUT, data["randomkey"], digest):
        existing = session.scalars(select(PaymentSession).where(PaymentSession.randomkey == data["randomkey"])).first()
        if existing is not None:
            return existing
    key = store_key(data["notificationurl"])
    paid = session.scalars(
        select(PaymentSession).where(
            PaymentSession.store_key == key,
            PaymentSession.orderid == data["orderid"],
            PaymentSession.state.in_(PAID_STATES),
        )
    ).first()
    if paid is not None:
        raise ProtocolError(
            ErrorCode.CHECKOUT_FAILED,
            f"order {data['orderid']} (invoice {paid.invoice}) is already paid; a new checkout would charge twice",
        )
    created = _new_session(services, request, key)
    session.add(created)
    session.flush()
    return created


def _new_session(services: Services, request: SignedRequest, key: str) -> PaymentSession:
    data = request.data
    credentials = Credentials(data["username"], data["password"])
    now = utcnow()
    return PaymentSession(
        token=secrets.token_urlsafe(32),
        store_key=key,
        orderid=data["orderid"],
        invoice=data["invoice"],
        randomkey=data["randomkey"],
        currency=data["currency"].upper(),
        amount_total=data["amounttotal"],
        tax_total=data["taxtotal"],
        shipping_total=data["shippingtotal"],
        discount=data["discount"],
        email=data["email"],
        billing=_plain(data["billing"]),
        shipping=_plain(data["shipping"]),
        items=[{**item, "quantity": str(item["quantity"])} for item in data["items"]],
        cancel_url=data["cancelurl"],
        error_url=data["errorurl"],
        notification_url=data["notificationurl"],
        return_url=data["returnurl"],
        credentials_sealed=services.vault.seal(credentials),
        credentials_fingerprint=services.vault.fingerprint(credentials),
        test_mode=data["testmode"],
        expires_at=now + timedelta(minutes=services.settings.session_minutes),
        created_at=now,
    )


def _plain(address: dict[str, Any]) -> dict[str, str]:
    return {key: value or "" for key, value in address.items()}
