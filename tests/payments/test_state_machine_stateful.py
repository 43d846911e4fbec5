"""Random interleavings of paying, double submits, store answers, voids, refunds, crashes and recovery;
the money invariants are checked after every step, on SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import itertools
import os
from datetime import timedelta
from typing import Any

import requests
import responses
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select, update

from gateway import create_app
from gateway.config import load_settings
from gateway.jobs.rounds import run_once
from gateway.models import (
    Charge,
    LedgerEntry,
    Notification,
    Payment,
    PostOrderRequest,
    SandboxCharge,
    utcnow,
)
from gateway.payments import ledger

from ..flow_helpers import pay, wipe_database
from ..protocol_helpers import NOTIFY_URL, PRIVATE_KEY, complete_order_answer, csrf_from, signed_checkout, signed_refund

ORDERS = (1001, 1002)
LONG_AGO = timedelta(hours=2)


class Crash(BaseException):
    """The process dies: nothing after this line runs, no handler of Exception sees it."""


def gateway_machine(database_url: str) -> type[RuleBasedStateMachine]:
    class Gateway(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            wipe_database(database_url)
            self.app = create_app(load_settings({}, database_url=database_url, private_key=PRIVATE_KEY,
                                                public_url="https://gateway.test"))
            self.services = self.app.extensions["gateway"]
            self.client = self.app.test_client()
            self.store_mode = "1"
            self.store = responses.RequestsMock(assert_all_requests_are_fired=False)
            self.store.start()
            self.store.add_callback(responses.POST, NOTIFY_URL, callback=self._store_answer)
            self.keys = itertools.count()
            self.real_sale, self.real_void = self.services.processor.sale, self.services.processor.void

        def _store_answer(self, request: Any) -> Any:
            if self.store_mode == "down":
                raise requests.ConnectionError("store down")
            return 200, {}, __import__("json").dumps(complete_order_answer(int(self.store_mode)))

        def teardown(self) -> None:
            try:
                self._drain()
                self._check_every_charge_ended()
            finally:
                self.store.stop()
                self.store.reset()
                self.services.db.dispose()

        # ---- the steps ---------------------------------------------------------------------
        @rule(order=st.sampled_from(ORDERS), card=st.sampled_from(["4242424242424242", "4000000000000002"]),
              double=st.booleans())
        def checkout_and_pay(self, order: int, card: str, double: bool) -> None:
            opened = self._open(order)
            if opened is None:
                return  # the order is already paid: a new checkout is refused
            token, csrf = opened
            pay(self.client, token, csrf, number=card)
            if double:
                pay(self.client, token, csrf, number=card)

        @rule(order=st.sampled_from(ORDERS), charged_first=st.booleans())
        def crash_mid_sale(self, order: int, charged_first: bool) -> None:
            def die(request: Any) -> Any:
                if charged_first:
                    self.real_sale(request)
                raise Crash

            opened = self._open(order)
            if opened is None:
                return
            self.services.processor.sale = die  # type: ignore[method-assign]
            try:
                pay(self.client, *opened)
            except Crash:
                pass
            finally:
                self.services.processor.sale = self.real_sale  # type: ignore[method-assign]

        @rule()
        def crash_mid_reversal(self) -> None:
            def die(*args: Any) -> Any:
                self.real_void(*args)
                raise Crash

            self.services.processor.void = die  # type: ignore[method-assign]
            try:
                self._round()
            except Crash:
                pass
            finally:
                self.services.processor.void = self.real_void  # type: ignore[method-assign]

        @rule(mode=st.sampled_from(["1", "0", "down"]))
        def store_answers(self, mode: str) -> None:
            self.store_mode = mode

        @rule()
        def worker_round(self) -> None:
            self._round()

        @rule()
        def settle(self) -> None:
            self.services.processor.settle()

        @rule(order=st.sampled_from(ORDERS), kind=st.sampled_from(["void", "refund"]),
              amount=st.sampled_from([1000, 5000, 12312]), retry=st.booleans())
        def merchant_void_or_refund(self, order: int, kind: str, amount: int, retry: bool) -> None:
            with self.services.db.transaction() as session:
                transaction = session.scalars(select(Charge).where(Charge.orderid == order)).first()
            if transaction is None:
                return
            body = signed_refund(orderid=order, type=kind, transactionid=transaction.processor_transaction_id,
                                 amounttotal=amount, randomkey=f"po{next(self.keys)}")
            first = self.client.post("/post-order", json=body).get_json()
            if retry:
                assert self.client.post("/post-order", json=body).get_json() == first  # a retry moves no money

        @rule(order=st.sampled_from(ORDERS), amount=st.sampled_from([1000, 12312]))
        def crash_mid_refund_then_retry(self, order: int, amount: int) -> None:
            with self.services.db.transaction() as session:
                transaction = session.scalars(select(Charge).where(Charge.orderid == order)).first()
            if transaction is None:
                return
            body = signed_refund(orderid=order, type="refund", transactionid=transaction.processor_transaction_id,
                                 amounttotal=amount, randomkey=f"po{next(self.keys)}")
            real_refund = self.services.processor.refund

            def die(*args: Any) -> Any:
                real_refund(*args)
                raise Crash

            self.services.processor.refund = die  # type: ignore[method-assign]
            try:
                self.client.post("/post-order", json=body)
            except Crash:
                pass
            finally:
                self.services.processor.refund = real_refund  # type: ignore[method-assign]
            self._age()
            retried = self.client.post("/post-order", json=body).get_json()
            assert retried["approved"] in (0, 1) and retried["signature"]

        @rule()
        def time_passes_and_recovery_runs(self) -> None:
            self._age()
            self._round()

        # ---- invariants after every step -------------------------------------------------------
        @invariant()
        def never_more_returned_than_captured(self) -> None:
            with self.services.db.transaction() as session:
                for transaction in session.scalars(select(Charge)):
                    balance = ledger.balance(session, transaction)
                    assert balance.refunded <= balance.captured
                    charge = session.get(SandboxCharge, transaction.processor_transaction_id)
                    assert charge.refunded <= charge.amount and not (charge.voided and charge.refunded)

        @invariant()
        def never_two_charges_for_one_order(self) -> None:
            """At most one charge per order is kept; any other belongs to an order the store rejected,
            whose money goes back (checked by nothing_stuck_without_a_reason)."""
            with self.services.db.transaction() as session:
                kept: dict[int, int] = {}
                for charge in session.scalars(select(SandboxCharge)):
                    payment = session.get(Payment, int(charge.reference[2:].split("a")[0]))
                    if payment.state != "rejected":
                        kept[payment.orderid] = kept.get(payment.orderid, 0) + 1
            assert all(count <= 1 for count in kept.values()), kept

        @invariant()
        def every_processor_charge_is_recorded_or_being_resolved(self) -> None:
            with self.services.db.transaction() as session:
                for charge in session.scalars(select(SandboxCharge)):
                    payment = session.get(Payment, int(charge.reference[2:].split("a")[0]))
                    recorded = session.scalars(
                        select(Charge).where(Charge.processor_transaction_id == charge.id)).first()
                    assert recorded is not None or payment.state == "authorizing", (charge.id, payment.state)

        @invariant()
        def nothing_stuck_without_a_reason(self) -> None:
            with self.services.db.transaction() as session:
                for payment in session.scalars(select(Payment).where(Payment.state == "rejected")):
                    transaction = session.scalars(select(Charge).where(Charge.payment_id == payment.id)).first()
                    if transaction is None:
                        continue
                    left = ledger.balance(session, transaction).remaining
                    assert left == 0 or payment.credentials_sealed is not None or payment.attention, payment.id

        # ---- helpers -------------------------------------------------------------------------
        def _open(self, order: int) -> tuple[str, str] | None:
            answer = self.client.post("/checkout", json=signed_checkout(orderid=order, randomkey=f"rk{next(self.keys)}"))
            token = answer.get_json()["paymenttoken"]
            if not token:
                assert "already paid" in answer.get_json()["errormessage"]
                return None
            return token, csrf_from(self.client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True))

        def _round(self) -> None:
            with self.services.db.transaction() as session:
                session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
                session.execute(update(Payment).where(Payment.retry_at.is_not(None))
                                .values(retry_at=utcnow() - timedelta(seconds=1)))
            run_once(self.services)

        def _age(self) -> None:
            past = utcnow() - LONG_AGO
            with self.services.db.transaction() as session:
                session.execute(update(Payment).where(Payment.state == "authorizing").values(updated_at=past))
                session.execute(update(LedgerEntry).where(LedgerEntry.outcome == "pending").values(created_at=past))
                session.execute(update(PostOrderRequest).values(claimed_at=past))

        def _drain(self) -> None:
            """Everything heals: the store answers, time passes, the worker runs until nothing changes."""
            if self.store_mode == "down":
                self.store_mode = "1"
            for _ in range(4):
                self._age()
                self._round()

        def _check_every_charge_ended(self) -> None:
            """Accepted by the store, fully reversed, or in needs-attention with a reason; and the books match
            the processor's for every charge nobody has flagged."""
            with self.services.db.transaction() as session:
                for transaction in session.scalars(select(Charge)):
                    payment = session.get(Payment, transaction.payment_id)
                    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.charge_id == transaction.id)).all()
                    flagged = bool(payment.attention) or any(e.attention or e.outcome in ("unknown", "pending") for e in entries)
                    remaining = ledger.balance(session, transaction).remaining
                    ended = payment.state == "completed" or (payment.state == "rejected" and remaining == 0)
                    assert ended or flagged, (payment.id, payment.state, remaining, payment.attention)
                    if flagged:
                        continue
                    charge = session.get(SandboxCharge, transaction.processor_transaction_id)
                    approved = [e for e in entries if e.outcome == "approved"]
                    assert charge.voided == any(e.kind == "void" for e in approved)
                    assert charge.refunded == sum(e.amount for e in approved if e.kind == "refund")

    return Gateway


def test_random_interleavings_keep_the_money_invariants(database_url: str) -> None:
    machine = gateway_machine(database_url)
    run_state_machine_as_test(machine, settings=settings(
        # 20 under the "ci" profile, fewer under "dev" (conftest); STATEFUL_EXAMPLES overrides both.
        max_examples=int(os.environ.get('STATEFUL_EXAMPLES', min(20, settings.default.max_examples))),
        stateful_step_count=15, deadline=None, database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
