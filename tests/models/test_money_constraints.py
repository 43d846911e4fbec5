"""The database guards money: each named CHECK refuses a bad row whatever code writes it, on both
engines, and ``charges.refunded`` stays in step (the migrations that made them: tests/models/test_migrations.py)."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import make_engine
from gateway.models import (
    Base,
    Charge,
    ConsoleAccount,
    LedgerEntry,
    LedgerKind,
    LedgerOutcome,
    Notification,
    Payment,
    PaymentState,
    PostOrderRequest,
    SandboxCharge,
    SeenRequest,
    utcnow,
)
from gateway.payments import ledger

from .rows import payment_row


@pytest.fixture
def engine(clean_database: str) -> Iterator[Engine]:
    engine = make_engine(clean_database)
    yield engine
    engine.dispose()


def charge_row(payment_id: int, amount: int = 1000) -> dict[str, Any]:
    return {
        "payment_id": payment_id, "processor": "sandbox", "processor_transaction_id": f"sbx_{payment_id}", "orderid": 1,
        "invoice": "INV1", "currency": "USD", "amount": amount, "card_brand": "visa", "card_last4": "1111",
        "card_exp_month": 12, "card_exp_year": 2030, "test_mode": True, "credentials_fingerprint": "f" * 64,
        "lock_version": 0, "created_at": utcnow(),
    }


def entry_row(charge_id: int, kind: str, amount: int, outcome: str) -> dict[str, Any]:
    return {"charge_id": charge_id, "kind": kind, "amount": amount, "outcome": outcome, "message": "",
            "attention": "", "created_at": utcnow()}


def charged(engine: Engine, amount: int = 1000) -> tuple[int, int]:
    """A paid payment with its charge and sale entry, written with plain strings as the pay path does."""
    with engine.begin() as connection:
        payment_id = connection.execute(Payment.__table__.insert().returning(Payment.__table__.c.id),
                                        payment_row()).scalar_one()
        charge_id = connection.execute(Charge.__table__.insert().returning(Charge.__table__.c.id),
                                            charge_row(payment_id, amount)).scalar_one()
        connection.execute(LedgerEntry.__table__.insert(), entry_row(charge_id, "sale", amount, "approved"))
    return payment_id, charge_id


@pytest.fixture
def rows(engine: Engine) -> dict[str, Any]:
    """One valid row in every guarded table; each test then breaks one value with raw SQL."""
    payment_id, charge_id = charged(engine)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(Notification.__table__.insert(), {
            "payment_id": payment_id, "url": "https://s/n", "payload": {}, "next_attempt_at": now, "lease": 0})
        connection.execute(PostOrderRequest.__table__.insert(), {"orderid": 1, "randomkey": "rk-refund"})
        connection.execute(SandboxCharge.__table__.insert(), {
            "id": "sbx_1", "reference": "r1", "amount": 1000, "currency": "USD", "card_brand": "visa",
            "card_last4": "1111", "voided": False, "refunded": 0, "settles_at": now, "created_at": now})
        connection.execute(SeenRequest.__table__.insert(), {"randomkey": "rk1", "endpoint": "checkout",
                                                            "digest": "d", "created_at": now})
        connection.execute(ConsoleAccount.__table__.insert(), {"username": "ann", "password_hash": "x",
                                                               "role": "viewer", "active": True, "totp_last_step": 0})
        entry_id = connection.scalar(sa.select(sa.func.max(LedgerEntry.id)))
        notification_id = connection.scalar(sa.select(sa.func.max(Notification.id)))
        post_order_id = connection.scalar(sa.select(sa.func.max(PostOrderRequest.id)))
        account_id = connection.scalar(sa.select(sa.func.max(ConsoleAccount.id)))
    return {"payments": payment_id, "charges": charge_id, "ledger_entries": entry_id,
            "notifications": notification_id, "post_order_requests": post_order_id, "sandbox_charges": "sbx_1",
            "seen_requests": "rk1", "console_accounts": account_id}


def refuses(engine: Engine, rows: dict[str, Any], constraint: str, table: str, assignment: str) -> None:
    """A raw UPDATE setting ``assignment`` on the table's row is refused, naming ``constraint``."""
    key = {"seen_requests": "randomkey"}.get(table, "id")
    with pytest.raises(IntegrityError) as refused:
        with engine.begin() as connection:
            connection.execute(sa.text(f"UPDATE {table} SET {assignment} WHERE {key} = :key"), {"key": rows[table]})
    assert constraint in str(refused.value)


def test_ck_payments_state(engine, rows):
    refuses(engine, rows, "ck_payments_state", "payments", "state = 'paid'")


def test_ck_payments_amount_total(engine, rows):
    """The CheckoutRequest schema accepts amounttotal from 1, and so does the database."""
    refuses(engine, rows, "ck_payments_amount_total", "payments", "amount_total = 0")
    refuses(engine, rows, "ck_payments_amount_total", "payments", "amount_total = -1")


def test_ck_payments_tax_total(engine, rows):
    refuses(engine, rows, "ck_payments_tax_total", "payments", "tax_total = -1")


def test_ck_payments_shipping_total(engine, rows):
    refuses(engine, rows, "ck_payments_shipping_total", "payments", "shipping_total = -1")


def test_ck_payments_discount(engine, rows):
    refuses(engine, rows, "ck_payments_discount", "payments", "discount = -1")


def test_ck_payments_attempt(engine, rows):
    refuses(engine, rows, "ck_payments_attempt", "payments", "attempt = -1")


def test_ck_payments_decline_count(engine, rows):
    refuses(engine, rows, "ck_payments_decline_count", "payments", "decline_count = -1")


def test_ck_payments_failures(engine, rows):
    refuses(engine, rows, "ck_payments_failures", "payments", "failures = -1")


def test_ck_charges_amount(engine, rows):
    refuses(engine, rows, "ck_charges_amount", "charges", "amount = 0")


def test_ck_charges_refunded(engine, rows):
    """Refunded never above captured, and never below nothing."""
    refuses(engine, rows, "ck_charges_refunded", "charges", "refunded = amount + 1")
    refuses(engine, rows, "ck_charges_refunded", "charges", "refunded = -1")
    with engine.begin() as connection:  # the whole amount is fine
        connection.execute(sa.text("UPDATE charges SET refunded = amount WHERE id = :id"),
                           {"id": rows["charges"]})


def test_ck_charges_avs_result(engine, rows):
    """A processor's AVS code is a letter or two; more is not a code (4 characters at most)."""
    refuses(engine, rows, "ck_charges_avs_result", "charges", "avs_result = 'YYYYY'")


def test_ck_charges_cvv_result(engine, rows):
    refuses(engine, rows, "ck_charges_cvv_result", "charges", "cvv_result = 'MMMMM'")


def test_ck_ledger_entries_kind(engine, rows):
    refuses(engine, rows, "ck_ledger_entries_kind", "ledger_entries", "kind = 'chargeback'")


def test_ck_ledger_entries_outcome(engine, rows):
    refuses(engine, rows, "ck_ledger_entries_outcome", "ledger_entries", "outcome = 'error'")


def test_ck_ledger_entries_amount(engine, rows):
    refuses(engine, rows, "ck_ledger_entries_amount", "ledger_entries", "amount = 0")


def test_ck_post_order_requests_state(engine, rows):
    refuses(engine, rows, "ck_post_order_requests_state", "post_order_requests", "state = 'done'")


def test_ck_notifications_state(engine, rows):
    refuses(engine, rows, "ck_notifications_state", "notifications", "state = 'sent'")


def test_ck_notifications_attempts(engine, rows):
    refuses(engine, rows, "ck_notifications_attempts", "notifications", "attempts = -1")


def test_ck_notifications_lease(engine, rows):
    refuses(engine, rows, "ck_notifications_lease", "notifications", "lease = -1")


def test_ck_sandbox_charges_amount(engine, rows):
    refuses(engine, rows, "ck_sandbox_charges_amount", "sandbox_charges", "amount = 0")


def test_ck_sandbox_charges_refunded(engine, rows):
    refuses(engine, rows, "ck_sandbox_charges_refunded", "sandbox_charges", "refunded = amount + 1")
    refuses(engine, rows, "ck_sandbox_charges_refunded", "sandbox_charges", "refunded = -1")


def test_ck_seen_requests_endpoint(engine, rows):
    refuses(engine, rows, "ck_seen_requests_endpoint", "seen_requests", "endpoint = 'refund'")


def test_ck_console_accounts_role(engine, rows):
    refuses(engine, rows, "ck_console_accounts_role", "console_accounts", "role = 'admin'")


def test_a_bad_value_is_refused_on_insert_too(engine, rows):
    """A Core insert with a plain string reaches the database unchanged, and the CHECK stops it there."""
    with pytest.raises(IntegrityError, match="ck_ledger_entries_kind"):
        with engine.begin() as connection:
            connection.execute(LedgerEntry.__table__.insert(), entry_row(rows["charges"], "chargeback", 1, "approved"))


def test_plain_strings_written_read_back_as_equal_enum_members(engine, rows):
    with engine.begin() as connection:
        connection.execute(sa.update(Payment).where(Payment.id == rows["payments"])
                           .values(state=PaymentState.COMPLETED.value))
    with Session(engine) as session:
        payment = session.get(Payment, rows["payments"])
        entry = session.get(LedgerEntry, rows["ledger_entries"])
        assert payment.state == "completed" and payment.state is PaymentState.COMPLETED
        assert (entry.kind, entry.outcome) == ("sale", "approved") and entry.kind is LedgerKind.SALE
        assert f"{entry.kind}/{entry.outcome}" == "sale/approved"  # as the console renders them


def test_models_and_migrated_schema_agree(engine):
    """Autogenerate sees nothing to do, and every named CHECK of the models exists in the database."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        inspector = sa.inspect(connection)
        for table in Base.metadata.sorted_tables:
            wanted = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            assert wanted <= {c["name"] for c in inspector.get_check_constraints(table.name)}, table.name


def holding_refunds(session: Session, charge_id: int) -> int:
    return session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.charge_id == charge_id, LedgerEntry.kind == LedgerKind.REFUND,
            LedgerEntry.outcome.in_(ledger.HOLDS_MONEY))
    )


def test_refunded_stays_the_sum_of_holding_refund_entries(engine):
    _, charge_id = charged(engine)

    def step(move, expected: int) -> LedgerEntry:  # type: ignore[no-untyped-def]
        with Session(engine, expire_on_commit=False) as session, session.begin():
            result = move(session)
        with Session(engine) as session:
            charge = session.get(Charge, charge_id)
            assert charge.refunded == holding_refunds(session, charge_id) == expected
            assert ledger.balance(session, charge).refunded == expected
        return result

    reserve = lambda amount: lambda s: ledger.reserve(s, charge_id, ledger.REFUND, amount)  # noqa: E731
    first = step(reserve(300), 300)  # pending holds
    step(lambda s: ledger.settle(s, first.id, ledger.DECLINED), 0)  # declined releases
    second = step(reserve(500), 500)
    step(lambda s: ledger.settle(s, second.id, ledger.UNKNOWN, message="timeout"), 500)  # unknown still holds
    step(lambda s: ledger.resolve(s, second.id, False, "not at the processor"), 0)  # operator: it did not happen
    third = step(reserve(400), 400)
    step(lambda s: ledger.mark_unknown(s, third.id, "process died"), 400)
    step(lambda s: ledger.resolve(s, third.id, True, "refunded at the processor"), 400)  # approved keeps it
    fourth = step(reserve(200), 600)
    step(lambda s: ledger.settle(s, fourth.id, ledger.APPROVED, "ref"), 600)
    # The operator resolves first; the processor's late answer loses and moves no total.
    fifth = step(reserve(100), 700)
    step(lambda s: ledger.mark_unknown(s, fifth.id, "process died"), 700)
    step(lambda s: ledger.resolve(s, fifth.id, False, "not there"), 600)
    late = step(lambda s: ledger.settle(s, fifth.id, ledger.APPROVED, "late"), 600)
    assert late.outcome == LedgerOutcome.DECLINED and "correct the books" in late.attention
    sixth = step(reserve(400), 1000)  # exactly what is left
    step(lambda s: ledger.settle(s, sixth.id, ledger.APPROVED, "ref"), 1000)
    with pytest.raises(ledger.AdjustmentRefused):
        step(reserve(1), 1000)
