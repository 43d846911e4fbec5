"""The pay path's cost: what a purchase the store confirms reads from the database."""
from __future__ import annotations

from sqlalchemy import event

from gateway.models import PaymentState

from ..flow_helpers import approve_all, open_session, pay, payment_row
from ..protocol_helpers import RETURN_URL


def test_a_purchase_the_store_confirms_reads_the_payment_once(client, services, store, monkeypatch):
    """The store's processed=1 is recorded in the transaction that completes the payment: the shopper
    is sent to the returnurl without a second read of the payment."""
    token, csrf = open_session(client)
    approve_all(store)
    statements: list[str] = []

    def remember(_connection, _cursor, statement, *_rest):  # type: ignore[no-untyped-def]
        statements.append(statement)

    lookup = services.db.lookup  # lookups run on connections of their own, outside the engine's events
    monkeypatch.setattr(services.db, "lookup", lambda statement, values: remember(None, None, str(statement)) or lookup(statement, values))
    event.listen(services.db.engine, "before_cursor_execute", remember)
    try:
        answer = pay(client, token, csrf)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", remember)
    assert answer.status_code == 303 and answer.headers["Location"] == RETURN_URL
    assert payment_row(services, token).state == PaymentState.COMPLETED
    payment_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "\nFROM payments" in s]
    assert len(payment_reads) == 1, payment_reads
