"""Migrations keep every row's money and meaning on the way up and on the way back, on both engines.

The tables are described here as each revision had them (frozen, like the migrations themselves):
the models describe only the newest schema."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gateway.db import make_engine
from gateway.migrate import alembic_config, upgrade
from gateway.models import utcnow

from ..flow_helpers import wipe_database
from .rows import payment_row

PAYMENT_COLUMNS = {
    "token": sa.String, "store_key": sa.String, "orderid": sa.BigInteger, "invoice": sa.String, "randomkey": sa.String,
    "currency": sa.String, "amount_total": sa.BigInteger, "tax_total": sa.BigInteger, "shipping_total": sa.BigInteger,
    "discount": sa.BigInteger, "email": sa.String, "billing": sa.JSON, "shipping": sa.JSON, "items": sa.JSON,
    "cancel_url": sa.String, "error_url": sa.String, "notification_url": sa.String, "return_url": sa.String,
    "credentials_fingerprint": sa.String, "test_mode": sa.Boolean, "state": sa.String, "attempt": sa.Integer,
    "decline_count": sa.Integer, "last_decline": sa.String, "card_brand": sa.String, "card_last4": sa.String,
    "error_code": sa.String, "error_message": sa.String, "attention": sa.String, "failures": sa.Integer,
    "expires_at": sa.DateTime(timezone=True), "created_at": sa.DateTime(timezone=True),
    "updated_at": sa.DateTime(timezone=True),
}
CHARGE_COLUMNS = ("processor", "orderid", "invoice", "currency", "amount", "card_brand", "card_last4", "card_exp_month",
                  "card_exp_year", "test_mode", "credentials_fingerprint", "lock_version", "created_at")
ENTRY_COLUMNS = ("kind", "amount", "outcome", "message", "attention", "created_at")


def table(name: str, *columns: str, **typed: Any) -> sa.TableClause:
    return sa.table(name, sa.column("id"), *(sa.column(c) for c in columns), *(sa.column(c, t) for c, t in typed.items()))


def charge(orderid: int) -> dict[str, Any]:
    return {"processor": "sandbox", "orderid": orderid, "invoice": f"INV{orderid}", "currency": "USD", "amount": 1000,
            "card_brand": "visa", "card_last4": "1111", "card_exp_month": 12, "card_exp_year": 2030, "test_mode": True,
            "credentials_fingerprint": "f" * 64, "lock_version": 0, "created_at": utcnow()}


def entry(kind: str, amount: int, outcome: str) -> dict[str, Any]:
    return {"kind": kind, "amount": amount, "outcome": outcome, "message": "", "attention": "", "created_at": utcnow()}


@pytest.fixture
def at_0006(clean_database: str) -> Iterator[tuple[str, Engine]]:
    """The database as revision 0006 left it; brought back to the newest revision afterwards."""
    command.downgrade(alembic_config(clean_database), "0006")
    engine = make_engine(clean_database)
    try:
        yield clean_database, engine
    finally:
        engine.dispose()
        upgrade(clean_database)
        wipe_database(clean_database)


def test_migration_0007_keeps_money_and_goes_back(at_0006):
    """From 0006 with a partly refunded and a voided charge: up keeps the refunded total, down restores the old columns."""
    url, engine = at_0006
    payments = table("payment_sessions", **PAYMENT_COLUMNS)
    charges = table("transactions", "session_id", "processor_txn_id", "amount_refunded", "voided", *CHARGE_COLUMNS)
    entries = table("ledger_entries", "transaction_id", *ENTRY_COLUMNS)
    with engine.begin() as connection:
        ids = []
        for orderid, voided in ((1, False), (2, True)):
            payment_id = connection.execute(payments.insert().returning(payments.c.id), payment_row(orderid)).scalar_one()
            ids.append(connection.execute(charges.insert().returning(charges.c.id), {
                **charge(orderid), "session_id": payment_id, "processor_txn_id": f"sbx_{orderid}",
                "amount_refunded": 0 if voided else 300, "voided": voided,
            }).scalar_one())
        refunded, voided_id = ids
        for kind, amount, outcome in (("sale", 1000, "approved"), ("refund", 300, "approved"),
                                      ("refund", 200, "declined"), ("refund", 100, "unknown")):
            connection.execute(entries.insert(), {**entry(kind, amount, outcome), "transaction_id": refunded})
        for kind, amount, outcome in (("sale", 1000, "approved"), ("void", 1000, "approved")):
            connection.execute(entries.insert(), {**entry(kind, amount, outcome), "transaction_id": voided_id})

    upgrade(url, "0007")
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT id, refunded FROM transactions")).all()) == {
            refunded: 400, voided_id: 0}  # the unknown refund holds its amount too
        columns = {c["name"] for c in sa.inspect(connection).get_columns("transactions")}
        assert "refunded" in columns and not {"amount_refunded", "voided"} & columns
    with pytest.raises(IntegrityError, match="ck_transactions_refunded"):
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE transactions SET refunded = 1001"))

    command.downgrade(alembic_config(url), "0006")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, amount_refunded, voided FROM transactions")).all()
        assert {row[0]: (row[1], bool(row[2])) for row in rows} == {refunded: (300, False), voided_id: (0, True)}
        assert sa.inspect(connection).get_check_constraints("transactions") == []
        connection.execute(sa.text("UPDATE ledger_entries SET outcome = 'error' WHERE id = 1"))  # no CHECK at 0006
        connection.rollback()


def test_migration_0008_renames_to_the_glossary_and_keeps_every_row(at_0006):
    """Payments, charges, their ledger and notifications keep their rows and links through 0008 and back."""
    url, engine = at_0006
    upgrade(url, "0007")
    payments = table("payment_sessions", **PAYMENT_COLUMNS)
    charges = table("transactions", "session_id", "processor_txn_id", "refunded", *CHARGE_COLUMNS)
    entries = table("ledger_entries", "transaction_id", *ENTRY_COLUMNS)
    notifications = table("notifications", "session_id", "url", "state", "attempts", "lease", "next_attempt_at",
                          "response_errorcode", "response_errormessage", "last_error", "created_at", payload=sa.JSON)
    with engine.begin() as connection:
        payment_id = connection.execute(payments.insert().returning(payments.c.id), payment_row(7)).scalar_one()
        charge_id = connection.execute(charges.insert().returning(charges.c.id), {
            **charge(7), "session_id": payment_id, "processor_txn_id": "sbx_7", "refunded": 250}).scalar_one()
        connection.execute(entries.insert(), {**entry("sale", 1000, "approved"), "transaction_id": charge_id})
        connection.execute(entries.insert(), {**entry("refund", 250, "approved"), "transaction_id": charge_id})
        connection.execute(notifications.insert(), {"session_id": payment_id, "url": "https://s/n", "payload": {},
                                                    "state": "delivered", "attempts": 1, "lease": 1,
                                                    "next_attempt_at": utcnow(), "response_errorcode": "",
                                                    "response_errormessage": "", "last_error": "", "created_at": utcnow()})

    upgrade(url, "0008")
    linked = ("SELECT p.orderid, c.processor_transaction_id, c.refunded, SUM(l.amount), n.state FROM payments p "
              "JOIN charges c ON c.payment_id = p.id JOIN ledger_entries l ON l.charge_id = c.id "
              "JOIN notifications n ON n.payment_id = p.id GROUP BY p.orderid, c.processor_transaction_id, c.refunded, n.state")
    with engine.connect() as connection:
        assert connection.execute(sa.text(linked)).all() == [(7, "sbx_7", 250, 1250, "delivered")]
        inspector = sa.inspect(connection)
        assert {"payments", "charges", "console_sign_ins"} <= set(inspector.get_table_names())
        assert not {"payment_sessions", "transactions", "console_sessions"} & set(inspector.get_table_names())
        assert "ix_charges_processor_transaction_id" in {i["name"] for i in inspector.get_indexes("charges")}
    with pytest.raises(IntegrityError, match="ck_charges_refunded"):
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE charges SET refunded = 1001"))
    with pytest.raises(IntegrityError):  # a ledger entry still belongs to an existing charge
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE ledger_entries SET charge_id = 999999"))

    command.downgrade(alembic_config(url), "0007")
    with engine.connect() as connection:
        old = linked.replace("payments p", "payment_sessions p").replace("charges c", "transactions c")
        old = old.replace("c.payment_id", "c.session_id").replace("l.charge_id", "l.transaction_id")
        old = old.replace("n.payment_id", "n.session_id").replace("processor_transaction_id", "processor_txn_id")
        assert connection.execute(sa.text(old)).all() == [(7, "sbx_7", 250, 1250, "delivered")]
        assert "ck_transactions_refunded" in {c["name"] for c in sa.inspect(connection).get_check_constraints("transactions")}


def test_migration_0009_keeps_charges_and_adds_their_avs_and_cvv_results(at_0006):
    """A charge from before 0009 reads as "unknown" (empty) results; codes longer than 4 are refused; down drops them."""
    url, engine = at_0006
    upgrade(url, "0008")
    payments = table("payments", **PAYMENT_COLUMNS)
    charges = table("charges", "payment_id", "processor_transaction_id", "refunded", *CHARGE_COLUMNS)
    with engine.begin() as connection:
        payment_id = connection.execute(payments.insert().returning(payments.c.id), payment_row(9)).scalar_one()
        connection.execute(charges.insert(), {**charge(9), "payment_id": payment_id, "processor_transaction_id": "sbx_9",
                                              "refunded": 0})

    upgrade(url, "0009")
    with engine.begin() as connection:
        assert connection.execute(sa.text("SELECT processor_transaction_id, amount, avs_result, cvv_result "
                                          "FROM charges")).all() == [("sbx_9", 1000, "", "")]
        connection.execute(sa.text("UPDATE charges SET avs_result = 'Y', cvv_result = 'M'"))
    for column in ("avs_result", "cvv_result"):
        with pytest.raises(IntegrityError, match=f"ck_charges_{column}"):
            with engine.begin() as connection:
                connection.execute(sa.text(f"UPDATE charges SET {column} = 'YYYYY'"))

    command.downgrade(alembic_config(url), "0008")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT processor_transaction_id, amount FROM charges")).all() == [("sbx_9", 1000)]
        inspector = sa.inspect(connection)
        assert not {"avs_result", "cvv_result"} & {c["name"] for c in inspector.get_columns("charges")}
        assert {c["name"] for c in inspector.get_check_constraints("charges")} == {"ck_charges_amount", "ck_charges_refunded"}
