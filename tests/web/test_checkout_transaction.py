"""Exchange 1 as one transaction: the randomkey's replay record and the new session, together or not at all."""
from __future__ import annotations

import threading
from typing import Any, Iterator

import pytest
from sqlalchemy import event, func, select

from gateway.models import Payment, SeenRequest
from gateway.payments import checkout as checkout_module

from ..protocol_helpers import post_json, signed_checkout, signed_refund


def count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def statements(services) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Each statement the engine runs, and COMMIT for each commit, in order."""
    seen: list[str] = []

    def on_statement(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()[:3]))

    def on_commit(_conn) -> None:  # type: ignore[no-untyped-def]
        seen.append("COMMIT")

    engine = services.db.engine
    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    yield seen
    event.remove(engine, "before_cursor_execute", on_statement)
    event.remove(engine, "commit", on_commit)


def race(client_of, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Post the bodies at once, each from its own thread and client; answers in the same order."""
    start = threading.Barrier(len(bodies))
    answers: list[dict[str, Any]] = [{} for _ in bodies]

    def send(index: int) -> None:
        client = client_of()
        start.wait()
        answers[index] = post_json(client, "/checkout", bodies[index])

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_a_checkout_is_one_transaction_with_one_commit(client, services, statements):
    assert post_json(client, "/checkout", signed_checkout())["errormessage"] == ""
    assert statements.count("COMMIT") == 1
    assert count(services, SeenRequest) == 1 and count(services, Payment) == 1


def test_a_fresh_checkout_writes_its_replay_record_without_reading_it_first(client, services, statements):
    assert post_json(client, "/checkout", signed_checkout())["errormessage"] == ""
    assert not [s for s in statements if s.startswith("SELECT") and "seen_requests" in s]
    writes = [s for s in statements if s.startswith(("INSERT", "WITH"))]
    if services.db.dialect == "postgresql":  # both inserts in one statement: one round trip
        assert writes == ["WITH claimed AS"]
    else:
        assert writes == ["INSERT INTO seen_requests", "INSERT INTO payments"]


def test_a_randomkey_used_for_a_refund_is_refused_at_checkout(client, services):
    refund = signed_refund(randomkey="shared-randomkey-1")
    post_json(client, "/post-order", refund)
    answer = post_json(client, "/checkout", signed_checkout(randomkey="shared-randomkey-1"))
    assert answer["errorcode"] == "100" and "already used" in answer["errormessage"]
    assert count(services, Payment) == 0


def test_a_crash_between_the_replay_record_and_the_session_leaves_neither(client, services):
    def crash(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if "INSERT INTO payments" in statement:
            raise RuntimeError("the process died here")

    event.listen(services.db.engine, "before_cursor_execute", crash)
    try:
        answer = post_json(client, "/checkout", signed_checkout())
    finally:
        event.remove(services.db.engine, "before_cursor_execute", crash)
    assert answer["errorcode"] != "" and answer["paymenttoken"] == ""
    assert count(services, SeenRequest) == 0 and count(services, Payment) == 0
    # The randomkey was not burned: the platform's retry of the same request starts the checkout.
    assert post_json(client, "/checkout", signed_checkout())["paymenttoken"]


def test_two_racing_identical_checkouts_get_one_session(app, services):
    body = signed_checkout()
    answers = race(app.test_client, [body] * 4)
    assert all(answer["errormessage"] == "" for answer in answers)
    assert len({answer["paymenttoken"] for answer in answers}) == 1
    assert count(services, Payment) == 1 and count(services, SeenRequest) == 1


def test_two_racing_checkouts_reusing_a_randomkey_one_wins_the_other_is_refused(app, services):
    answers = race(app.test_client, [signed_checkout(), signed_checkout(orderid=999, invoice="AB-999", randomkey="abc321123xyz")])
    winners = [answer for answer in answers if answer["paymenttoken"]]
    losers = [answer for answer in answers if not answer["paymenttoken"]]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0]["errorcode"] == "100" and "already used" in losers[0]["errormessage"]
    assert count(services, Payment) == 1


@pytest.mark.parametrize("name", ["_CLAIM_AND_INSERT", "_INSERT_UNLESS_PAID_OR_SPENT", "PAID_INVOICE"])
def test_a_checkout_statement_is_rendered_once_not_at_every_checkout(services, name):
    """An expanding IN (the paid states) re-rendered the statement's SQL at every checkout."""
    statement = getattr(checkout_module, name)
    assert "POSTCOMPILE" not in str(statement.compile(dialect=services.db.engine.dialect))
