"""factory-boy factories for the gateway's rows: set up a payment's state directly, where a test is
about something else than how the payment got there (the pay path has tests of its own).

The rows are what the pay path writes for the text's example order (EXAMPLE_CHECKOUT) paid with the
sandbox's visa: compare tests/console_helpers.py, which builds the same states through HTTP.

    with factories.bound(services):
        notification = factories.NotificationFactory(dead=True)

``bound`` gives the factories a session of the app's own database (committed after each row) and
the app's vault and settings, for the sealed credentials and the payment's lifetime.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory

from gateway.models import (
    Charge,
    LedgerEntry,
    Notification,
    Payment,
    SandboxCharge,
    utcnow,
)
from gateway.notifications.outbox import CompleteOrder
from gateway.payments.stores import store_key
from gateway.vault import Credentials

from .protocol_helpers import (
    CANCEL_URL,
    ERROR_URL,
    EXAMPLE_CHECKOUT,
    NOTIFY_URL,
    RETURN_URL,
)


class _Binding:
    services: Any = None
    session: Any = None


def _session() -> Any:
    assert _Binding.session is not None, "use the factories inside `with factories.bound(services):`"
    return _Binding.session


@contextmanager
def bound(services: Any) -> Iterator[None]:
    """The factories write to ``services``' database while the block runs."""
    with services.db.sessions() as session:
        _Binding.services, _Binding.session = services, session
        try:
            yield
        finally:
            _Binding.services = _Binding.session = None


def _credentials() -> Credentials:
    return Credentials(EXAMPLE_CHECKOUT["username"], EXAMPLE_CHECKOUT["password"])


class _Factory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = "commit"


class PaymentFactory(_Factory):
    """A checkout of the example order, waiting for the shopper's card (state ``open``)."""

    class Meta:
        model = Payment

    token = factory.LazyFunction(lambda: secrets.token_urlsafe(32))
    store_key = factory.LazyAttribute(lambda s: store_key(s.notification_url))
    orderid = EXAMPLE_CHECKOUT["orderid"]
    invoice = EXAMPLE_CHECKOUT["invoice"]
    randomkey = factory.Sequence(lambda n: f"factory{n:06d}")
    currency = EXAMPLE_CHECKOUT["currency"]
    amount_total = EXAMPLE_CHECKOUT["amounttotal"]
    tax_total = EXAMPLE_CHECKOUT["taxtotal"]
    shipping_total = EXAMPLE_CHECKOUT["shippingtotal"]
    discount = EXAMPLE_CHECKOUT["discount"]
    email = EXAMPLE_CHECKOUT["email"]
    billing = factory.LazyFunction(lambda: dict(EXAMPLE_CHECKOUT["billing"]))
    shipping = factory.LazyFunction(lambda: dict(EXAMPLE_CHECKOUT["shipping"]))
    items = factory.LazyFunction(lambda: [{**item, "quantity": str(item["quantity"])} for item in EXAMPLE_CHECKOUT["items"]])
    cancel_url = CANCEL_URL
    error_url = ERROR_URL
    notification_url = NOTIFY_URL
    return_url = RETURN_URL
    credentials_sealed = factory.LazyFunction(lambda: _Binding.services.vault.seal(_credentials()))
    credentials_fingerprint = factory.LazyFunction(lambda: _Binding.services.vault.fingerprint(_credentials()))
    state = "open"
    expires_at = factory.LazyFunction(lambda: utcnow() + timedelta(minutes=_Binding.services.settings.session_minutes))

    class Params:
        # Charged with the sandbox's visa; the store has not confirmed the order yet.
        paid = factory.Trait(state="approved", attempt=1, card_brand="visa", card_last4="4242",
                             card_exp_month=12, card_exp_year=2039)


class SandboxChargeFactory(_Factory):
    """The sandbox processor's own record of a charge (what a void or refund acts on)."""

    class Meta:
        model = SandboxCharge

    id = factory.LazyFunction(lambda: f"sbx_{secrets.token_hex(12)}")
    reference = factory.Sequence(lambda n: f"factory-ref-{n}")
    amount = EXAMPLE_CHECKOUT["amounttotal"]
    currency = EXAMPLE_CHECKOUT["currency"]
    card_brand = "visa"
    card_last4 = "4242"
    settles_at = factory.LazyFunction(lambda: utcnow() + timedelta(days=1))


class ChargeFactory(_Factory):
    """An approved sandbox charge of a paid payment, with the sandbox's record of it."""

    class Meta:
        model = Charge

    payment = factory.SubFactory(PaymentFactory, paid=True)
    processor = "sandbox"
    processor_transaction_id = factory.LazyAttribute(lambda t: SandboxChargeFactory(
        amount=t.amount, currency=t.currency, card_brand=t.payment.card_brand, card_last4=t.payment.card_last4).id)
    orderid = factory.SelfAttribute("payment.orderid")
    invoice = factory.SelfAttribute("payment.invoice")
    currency = factory.SelfAttribute("payment.currency")
    amount = factory.SelfAttribute("payment.amount_total")
    card_brand = factory.SelfAttribute("payment.card_brand")
    card_last4 = factory.SelfAttribute("payment.card_last4")
    card_exp_month = factory.SelfAttribute("payment.card_exp_month")
    card_exp_year = factory.SelfAttribute("payment.card_exp_year")
    avs_result = "Y"  # the sandbox's approval: street and postcode match
    cvv_result = "M"
    credentials_fingerprint = factory.SelfAttribute("payment.credentials_fingerprint")


class LedgerEntryFactory(_Factory):
    """A money movement on a charge; by default the approved sale itself."""

    class Meta:
        model = LedgerEntry

    charge = factory.SubFactory(ChargeFactory)
    kind = "sale"
    amount = factory.SelfAttribute("charge.amount")
    outcome = "approved"
    processor_ref = factory.SelfAttribute("charge.processor_transaction_id")
    message = "Approved"

    @factory.post_generation
    def holds(entry: LedgerEntry, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805
        """A refund that holds money counts in its charge's ``refunded``, as ledger.reserve keeps it."""
        if create and entry.kind == "refund" and entry.outcome in ("pending", "unknown", "approved"):
            entry.charge.refunded += entry.amount
            _session().commit()


def paid_charge(**payment: Any) -> Charge:
    """A paid payment, its charge and the ledger's approved sale, as the pay path leaves them."""
    entry = LedgerEntryFactory(charge__payment=PaymentFactory(paid=True, **payment))
    return entry.charge


class NotificationFactory(_Factory):
    """The store's notification of a paid payment (pending delivery); ``dead=True``: the
    store never answered and the worker gave up."""

    class Meta:
        model = Notification

    class Params:
        charge = factory.LazyFunction(paid_charge)
        dead = factory.Trait(state="dead", attempts=1, lease=1, last_error="could not connect to the store")

    payment_id = factory.SelfAttribute("charge.payment_id")
    url = factory.SelfAttribute("charge.payment.notification_url")
    payload = factory.LazyAttribute(lambda n: asdict(CompleteOrder(
        orderid=n.charge.orderid, invoice=n.charge.invoice, amount=n.charge.amount, approved=True,
        transactionid=n.charge.processor_transaction_id)))
