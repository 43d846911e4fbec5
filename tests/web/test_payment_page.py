"""Exchanges 2 and 3: the shopper pays on the hosted page and the store is told."""
from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select, text, update

from gateway import create_app
from gateway.models import (
    Charge,
    LedgerEntry,
    Notification,
    NotificationAttempt,
    Payment,
    SandboxCharge,
    utcnow,
)
from gateway.payments import ledger

from ..flow_helpers import approve_all, notifications_sent, open_session, pay, payment_row, store_answers
from ..protocol_helpers import (
    CANCEL_URL,
    CARDS,
    PRIVATE_KEY,
    RETURN_URL,
    complete_order_answer,
    md5,
    post_json,
    signed_checkout,
)


def count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_page_shows_the_order_in_its_currency(client):
    token, _ = open_session(client)
    html = client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)
    for text_ in ("AB-12234", "item name 123", "item name abc", "item name xyz", "$12.00", "$24.00", "$66.00",
                  "$0.50", "$10.00", "$5.00", "&minus;$10.00", "$123.12", 'for="card_number"', 'for="expiry"',
                  'for="cvc"', 'for="holder"', 'name="viewport"'):
        assert text_ in html, text_


def test_page_is_reached_by_post_too(client):
    answer = post_json(client, "/checkout", signed_checkout())
    page = client.post("/pay", data={"paymenttoken": answer["paymenttoken"]})
    assert page.status_code == 200 and "$123.12" in page.get_data(as_text=True)


def test_page_formats_other_currencies(client):
    token, _ = open_session(client, currency="JPY", amounttotal=5000, items=[])
    assert "¥5,000" in client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)


def test_page_is_not_cached_framed_or_leaked_by_referrer(client):
    token, _ = open_session(client)
    response = client.get("/pay", query_string={"paymenttoken": token})
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_successful_payment_notifies_the_store_and_returns_the_shopper(client, services, store):
    approve_all(store)
    token, csrf = open_session(client)
    response = pay(client, token, csrf)

    assert response.status_code == 303
    assert response.headers["Location"] == RETURN_URL
    [sent] = notifications_sent(store)
    assert sent["orderid"] == 123 and sent["invoice"] == "AB-12234" and sent["amount"] == 12312
    assert sent["approved"] == 1 and sent["transactionid"].startswith("sbx_")
    assert sent["signature"] == md5(sent["randomkey"], PRIVATE_KEY, 123, "AB-12234", sent["transactionid"])
    payment = payment_row(services, token)
    assert payment.state == "completed"
    assert payment.credentials_sealed is None
    assert (payment.card_brand, payment.card_last4, payment.card_exp_month, payment.card_exp_year) == ("visa", "4242", 12, 2039)
    with services.db.transaction() as session:
        transaction = session.scalars(select(Charge)).one()
        assert transaction.processor_transaction_id == sent["transactionid"] and transaction.amount == 12312
        assert [(e.kind, e.amount, e.outcome) for e in session.scalars(select(LedgerEntry))] == [("sale", 12312, "approved")]


def test_card_number_and_cvc_are_never_stored_or_logged(client, services, store, caplog):
    caplog.set_level("DEBUG")
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf, number=CARDS["amex"], cvc="7319")
    with services.db.engine.connect() as connection:
        dump = " ".join(
            str(row) for table in ("payments", "charges", "ledger_entries", "notifications",
                                   "notification_attempts", "sandbox_charges")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )
    assert "0005" in dump  # last four is kept
    for secret in (CARDS["amex"], "7319", "82246310005"):
        # Standing alone: random hex ids (transaction ids, fingerprints) may contain these digits by chance.
        alone = re.compile(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])")
        assert not alone.search(dump)
        assert not alone.search(caplog.text)


def test_store_rejecting_the_order_voids_the_charge(client, services, store):
    store_answers(store, complete_order_answer(0, "OUT_OF_STOCK", "item sold out"))
    token, csrf = open_session(client)
    response = pay(client, token, csrf)

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "example-com.3dcartstores.com" and location.path == "/error.asp"
    assert parse_qs(location.query) == {"error": ["OUT_OF_STOCK"]}
    assert payment_row(services, token).state == "rejected"
    with services.db.transaction() as session:
        assert session.scalars(select(SandboxCharge)).one().voided is True
        entries = [(e.kind, e.outcome) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]
        assert entries == [("sale", "approved"), ("void", "approved")]
        assert ledger.balance(session, session.scalars(select(Charge)).one()).voided is True


def test_rejection_seen_twice_voids_once(client, services, store):
    store_answers(store, complete_order_answer(0, "X", "no"))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    from gateway.payments.reversal import reverse_rejected_charge

    payment = payment_row(services, token)
    reverse_rejected_charge(services, payment.id)
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "void")) == 1


@pytest.mark.parametrize("failure", [requests.ConnectionError("down"), {"unexpected": "shape"}, requests.Timeout()])
def test_unreachable_store_leaves_payment_approved_and_pending(client, services, store, failure):
    store_answers(store, failure)
    token, csrf = open_session(client)
    response = pay(client, token, csrf)

    assert response.status_code == 202
    html = response.get_data(as_text=True)
    assert "Payment received" in html and "confirming" in html and "Check again now" in html
    assert 'http-equiv="refresh"' not in html and 'role="status"' in html and "status.js" in html
    payment = payment_row(services, token)
    assert payment.state == "approved"
    with services.db.transaction() as session:
        notification = session.scalars(select(Notification)).one()
        assert (notification.state, notification.attempts) == ("pending", 1)
        assert notification.next_attempt_at > utcnow()
        assert notification.last_error
        assert session.scalars(select(NotificationAttempt)).one().error


def test_status_page_retries_when_due_and_moves_on(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    pay(client, token, csrf)
    # Not due yet: the status page does not hammer the store.
    assert client.get("/pay/status", query_string={"paymenttoken": token}).status_code == 202
    polled = client.get("/pay/status", query_string={"paymenttoken": token, "format": "json"}).get_json()
    assert polled == {"state": "approved", "waiting": True, "next": None}
    assert len(store.calls) == 1
    with services.db.transaction() as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    store.replace("POST", store.registered()[0].url, json=complete_order_answer(1))
    polled = client.get("/pay/status", query_string={"paymenttoken": token, "format": "json"}).get_json()
    assert polled == {"state": "completed", "waiting": False, "next": f"/pay/status?paymenttoken={token}"}
    assert len(store.calls) == 2
    response = client.get("/pay/status", query_string={"paymenttoken": token})
    assert response.status_code == 303 and response.headers["Location"] == RETURN_URL
    assert payment_row(services, token).state == "completed"


def test_decline_reshows_the_page_and_a_retry_can_succeed(client, services, store):
    approve_all(store)
    token, csrf = open_session(client)
    declined = pay(client, token, csrf, number=CARDS["insufficient"])
    assert declined.status_code == 402
    assert "insufficient funds" in declined.get_data(as_text=True)
    assert len(store.calls) == 0
    approved = pay(client, token, csrf, number=CARDS["mastercard"])
    assert approved.status_code == 303 and approved.headers["Location"] == RETURN_URL
    payment = payment_row(services, token)
    assert (payment.decline_count, payment.card_brand) == (1, "mastercard")


def test_three_declines_fail_the_session_and_tell_the_store(client, services, store):
    store_answers(store, complete_order_answer(0, "PAYMENT_FAILED", "declined"))
    token, csrf = open_session(client)
    for number in (CARDS["decline"], CARDS["expired"]):
        assert pay(client, token, csrf, number=number).status_code == 402
    response = pay(client, token, csrf, number=CARDS["cvc"])

    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"error": ["PAYMENT_FAILED"]}
    [sent] = notifications_sent(store)
    assert sent["approved"] == 0 and sent["transactionid"] == "" and sent["errorcode"] == "105"
    assert sent["signature"] == md5(sent["randomkey"], PRIVATE_KEY, 123, "AB-12234", "")
    payment = payment_row(services, token)
    assert payment.state == "failed" and payment.credentials_sealed is None
    assert count(services, SandboxCharge) == 0
    # A fourth try charges nothing.
    assert pay(client, token, csrf).status_code == 303
    assert count(services, SandboxCharge) == 0


def test_failed_session_goes_to_errorurl_even_if_store_is_silent(client, services, store):
    store_answers(store, requests.ConnectionError("down"))
    token, csrf = open_session(client)
    for _ in range(3):
        response = pay(client, token, csrf, number=CARDS["error"])
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"error": ["105"]}


def test_merchant_credentials_refused_fails_at_once(client, services, store):
    store_answers(store, complete_order_answer(0, "", ""))
    token, csrf = open_session(client, username="invalid")
    response = pay(client, token, csrf)
    assert response.status_code == 303
    [sent] = notifications_sent(store)
    assert sent["approved"] == 0 and sent["errorcode"] == "101"
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"error": ["101"]}


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"number": "4242424242424241"}, "card_number", "not valid"),
        ({"number": "9999999999999995"}, "card_number", "We accept"),
        ({"expiry": "01/20"}, "expiry", "expired"),
        ({"expiry": "13/30"}, "expiry", "MM/YY"),
        ({"cvc": "12"}, "cvc", "3-digit"),
        ({"number": CARDS["amex"], "cvc": "123"}, "cvc", "4-digit"),
        ({"holder": ""}, "holder", "name"),
    ],
)
def test_card_form_errors_are_shown_per_field_and_charge_nothing(client, services, fields, field, words):
    token, csrf = open_session(client)
    response = pay(client, token, csrf, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and words in html
    assert payment_row(services, token).decline_count == 0
    assert count(services, SandboxCharge) == 0


def test_cancel_returns_to_the_store(client, services):
    token, csrf = open_session(client)
    response = client.post("/pay/cancel", data={"paymenttoken": token, "csrf": csrf})
    assert response.status_code == 303 and response.headers["Location"] == CANCEL_URL
    assert payment_row(services, token).state == "cancelled"
    assert payment_row(services, token).credentials_sealed is None
    assert client.get("/pay", query_string={"paymenttoken": token}).status_code == 410
    assert pay(client, token, csrf).status_code == 410
    assert count(services, SandboxCharge) == 0


def test_expired_session_shows_a_clear_page_and_charges_nothing(client, services):
    token, csrf = open_session(client)
    with services.db.transaction() as session:
        session.execute(update(Payment).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = client.get("/pay", query_string={"paymenttoken": token})
    assert page.status_code == 410 and "expired" in page.get_data(as_text=True)
    assert pay(client, token, csrf).status_code == 410
    assert count(services, SandboxCharge) == 0


def test_unknown_token_gets_a_plain_404_page(client):
    response = client.get("/pay", query_string={"paymenttoken": "nope"})
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "could not find this payment" in html and "Traceback" not in html


def test_submission_without_the_csrf_token_is_refused(client, services):
    token, _ = open_session(client)
    response = pay(client, token, "0" * 64)
    assert response.status_code == 400
    assert count(services, SandboxCharge) == 0


def test_new_checkout_for_a_paid_order_is_refused(client, store):
    approve_all(store)
    token, csrf = open_session(client)
    pay(client, token, csrf)
    answer = post_json(client, "/checkout", signed_checkout(randomkey="a-new-key"))
    assert answer["errorcode"] == "102" and "already paid" in answer["errormessage"]


def test_two_sessions_of_one_order_cannot_both_be_paid(client, services, store):
    approve_all(store)
    first, first_csrf = open_session(client)
    second, second_csrf = open_session(client, randomkey="second-attempt")
    assert pay(client, first, first_csrf).status_code == 303
    refused = pay(client, second, second_csrf)
    assert refused.status_code == 402 and "already been paid" in refused.get_data(as_text=True)
    assert count(services, SandboxCharge) == 1
    assert payment_row(services, second).decline_count == 0


def test_sessions_of_one_order_racing_to_pay_charge_once(settings, store):
    """Several windows of one order press Pay at the same instant, round after round: each order is
    charged exactly once, and every other window is told the order is being paid."""
    approve_all(store)
    windows = 4
    app = create_app(replace(settings, pay_slots=windows))  # as many computing at once as there are windows
    services = app.extensions["gateway"]
    client = app.test_client()
    real_open = services.vault.open
    for order in range(10):
        sessions = [open_session(client, orderid=5000 + order, randomkey=f"race-{order}-{window}")
                    for window in range(windows)]
        at_the_claim = threading.Barrier(windows, timeout=5)

        def open_together(sealed: str, barrier: threading.Barrier = at_the_claim) -> object:
            barrier.wait()  # the credentials are opened just before the claim: all claims start together
            return real_open(sealed)

        services.vault.open = open_together  # type: ignore[method-assign]
        results: list[int] = []

        def press_pay(token: str, csrf: str, address: str, results: list[int] = results) -> None:
            shopper = app.test_client()
            shopper.environ_base["REMOTE_ADDR"] = address  # a shopper of its own, under its own rate limit
            results.append(pay(shopper, token, csrf).status_code)

        threads = [threading.Thread(target=press_pay, args=(token, csrf, f"198.51.100.{order * windows + window}"))
                   for window, (token, csrf) in enumerate(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        services.vault.open = real_open  # type: ignore[method-assign]
        assert sorted(results) == [303] + [402] * (windows - 1), (order, results)
    assert count(services, SandboxCharge) == 10
    assert len(store.calls) == 10
    services.db.dispose()


def test_concurrent_double_submit_charges_once(app, services, store):
    approve_all(store)
    client = app.test_client()
    token, csrf = open_session(client)
    real_sale = services.processor.sale
    inside = threading.Barrier(2, timeout=2)

    def slow_sale(request):  # type: ignore[no-untyped-def]
        try:
            inside.wait()  # a second charge would have to arrive here while the first is in flight
        except threading.BrokenBarrierError:
            pass
        return real_sale(request)

    services.processor.sale = slow_sale  # type: ignore[method-assign]
    results: list[int] = []

    def submit() -> None:
        results.append(pay(app.test_client(), token, csrf).status_code)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(services, SandboxCharge) == 1
    # The winner goes back to the store. The other sees "processing" if it reads the payment before the
    # store's answer is recorded, or goes back to the store too if it reads it after (a loaded machine):
    # never a second charge, a decline or an error.
    assert 303 in results and sorted(results)[0] in (202, 303), results
    assert len(store.calls) == 1
