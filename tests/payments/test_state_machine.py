"""The explicit state machines: only listed moves, each a compare-and-set that exactly one writer wins."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.machine import IllegalMove
from gateway.models import LedgerOutcome, NotificationState, Payment, PaymentState, PostOrderState
from gateway.notifications.outbox import NOTIFICATIONS
from gateway.payments.states import LEDGER, PAYMENTS, POST_ORDERS

from ..flow_helpers import open_session, payment_row


def test_a_move_the_machine_does_not_list_is_refused_before_touching_the_database(client, services):
    token, _ = open_session(client)
    with services.db.transaction() as session, pytest.raises(IllegalMove):
        PAYMENTS.move(session, payment_row(services, token).id, PaymentState.COMPLETED, PaymentState.OPEN)


def test_of_two_writers_from_the_same_state_exactly_one_wins(client, services):
    token, _ = open_session(client)
    payment_id = payment_row(services, token).id
    with services.db.transaction() as session:
        assert PAYMENTS.move(session, payment_id, PaymentState.OPEN, PaymentState.AUTHORIZING)
    with services.db.transaction() as session:
        assert not PAYMENTS.move(session, payment_id, PaymentState.OPEN, PaymentState.CANCELLED)
    assert payment_row(services, token).state == "authorizing"


def test_a_guard_beyond_the_state_is_part_of_the_compare(client, services):
    token, _ = open_session(client)
    payment_id = payment_row(services, token).id
    with services.db.transaction() as session:
        assert not PAYMENTS.move(session, payment_id, PaymentState.OPEN, PaymentState.AUTHORIZING, Payment.attempt == 7)
        assert session.scalars(select(Payment.state)).one() == "open"


@pytest.mark.parametrize("machine, final", [
    (PAYMENTS, [PaymentState.COMPLETED, PaymentState.REJECTED, PaymentState.FAILED, PaymentState.CANCELLED]),
    (LEDGER, [LedgerOutcome.APPROVED, LedgerOutcome.DECLINED]),
    (POST_ORDERS, [PostOrderState.ANSWERED]),
    (NOTIFICATIONS, [NotificationState.DELIVERED]),
])
def test_final_states_have_no_way_out(machine, final):
    assert all(machine.is_final(state.value) for state in final)
    assert not machine.is_final(next(iter(machine.moves)).value)


def test_racing_writers_on_the_real_database_exactly_one_wins(client, services):
    import threading

    token, _ = open_session(client)
    payment_id = payment_row(services, token).id
    barrier = threading.Barrier(6)
    results: list[bool] = []

    def race() -> None:
        barrier.wait()
        with services.db.transaction() as session:
            results.append(PAYMENTS.move(session, payment_id, PaymentState.OPEN, PaymentState.AUTHORIZING))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
