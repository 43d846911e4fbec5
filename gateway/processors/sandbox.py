"""The built-in sandbox processor: deterministic test cards, charges kept in our own database.

Test cards (any future expiry, any CVC of the right length, any name):

=====================  ==========  ======================================
card number            brand       outcome
=====================  ==========  ======================================
4242 4242 4242 4242    Visa        approved
5555 5555 5555 4444    Mastercard  approved
3782 822463 10005      Amex        approved
6011 1111 1111 1117    Discover    approved
4000 0000 0000 0002    Visa        declined: generic decline
4000 0000 0000 9995    Visa        declined: insufficient funds
4000 0000 0000 0069    Visa        declined: expired card
4000 0000 0000 0127    Visa        declined: CVC mismatch
4000 0000 0000 0119    Visa        processor error (try again)
=====================  ==========  ======================================

Any other valid card number is approved, with Authorize.Net's AVS code ``Y`` (street and
postcode match) and CVV code ``M`` (match). Merchant credentials whose Credential 1 is
``invalid`` are refused, to exercise the merchant-authentication path.

Every call can be made to take as long as a real processor's (``SANDBOX_LATENCY`` seconds, give
or take ``SANDBOX_JITTER``), so the gateway can be watched under real-world delays.
"""
from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from .. import prepared as driver
from ..cards import ANY_CARD
from ..db import Database
from ..models import SandboxCharge, utcnow
from ..vault import Credentials
from .base import (
    Adjustment,
    AdjustmentRefused,
    CardDeclined,
    ChargeRef,
    MerchantAuthenticationError,
    ProcessorCharge,
    ProcessorUnavailable,
    SaleLookup,
    SaleLookupResult,
    SaleRequest,
)

DECLINES: dict[str, tuple[type[CardDeclined | ProcessorUnavailable], str, str]] = {
    "4000000000000002": (CardDeclined, "card_declined", "Your card was declined."),
    "4000000000009995": (CardDeclined, "insufficient_funds", "Your card has insufficient funds."),
    "4000000000000069": (CardDeclined, "expired_card", "Your card has expired."),
    "4000000000000127": (CardDeclined, "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (ProcessorUnavailable, "processor_error", "We could not reach the card network. Please try again."),
}
INVALID_LOGIN = "invalid"
# A charge per purchase: built once for each database (its duplicate check is each one's own form).
_NEW_CHARGE = {
    name: driver.hot(dialect.insert(SandboxCharge.__table__).on_conflict_do_nothing(index_elements=["reference"])
                     .returning(SandboxCharge.__table__.c.id), only=name)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# An approval's address and security-code checks, in Authorize.Net's codes: street and postcode match; CVV matches.
AVS_MATCH = "Y"
CVV_MATCH = "M"


@dataclass(frozen=True)
class Latency:
    """How long each call takes: ``seconds``, plus or minus up to ``jitter`` (uniformly)."""

    seconds: float = 0.0
    jitter: float = 0.0

    def wait(self) -> None:
        delay = self.seconds + random.uniform(-self.jitter, self.jitter)
        if delay > 0:
            time.sleep(delay)


class SandboxProcessor:
    name = "sandbox"
    accepts = ANY_CARD

    def __init__(self, db: Database, settle_after: timedelta, latency: Latency = Latency()) -> None:
        self.db = db
        self.settle_after = settle_after
        self.latency = latency
        self._new_charge = _NEW_CHARGE[db.engine.dialect.name]

    def sale(self, request: SaleRequest) -> ProcessorCharge:
        self.latency.wait()
        self._authenticate(request.credentials)
        if request.card.number in DECLINES:
            error, code, message = DECLINES[request.card.number]
            raise error(message, code=code)
        return replace(_charge(self._book(request)), avs_result=AVS_MATCH, cvv_result=CVV_MATCH)

    def _book(self, request: SaleRequest) -> SandboxCharge:
        """One charge per reference, as a real processor's duplicate check keeps it: a retried
        attempt gets the charge it already made. A new charge costs one statement."""
        now = utcnow()
        values = {
            "id": "sbx_" + secrets.token_hex(12),
            "reference": request.reference,
            "amount": request.amount,
            "currency": request.currency,
            "card_brand": request.card.brand,
            "card_last4": request.card.last4,
            "voided": False,
            "refunded": 0,
            "settles_at": now + self.settle_after,
            "created_at": now,
        }
        with self.db.core_statement() as connection:
            if driver.run(connection, self._new_charge, values).first() is not None:
                return SandboxCharge(**values)
        with self.db.one_statement() as session:
            return session.scalars(select(SandboxCharge).where(SandboxCharge.reference == request.reference)).one()

    def find_sale(self, lookup: SaleLookup) -> SaleLookupResult:
        """The sandbox's own book is complete, so its absence is authoritative."""
        self.latency.wait()
        self._authenticate(lookup.credentials)
        with self.db.transaction() as session:
            row = session.scalars(select(SandboxCharge).where(SandboxCharge.reference == lookup.reference)).first()
            return SaleLookupResult.of(_charge(row)) if row is not None else SaleLookupResult.absent()

    def void(self, charge: ChargeRef, credentials: Credentials) -> Adjustment:
        self.latency.wait()
        self._authenticate(credentials)
        self._apply(
            charge.processor_transaction_id,
            "voided",
            0,
            (SandboxCharge.refunded == 0, SandboxCharge.settles_at > utcnow()),
            {"voided": True},
        )
        return Adjustment("sbx_v_" + secrets.token_hex(10), charge.amount, "void")

    def refund(self, charge: ChargeRef, amount: int, credentials: Credentials) -> Adjustment:
        self.latency.wait()
        self._authenticate(credentials)
        self._apply(
            charge.processor_transaction_id,
            "refunded",
            amount,
            (SandboxCharge.settles_at <= utcnow(), SandboxCharge.refunded + amount <= SandboxCharge.amount),
            {"refunded": SandboxCharge.refunded + amount},
        )
        return Adjustment("sbx_r_" + secrets.token_hex(10), amount, "refund")

    def _apply(self, charge_id: str, action: str, amount: int, guards: tuple[Any, ...], values: dict[str, Any]) -> None:
        """One guarded UPDATE, like a real processor's own book; refused with the reason otherwise."""
        with self.db.transaction() as session:
            done = session.connection().execute(
                update(SandboxCharge)
                .where(SandboxCharge.id == charge_id, SandboxCharge.voided.is_(False), *guards)
                .values(**values)
            ).rowcount
            if not done:
                raise AdjustmentRefused(self._why_not(session, charge_id, action, amount))

    def is_settled(self, charge: ChargeRef, credentials: Credentials) -> bool:
        self.latency.wait()
        self._authenticate(credentials)
        with self.db.transaction() as session:
            row = session.get(SandboxCharge, charge.processor_transaction_id)
            return row is not None and row.settles_at <= utcnow()

    def settle(self, before: datetime | None = None) -> int:
        """Settle every unsettled charge (created before ``before``); the `gateway sandbox settle` command."""
        now = utcnow()
        with self.db.transaction() as session:
            query = update(SandboxCharge).where(SandboxCharge.settles_at > now, SandboxCharge.voided.is_(False))
            if before is not None:
                query = query.where(SandboxCharge.created_at < before)
            return session.connection().execute(query.values(settles_at=now)).rowcount

    @staticmethod
    def _authenticate(credentials: Credentials) -> None:
        if credentials.login.strip().lower() == INVALID_LOGIN:
            raise MerchantAuthenticationError(
                "The store's payment settings are not working. Please contact the store.",
                merchant_message="The sandbox refused the merchant credentials (Credential 1 is 'invalid').",
            )

    @staticmethod
    def _why_not(session, processor_transaction_id: str, action: str, amount: int = 0) -> str:  # type: ignore[no-untyped-def]
        row = session.get(SandboxCharge, processor_transaction_id)
        if row is None:
            return f"no sandbox charge {processor_transaction_id}"
        if row.voided:
            return "the charge is already voided"
        if action == "voided" and row.settles_at <= utcnow():
            return "the charge has settled and can no longer be voided"
        if action == "voided":
            return "the charge has been partly refunded and can no longer be voided"
        if row.settles_at > utcnow():
            return "the charge has not settled yet; void it instead"
        return f"refund of {amount} exceeds the {row.amount - row.refunded} left to refund"


def _charge(row: SandboxCharge) -> ProcessorCharge:
    return ProcessorCharge(row.id, row.amount, row.currency, row.card_brand, row.card_last4)
