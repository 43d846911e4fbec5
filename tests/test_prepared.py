"""Statements run on the driver (gateway/prepared.py) behave as SQLAlchemy's own execution of them does:
the same values in and out, the same errors, and the engine's cursor events still see them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, bindparam, event, insert, literal, select
from sqlalchemy.exc import IntegrityError

from gateway import prepared
from gateway.models import Endpoint, Payment, PaymentEvent, PaymentState, SeenRequest, utcnow
from gateway.payments.queries import find_payment
from gateway.payments.states import PAYMENTS

from . import factories

STATE_TYPE = Payment.__table__.c.state.type
# Each column goes through its type on the way in and on the way out: an enum stored as its value, an
# aware UTC time (SQLite forgets the zone), JSON (text on SQLite), and a constant bound at compile time.
TYPED = select(bindparam("state", type_=STATE_TYPE).label("state"),
               bindparam("at", type_=SeenRequest.__table__.c.created_at.type).label("at"),
               bindparam("items", type_=JSON).label("items"),
               literal(PaymentState.COMPLETED, STATE_TYPE).label("constant"))
REMEMBER = insert(SeenRequest.__table__).values(
    randomkey=bindparam("randomkey"), endpoint=bindparam("endpoint", type_=SeenRequest.__table__.c.endpoint.type),
    digest=bindparam("digest"), created_at=bindparam("created_at", type_=SeenRequest.__table__.c.created_at.type))


def remembered(randomkey: str) -> dict[str, object]:
    return {"randomkey": randomkey, "endpoint": Endpoint.CHECKOUT, "digest": "d" * 64, "created_at": utcnow()}


def test_a_lookup_converts_its_parameters_and_columns_as_sqlalchemy_does(services):
    values = {"state": PaymentState.APPROVED, "at": datetime(2026, 11, 30, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
              "items": [{"itemid": "a-1", "quantity": "2", "unitprice": 1200}]}
    with services.db.engine.connect() as connection:
        expected = dict(connection.execute(TYPED, values).mappings().one())
    found = services.db.lookup(TYPED, values)
    assert found == expected
    assert found["state"] is PaymentState.APPROVED and found["constant"] is PaymentState.COMPLETED
    assert found["at"] == datetime(2026, 12, 1, 4, 59, tzinfo=timezone.utc) and found["items"][0]["unitprice"] == 1200


def test_a_lookup_of_nothing_is_none(services):
    assert services.db.lookup(select(SeenRequest.randomkey).where(SeenRequest.randomkey == bindparam("key")),
                              {"key": "never-used"}) is None


def test_a_write_counts_its_rows_and_a_duplicate_key_is_sqlalchemys_integrity_error(services):
    with services.db.core_statement() as connection:
        assert services.db.run(connection, REMEMBER, remembered("prepared-1")) == 1
    with pytest.raises(IntegrityError):
        with services.db.core_statement() as connection:
            services.db.run(connection, REMEMBER, remembered("prepared-1"))
    with services.db.transaction() as session:
        assert session.get(SeenRequest, "prepared-1").endpoint == Endpoint.CHECKOUT


def test_a_write_on_a_connection_is_seen_by_the_engines_cursor_events(services):
    """Statement logs, tracing and the tests' crash hooks listen there."""
    seen: list[str] = []
    listener = lambda _conn, _cursor, statement, *_rest: seen.append(statement.split()[0])  # noqa: E731
    event.listen(services.db.engine, "before_cursor_execute", listener)
    event.listen(services.db.engine, "after_cursor_execute", listener)
    try:
        with services.db.core_statement() as connection:
            services.db.run(connection, REMEMBER, remembered("prepared-2"))
    finally:
        event.remove(services.db.engine, "before_cursor_execute", listener)
        event.remove(services.db.engine, "after_cursor_execute", listener)
    assert seen.count("INSERT") == 2


NEW_EVENT = prepared.insert_of(PaymentEvent, ("payment_id", "kind")).returning(PaymentEvent.id, PaymentEvent.at, PaymentEvent.detail)
TO_AUTHORIZING = PAYMENTS.prepare(PaymentState.OPEN, PaymentState.AUTHORIZING, returning=(Payment.state, Payment.updated_at))


def test_a_write_gets_the_python_side_defaults_sqlalchemy_would_give_and_returns_rows_by_name(services):
    with factories.bound(services):
        payment = factories.PaymentFactory()
    before = utcnow()
    with services.db.core_statement() as connection:
        ran = prepared.run(connection, NEW_EVENT, {"payment_id": payment.id, "kind": "note"})
    row = ran.first()
    assert ran.rowcount == 1 and row.detail == "" and before <= row.at <= utcnow()  # default="" and default=utcnow
    assert ran.scalar_one() == row.id
    with services.db.transaction() as session:
        assert session.get(PaymentEvent, row.id).at == row.at


def test_a_guarded_move_on_the_driver_stamps_updated_at_as_its_onupdate_says(services):
    with factories.bound(services):
        payment = factories.PaymentFactory(updated_at=utcnow() - timedelta(days=1))
    with services.db.transaction() as session:
        moved = PAYMENTS.run(session, TO_AUTHORIZING, payment.id).first()
        lost = PAYMENTS.run(session, TO_AUTHORIZING, payment.id)
    assert moved.state is PaymentState.AUTHORIZING and utcnow() - moved.updated_at < timedelta(minutes=1)
    assert lost.rowcount == 0 and lost.first() is None


def test_an_insert_without_returning_answers_no_rows_even_where_sqlalchemy_returns_its_key(services):
    with factories.bound(services):
        payment = factories.PaymentFactory()
    with services.db.core_statement() as connection:
        ran = prepared.run(connection, prepared.insert_of(PaymentEvent, ("payment_id", "kind")), {"payment_id": payment.id, "kind": "x"})
    assert (ran.rowcount, ran.rows) == (1, [])


def test_a_read_with_plans_for_its_values_answers_its_first_row_by_name(services):
    values = {"state": PaymentState.APPROVED, "at": utcnow(), "items": [{"itemid": "a-1"}]}
    row = services.db.row(TYPED, values)
    assert (row.state, row.constant, row.items) == (PaymentState.APPROVED, PaymentState.COMPLETED, [{"itemid": "a-1"}])


def test_the_pay_paths_payment_read_is_the_whole_payment_with_its_notification(services):
    with factories.bound(services):
        notification = factories.NotificationFactory()
        payment = notification.payment
    found = find_payment(services, payment.token)
    with services.db.transaction() as session:
        loaded = session.get(Payment, payment.id)
        expected = {name: getattr(loaded, name) for name in Payment.__mapper__.columns.keys()}
    assert {name: getattr(found, name) for name in expected} == expected
    assert (found.notification.id, found.notification.state) == (notification.id, notification.state)
    assert find_payment(services, "no-such-token-000000") is None
