"""The operator console: who may see and do what, and that every action is audited."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from gateway.models import AuditRecord, ConsoleSignIn, LedgerEntry, Notification, utcnow

from ..console_helpers import (
    dead_notification,
    form_csrf,
    make_account,
    session_state,
    sign_in,
    signed_in,
    standing_rejected_charge,
    unknown_refund,
)

PAGES = ["/console/", "/console/payments", "/console/payments/1", "/console/attention", "/console/stores",
         "/console/stores/example-com.3dcartstores.com", "/console/audit"]
ACTIONS = [
    ("/console/attention/notifications/1/requeue", {"reason": "store fixed"}),
    ("/console/attention/ledger/1/resolve", {"happened": "no", "note": "checked"}),
    ("/console/attention/payments/1/reverse", {"reason": "store asked"}),
    ("/console/attention/payments/1/resolve-sale", {"charged": "no", "note": "checked"}),
    ("/console/stores/example-com.3dcartstores.com", {"display_name": "Hacked", "reason": "x"}),
    ("/console/logout", {}),
]


@pytest.fixture
def people(services):  # type: ignore[no-untyped-def]
    make_account(services, "olivia", "operator")
    make_account(services, "victor", "viewer")


def audit_rows(services, action: str | None = None) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        query = select(AuditRecord).order_by(AuditRecord.id)
        if action:
            query = query.where(AuditRecord.action == action)
        return list(session.scalars(query))


@pytest.mark.parametrize("path", PAGES)
def test_every_console_page_needs_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 303 and "/console/login" in response.location


@pytest.mark.parametrize("path,form", ACTIONS)
def test_every_console_action_needs_sign_in(client, services, path, form):
    response = client.post(path, data={**form, "csrf": "0" * 64})
    assert response.status_code == 303 and "/console/login" in response.location
    assert audit_rows(services) == []


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("who", ["olivia", "victor"])
def test_both_roles_see_every_page(app, people, path, who):
    client, _ = signed_in(app, who)
    response = client.get(path, follow_redirects=True)
    assert response.status_code == (404 if path.endswith("/payments/1") else 200)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path,form", [action for action in ACTIONS if not action[0].endswith("logout")])
def test_viewers_cannot_act(app, services, people, path, form):
    client, csrf = signed_in(app, "victor")
    response = client.post(path, data={**form, "csrf": csrf})
    assert response.status_code == 403
    assert [r.action for r in audit_rows(services) if r.actor == "victor"] == ["login"]


@pytest.mark.parametrize("path,form", ACTIONS)
def test_every_form_needs_the_session_csrf_token(app, services, people, path, form):
    client, _ = signed_in(app, "olivia")
    assert client.post(path, data=form).status_code == 400
    assert client.post(path, data={**form, "csrf": "f" * 64}).status_code == 400
    assert [r.action for r in audit_rows(services) if r.actor == "olivia"] == ["login"]


def test_session_cookie_is_secure_httponly_strict_and_scoped(client, people):
    response = sign_in(client, "olivia")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("gateway_console="))
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/console"):
        assert flag in cookie


def test_login_form_without_its_csrf_token_is_refused(client, people):
    client.get("/console/login")
    response = client.post("/console/login", data={"username": "olivia", "password": "correct horse battery staple"})
    assert response.status_code == 400


def test_wrong_password_is_refused_and_audited(client, services, people):
    response = sign_in(client, "olivia", password="wrong password!!")
    assert response.status_code == 401 and "not correct" in response.get_data(as_text=True)
    assert client.get("/console/payments").status_code == 303
    assert [(r.action, r.target) for r in audit_rows(services, "login.failed")] == [("login.failed", "olivia")]


def test_idle_session_ends(app, services, people):
    client, _ = signed_in(app, "olivia")
    with services.db.transaction() as session:
        session.execute(update(ConsoleSignIn).values(last_seen_at=utcnow() - timedelta(minutes=16)))
    assert client.get("/console/payments").status_code == 303
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ConsoleSignIn)) == 0


def test_activity_keeps_a_session_alive(app, services, people):
    client, _ = signed_in(app, "olivia")
    with services.db.transaction() as session:
        session.execute(update(ConsoleSignIn).values(last_seen_at=utcnow() - timedelta(minutes=14)))
    assert client.get("/console/payments").status_code == 200
    assert client.get("/console/payments").status_code == 200


def test_logout_ends_the_session_on_the_server(app, services, people):
    client, csrf = signed_in(app, "olivia")
    cookie = client.get_cookie("gateway_console", path="/console").value
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    replay = app.test_client()
    replay.set_cookie("gateway_console", cookie, path="/console")
    assert replay.get("/console/payments").status_code == 303


def test_requeue_from_the_console_is_audited(app, client, services, store, people):
    notification_id, payment_id = dead_notification(client, services, store)
    console, csrf = signed_in(app, "olivia")
    page = console.get("/console/attention").get_data(as_text=True)
    assert f"dead_notification-{notification_id}" in page
    assert "This payment needs attention" in console.get(f"/console/payments/{payment_id}").get_data(as_text=True)
    response = console.post(f"/console/attention/notifications/{notification_id}/requeue",
                            data={"csrf": csrf, "reason": "store fixed its endpoint"}, follow_redirects=True)
    assert "is pending again" in response.get_data(as_text=True)
    with services.db.transaction() as session:
        assert session.get(Notification, notification_id).state == "pending"
    [record] = audit_rows(services, "notification.requeue")
    assert (record.actor, record.target, record.reason, record.outcome) == (
        "olivia", f"payment:{payment_id}", "store fixed its endpoint", "pending again")
    again = console.post(f"/console/attention/notifications/{notification_id}/requeue",
                         data={"csrf": csrf, "reason": "twice"}, follow_redirects=True)
    assert "is not dead" in again.get_data(as_text=True)
    assert [r.outcome for r in audit_rows(services, "notification.requeue")] == ["pending again", "refused: not dead"]
    assert "This payment needs attention" not in console.get(f"/console/payments/{payment_id}").get_data(as_text=True)


def test_an_action_without_a_reason_changes_nothing(app, client, services, store, people):
    notification_id, _ = dead_notification(client, services, store)
    console, csrf = signed_in(app, "olivia")
    response = console.post(f"/console/attention/notifications/{notification_id}/requeue",
                            data={"csrf": csrf, "reason": "  "}, follow_redirects=True)
    assert "give a reason" in response.get_data(as_text=True)
    with services.db.transaction() as session:
        assert session.get(Notification, notification_id).state == "dead"


@pytest.mark.parametrize("happened,outcome", [("yes", "approved"), ("no", "declined")])
def test_resolve_from_the_console_is_audited(app, client, services, store, people, happened, outcome):
    entry_id, payment_id = unknown_refund(client, services, store)
    console, csrf = signed_in(app, "olivia")
    assert f"unknown_outcome-{entry_id}" in console.get("/console/attention").get_data(as_text=True)
    response = console.post(f"/console/attention/ledger/{entry_id}/resolve",
                            data={"csrf": csrf, "happened": happened, "note": "checked the processor's report"},
                            follow_redirects=True)
    assert f"is now {outcome}" in response.get_data(as_text=True)
    with services.db.transaction() as session:
        assert session.get(LedgerEntry, entry_id).outcome == outcome
    [record] = audit_rows(services, "ledger.resolve")
    assert (record.actor, record.target, record.outcome, record.details["entry_id"]) == (
        "olivia", f"payment:{payment_id}", outcome, entry_id)
    assert f"unknown_outcome-{entry_id}" not in console.get("/console/attention").get_data(as_text=True)
    twice = console.post(f"/console/attention/ledger/{entry_id}/resolve",
                         data={"csrf": csrf, "happened": "yes", "note": "again"}, follow_redirects=True)
    assert "no longer unresolved" in twice.get_data(as_text=True)
    with services.db.transaction() as session:
        assert session.get(LedgerEntry, entry_id).outcome == outcome


def test_reverse_from_the_console_voids_once_and_is_audited(app, client, services, store, people):
    payment_id = standing_rejected_charge(client, services, store)
    console, csrf = signed_in(app, "olivia")
    assert f"payment-{payment_id}" in console.get("/console/attention").get_data(as_text=True)
    response = console.post(f"/console/attention/payments/{payment_id}/reverse",
                            data={"csrf": csrf, "reason": "store rejected the order"}, follow_redirects=True)
    assert "reversal: void approved" in response.get_data(as_text=True)
    again = console.post(f"/console/attention/payments/{payment_id}/reverse",
                         data={"csrf": csrf, "reason": "click twice"}, follow_redirects=True)
    assert "no charge waiting" in again.get_data(as_text=True)
    with services.db.transaction() as session:
        assert [e.kind for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))] == ["sale", "void"]
    assert session_state(services, payment_id).credentials_sealed is None
    assert [r.outcome for r in audit_rows(services, "payment.reverse")] == [
        "void approved", "refused: no standing charge to reverse"]


def test_store_settings_saved_from_the_console_are_audited(app, services, people):
    console, csrf = signed_in(app, "olivia")
    response = console.post("/console/stores/shop.example", data={
        "csrf": csrf, "display_name": "Example Shop", "support_email": "help@shop.example", "logo_url": "",
        "support_phone": "", "support_url": "", "reason": "ticket 4411"}, follow_redirects=True)
    assert "Example Shop: saved" in response.get_data(as_text=True)
    refused = console.post("/console/stores/shop.example", data={
        "csrf": csrf, "display_name": "Example Shop", "logo_url": "http://insecure", "reason": "x"}, follow_redirects=True)
    assert "must be an https:// address" in refused.get_data(as_text=True)
    [record] = audit_rows(services, "store.update")
    assert (record.actor, record.reason) == ("olivia", "ticket 4411")
    assert record.details["changed"] == {"display_name": "Example Shop", "support_email": "help@shop.example"}


def test_audit_log_refuses_changes_in_the_database(services, people):
    with pytest.raises(DBAPIError):
        with services.db.transaction() as session:
            session.execute(text("UPDATE console_audit SET actor = 'someone else'"))
    assert {r.actor for r in audit_rows(services)} == {"test"}
    with pytest.raises(PermissionError):
        with services.db.transaction() as session:
            session.delete(session.scalars(select(AuditRecord)).first())


def test_audit_page_lists_actions_newest_first(app, services, people):
    console, _ = signed_in(app, "olivia")
    page = console.get("/console/audit").get_data(as_text=True)
    assert page.index(">login<") < page.index(">account.create<")
    assert console.get("/console/audit?action=login").get_data(as_text=True).count(">account.create<") == 0


def test_search_form_errors_are_specific(app, people):
    console, _ = signed_in(app, "victor")
    for query, message in [("last4=12", "four digits"), ("amount=1,00", "123.45"), ("orderid=abc", "whole number"),
                           ("date_from=yesterday", "date like"), ("invoice=" + "x" * 200, "longer than")]:
        response = console.get("/console/payments?" + query)
        assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_login_redirects_back_only_inside_the_console(client, people):
    page = client.get("/console/login")
    response = client.post("/console/login?next=https://evil.example/", data={
        "csrf": form_csrf(page.get_data(as_text=True)), "username": "olivia", "password": "correct horse battery staple"})
    assert response.location.endswith("/console/payments")


def test_an_overlong_store_key_is_refused_not_a_crash(app, services, people):
    console, csrf = signed_in(app, "olivia")
    response = console.post("/console/stores/" + "a" * 300, data={"csrf": csrf, "display_name": "X", "reason": "r"},
                            follow_redirects=True)
    assert response.status_code == 200 and "at most 255 characters" in response.get_data(as_text=True)


@pytest.mark.parametrize("charged,outcome,state", [("no", "open", "open"), ("yes", "approved", "completed")])
def test_resolve_an_unknown_sale_from_the_console(app, client, services, store, people, charged, outcome, state):
    """A charge whose outcome the processor never told: the operator records what its records show."""
    from gateway.jobs.rounds import run_once
    from gateway.models import Payment
    from gateway.processors.base import OutcomeUnknown, SaleLookupResult

    from ..flow_helpers import approve_all, open_session, pay, payment_row

    approve_all(store)
    token, csrf = open_session(client)
    real_sale, real_find = services.processor.sale, services.processor.find_sale
    services.processor.sale = lambda request: (_ for _ in ()).throw(OutcomeUnknown("no answer"))
    pay(client, token, csrf)
    services.processor.sale = real_sale
    payment = payment_row(services, token)
    with services.db.transaction() as session:
        session.execute(update(Payment).where(Payment.id == payment.id)
                        .values(updated_at=utcnow() - timedelta(minutes=10)))
    services.processor.find_sale = lambda lookup: SaleLookupResult.unknown("the transaction search is switched off")
    run_once(services)
    services.processor.find_sale = real_find
    console, console_csrf = signed_in(app, "olivia")
    page = console.get("/console/attention").get_data(as_text=True)
    assert f"payment-{payment.id}" in page and "It was charged" in page
    form = {"csrf": console_csrf, "charged": charged, "note": "checked the processor's report",
            "processor_transaction_id": "txn-by-hand" if charged == "yes" else ""}
    response = console.post(f"/console/attention/payments/{payment.id}/resolve-sale", data=form, follow_redirects=True)
    assert f"payment {payment.id} is" in response.get_data(as_text=True)
    assert session_state(services, payment.id).state == state  # a charge found is told to the store at once
    [record] = audit_rows(services, "payment.resolve_sale")
    assert (record.actor, record.outcome) == ("olivia", outcome)
    assert f"payment-{payment.id}" not in console.get("/console/attention").get_data(as_text=True)


# Issue 20, item 1: every console input is bounded; bad input is a clear 4xx, never a 500.

SEARCH_FIELDS = ["store", "orderid", "invoice", "transactionid", "last4", "amount", "date_from", "date_to"]
UNUSABLE = "a character the console cannot use"


def post_sign_in(client, query: str = "", **fields: str):  # type: ignore[no-untyped-def]
    page = client.get("/console/login")
    form = {"csrf": form_csrf(page.get_data(as_text=True)), "username": "olivia",
            "password": "correct horse battery staple", **fields}
    return client.post("/console/login" + query, data=form)


@pytest.mark.parametrize("field", SEARCH_FIELDS)
def test_a_nul_byte_in_any_search_field_is_a_clear_400(app, people, field):
    console, _ = signed_in(app, "victor")
    response = console.get("/console/payments", query_string={field: "12\x0034"})
    assert response.status_code == 400 and UNUSABLE in response.get_data(as_text=True)


def test_a_nul_byte_in_next_is_a_clear_400(client, services, people):
    response = post_sign_in(client, "?next=/console/payments%00")
    assert response.status_code == 400 and UNUSABLE in response.get_data(as_text=True)
    assert audit_rows(services, "login") == []  # nobody was signed in


def test_a_nul_byte_in_a_store_key_is_a_clear_400(app, services, people):
    console, csrf = signed_in(app, "olivia")
    assert console.get("/console/stores/a%00b").status_code == 400
    saved = console.post("/console/stores/a%00b", data={"csrf": csrf, "display_name": "X", "reason": "r"})
    assert saved.status_code == 400 and UNUSABLE in saved.get_data(as_text=True)
    assert [r.action for r in audit_rows(services) if r.action.startswith("store.")] == []


def test_a_nul_byte_in_a_sign_in_name_is_a_clear_400(client, services, people):
    response = post_sign_in(client, username="oli\x00via")
    assert response.status_code == 400 and UNUSABLE in response.get_data(as_text=True)
    assert audit_rows(services, "login.failed") == []


def test_a_non_ascii_csrf_token_is_refused_like_a_wrong_one(app, services, people):
    refused = post_sign_in(app.test_client(), csrf="é" * 64)
    assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True)
    console, _ = signed_in(app, "olivia")
    requeue = console.post("/console/attention/notifications/1/requeue", data={"csrf": "é" * 64, "reason": "r"})
    assert requeue.status_code == 400 and "This form has expired" in requeue.get_data(as_text=True)


@pytest.mark.parametrize("field", ["date_from", "date_to"])
def test_a_search_to_the_last_day_of_the_calendar_is_a_clear_400(app, people, field):
    console, _ = signed_in(app, "victor")
    response = console.get("/console/payments", query_string={field: "9999-12-31"})
    assert response.status_code == 400 and "before the year 9999" in response.get_data(as_text=True)
    assert console.get("/console/payments", query_string={field: "9998-12-31"}).status_code == 200


@pytest.mark.parametrize("digits", ["9" * 10, "1" + "0" * 19])
def test_a_twenty_digit_payment_id_is_not_found(app, services, people, digits):
    console, csrf = signed_in(app, "olivia")
    assert console.get(f"/console/payments/{digits}").status_code == 404
    for path in [f"/console/attention/notifications/{digits}/requeue", f"/console/attention/ledger/{digits}/resolve",
                 f"/console/attention/payments/{digits}/reverse", f"/console/attention/payments/{digits}/resolve-sale"]:
        assert console.post(path, data={"csrf": csrf, "reason": "r", "happened": "no", "charged": "no"}).status_code == 404
    assert [r.action for r in audit_rows(services)] == ["account.create", "account.create", "login"]


@pytest.mark.parametrize("target", ["/console/audit%0d%0aSet-Cookie:%20x=1", "/console/audit%0aX:%20y"])
def test_cr_lf_in_next_is_a_clear_400_not_a_broken_header(client, people, target):
    response = post_sign_in(client, f"?next={target}")
    assert response.status_code == 400 and UNUSABLE in response.get_data(as_text=True)
    assert "Set-Cookie" not in str(response.headers).replace("Set-Cookie: gateway_console_login", "")


def test_next_keeps_a_console_path_and_refuses_another_host(client, people):
    assert post_sign_in(client, "?next=/console/audit").location.endswith("/console/audit")
    assert post_sign_in(client, "?next=/console//evil.example/").location.endswith("/console/payments")
