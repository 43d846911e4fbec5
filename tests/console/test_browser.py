"""Each console action done by a person in a real headless Chromium, with a screenshot of the result.

The gateway app runs in this process on a loopback HTTP server, so the stuck payments the
operator resolves can be prepared with the same helpers as the other console tests.
"""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from gateway.models import AuditRecord, LedgerEntry, Notification

from ..browser import launch, screenshot
from ..console_helpers import PASSWORD, dead_notification, make_account, standing_rejected_charge, unknown_refund

pytestmark = [pytest.mark.browser, pytest.mark.live]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from launch()


@pytest.fixture
def console_url(app, services):  # type: ignore[no-untyped-def]
    make_account(services, "olivia", "operator")
    make_account(services, "victor", "viewer")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}/console"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser, console_url):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def sign_in(page, console_url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(console_url + "/attention")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Needs attention").wait_for()


def audited(services, action: str) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def test_requeue_a_dead_notification(page, console_url, client, services, store):
    notification_id, _ = dead_notification(client, services, store)
    sign_in(page, console_url, "olivia")
    row = page.locator(f"#dead_notification-{notification_id}")
    row.get_by_label("Reason").fill("store fixed its endpoint")
    row.get_by_role("button", name="Requeue").click()
    page.get_by_role("status").filter(has_text="is pending again").wait_for()
    screenshot(page, "console-requeue")
    with services.db.transaction() as session:
        assert session.get(Notification, notification_id).state == "pending"
    assert [(r.actor, r.reason) for r in audited(services, "notification.requeue")] == [("olivia", "store fixed its endpoint")]


def test_resolve_an_unknown_refund(page, console_url, client, services, store):
    entry_id, _ = unknown_refund(client, services, store)
    sign_in(page, console_url, "olivia")
    row = page.locator(f"#unknown_outcome-{entry_id}")
    row.get_by_label("Note").fill("not in the processor's settlement report")
    row.get_by_role("button", name="It did not happen").click()
    page.get_by_role("status").filter(has_text="is now declined").wait_for()
    screenshot(page, "console-resolve")
    with services.db.transaction() as session:
        assert session.get(LedgerEntry, entry_id).outcome == "declined"
    assert [r.outcome for r in audited(services, "ledger.resolve")] == ["declined"]


def test_reverse_a_rejected_charge_then_read_its_timeline(page, console_url, client, services, store):
    payment_id = standing_rejected_charge(client, services, store)
    sign_in(page, console_url, "olivia")
    row = page.locator(f"#payment-{payment_id}")
    row.get_by_label("Reason").fill("store rejected the order")
    row.get_by_role("button", name="Reverse the charge").click()
    page.get_by_role("status").filter(has_text="void approved").wait_for()
    screenshot(page, "console-reverse")
    assert [r.outcome for r in audited(services, "payment.reverse")] == ["void approved"]
    page.goto(f"{console_url}/payments/{payment_id}")
    page.locator("li[data-kind=ledger_void]").get_by_text("Void approved").wait_for()
    page.get_by_text("Operator olivia: payment.reverse").wait_for()
    screenshot(page, "console-timeline")


def test_edit_a_store_and_find_it_in_the_audit_log(page, console_url, client, services, store):
    dead_notification(client, services, store)
    sign_in(page, console_url, "olivia")
    page.get_by_role("link", name="Stores").click()
    page.get_by_role("link", name="example-com.3dcartstores.com").click()
    page.get_by_label("Display name").fill("Example Coffee Co.")
    page.get_by_label("Support e-mail").fill("help@example.com")
    page.get_by_label("Why", exact=True).fill("ticket 4411")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("status").filter(has_text="Example Coffee Co.: saved").wait_for()
    screenshot(page, "console-store")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("cell", name="store.update").wait_for()
    screenshot(page, "console-audit")
    assert [r.reason for r in audited(services, "store.update")] == ["ticket 4411"]


def test_search_payments(page, console_url, client, services, store):
    dead_notification(client, services, store)
    sign_in(page, console_url, "victor")
    page.get_by_role("link", name="Payments").click()
    page.get_by_label("Card last four").fill("4242")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("cell", name="AB-12234").wait_for()
    screenshot(page, "console-search")


def test_a_viewer_sees_the_queue_but_has_no_buttons(page, console_url, client, services, store):
    dead_notification(client, services, store)
    sign_in(page, console_url, "victor")
    page.get_by_text("Operators act here.").wait_for()
    assert page.get_by_role("button", name="Requeue").count() == 0
    screenshot(page, "console-viewer")


def test_sign_out_ends_the_session(page, console_url):
    sign_in(page, console_url, "olivia")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to the gateway console").wait_for()
    page.goto(console_url + "/payments")
    page.get_by_role("heading", name="Sign in to the gateway console").wait_for()
