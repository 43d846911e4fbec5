"""Pay slots (gateway/admission.py): a rush of pay submissions is served nearly in arrival order,
waiting on the processor or the store holds no slot, and a submission that finds no slot within
its budget starts nothing and says so."""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Iterator

import pytest
from sqlalchemy import func, select

from gateway import create_app
from gateway.admission import Busy, Gate, network_wait
from gateway.config import Settings
from gateway.models import PaymentState, SandboxCharge
from gateway.processors import sandbox
from gateway.services import Services

from .flow_helpers import approve_all, notifications_sent, open_session, pay, payment_row
from .protocol_helpers import NOTIFY_URL, card_form


def wait_until_waiting(gate: Gate, returning: int = 0, timeout: float = 5.0) -> None:
    """Until ``returning`` holders wait to come back (a thread's position in the queue, not a timing)."""
    done = threading.Event()

    def check() -> None:
        while not done.is_set():
            with gate.newcomer_turn:
                if gate.returning >= returning:
                    return
            done.wait(0.005)

    checker = threading.Thread(target=check)
    checker.start()
    checker.join(timeout)
    done.set()
    assert gate.returning >= returning, "the thread never started waiting"


def test_a_gate_admits_as_many_as_it_has_slots_and_no_more():
    gate = Gate(2)
    assert gate.enter(timeout=None) and gate.enter(timeout=None)
    assert not gate.enter(timeout=0.05)
    gate.leave()
    assert gate.enter(timeout=0.05)


def test_a_holder_back_from_the_network_goes_before_newcomers():
    gate = Gate(1)
    assert gate.enter(timeout=None)  # the only slot is taken
    order: list[str] = []
    newcomer = threading.Thread(target=lambda: gate.enter(timeout=5) and order.append("newcomer"))
    newcomer.start()
    returner = threading.Thread(target=lambda: (gate.come_back(), order.append("returner")))
    returner.start()
    wait_until_waiting(gate, returning=1)
    gate.leave()  # the slot comes free: the returning holder takes it although the newcomer waited first
    returner.join(5)
    assert order == ["returner"]
    gate.leave()
    newcomer.join(5)
    assert order == ["returner", "newcomer"]


def test_a_newcomer_that_gives_up_passes_its_wake_up_on():
    gate = Gate(1)
    assert gate.enter(timeout=None)
    assert not gate.enter(timeout=0.01)
    gate.leave()
    assert gate.enter(timeout=0.5), "the slot freed after a timed-out waiter must still be takeable"


def test_waiting_on_the_network_gives_the_slot_back_and_takes_it_again():
    gate = Gate(1)
    with gate.slot(timeout=None):
        assert gate.free == 0
        with network_wait():
            assert gate.free == 1
            with network_wait():  # nested waits do not give the slot back twice
                assert gate.free == 1
        assert gate.free == 0
    assert gate.free == 1


def test_network_wait_outside_a_slot_changes_nothing():
    gate = Gate(1)
    with network_wait():  # the delivery worker, the CLI
        assert gate.free == 1


def test_a_slot_that_never_comes_free_is_busy():
    gate = Gate(1)
    with gate.slot(timeout=None):
        with pytest.raises(Busy):
            with gate.slot(timeout=0.01):
                pass  # pragma: no cover - never admitted
    assert gate.free == 1


@pytest.fixture
def one_slot(settings: Settings) -> Iterator[tuple[object, Services]]:
    """An app with a single pay slot and a short budget: a submission waits at most 1 s for it
    (the budget less the time its processor call may take)."""
    app = create_app(replace(settings, pay_slots=1, request_budget_seconds=1.5, processor_timeout_seconds=0.5))
    try:
        yield app, app.extensions["gateway"]
    finally:
        app.extensions["gateway"].db.dispose()


def test_pay_with_no_free_slot_charges_nothing_and_asks_to_press_pay_again(one_slot, store):
    app, services = one_slot
    client = app.test_client()
    approve_all(store)
    token, csrf = open_session(client)
    assert services.pay_slots.enter(timeout=None)  # another submission holds the worker's only slot
    try:
        busy = pay(client, token, csrf)
    finally:
        services.pay_slots.leave()
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "5"
    assert "Nothing was charged; please press Pay again." in busy.get_data(as_text=True)
    assert payment_row(services, token).state == PaymentState.OPEN.value
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 0
    assert notifications_sent(store) == []

    again = pay(client, token, csrf)
    assert again.status_code == 303
    assert payment_row(services, token).state == PaymentState.COMPLETED.value


def test_busy_message_is_in_the_shoppers_language(one_slot, store):
    app, services = one_slot
    client = app.test_client()
    token, csrf = open_session(client)
    assert services.pay_slots.enter(timeout=None)
    try:
        busy = client.post("/pay/submit", data=card_form(token, csrf), headers={"Accept-Language": "de"})
    finally:
        services.pay_slots.leave()
    assert busy.status_code == 503
    assert "bitte klicken Sie erneut auf Bezahlen" in busy.get_data(as_text=True)


def test_a_submission_waiting_on_the_processor_or_the_store_holds_no_slot(one_slot, store, monkeypatch):
    """While one shopper's charge waits on the processor, and its notification on the store, the
    worker's only slot is free for the next shopper."""
    app, services = one_slot
    seen: dict[str, int] = {}
    monkeypatch.setattr(sandbox.Latency, "wait", lambda _self: seen.setdefault("processor", services.pay_slots.free))

    def store_answers(_request):  # type: ignore[no-untyped-def]
        seen["store"] = services.pay_slots.free
        return 200, {}, '{"processed": 1, "errorcode": "", "errormessage": ""}'

    store.add_callback("POST", NOTIFY_URL, callback=store_answers)
    client = app.test_client()
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    assert seen == {"processor": 1, "store": 1}
    assert services.pay_slots.free == 1  # and given back at the end
