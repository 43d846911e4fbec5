"""The hosted page in a real headless Chromium against the gateway under gunicorn.

Every shopper-visible state is checked with axe-core at phone and desktop widths and
photographed into test-output/screenshots/; the script's help (brand, spacing, expiry, inline
checks, one press of Pay) and a keyboard-only purchase are driven as a shopper would. What the
database engine cannot change (how a page looks and what its script does) runs on SQLite only.
"""
from __future__ import annotations

import itertools
import secrets
from datetime import timedelta
from typing import Any, Callable

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import func, select, update

from gateway.db import Database
from gateway.models import Notification, Payment, SandboxCharge, utcnow

from ..browser import launch, screenshot
from ..live import Gunicorn, StoreReceiver, free_port, gateway_env
from ..protocol_helpers import CARDS, PRIVATE_KEY, complete_order_answer, signed_checkout

pytestmark = [pytest.mark.browser, pytest.mark.live]

WIDTHS = (320, 390, 1280)
ORDER_IDS = itertools.count(700000 + secrets.randbelow(10**6) * 10)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from launch()


@pytest.fixture(scope="module")
def live(database_url):  # type: ignore[no-untyped-def]
    # One server and one client address pay many times here: the rate limits have tests of their own.
    env = {**gateway_env(database_url, PRIVATE_KEY), "GATEWAY_LIMIT_CARD_PER_ADDRESS": "10000 per minute",
           "GATEWAY_LIMIT_PAGE_PER_ADDRESS": "10000 per minute"}
    with StoreReceiver() as receiver, Gunicorn(env, workers=1) as gateway:
        # The receiver's host is the store's key: give it the identity a merchant would.
        gateway.cli("stores", "set", "127.0.0.1", "--name", "Espresso Corner", "--support-email", "help@espresso.test")
        # The same test cards are declined here again and again: a real store would see a card tester.
        gateway.cli("risk", "thresholds", "127.0.0.1", "--card-declines", "10000", "--attack-decline-percent", "100",
                    "--attack-min-attempts", "10000", "--note", "the hosted page's browser tests")
        db = Database(database_url)
        yield gateway, receiver, db
        db.dispose()


@pytest.fixture
def shop(live):  # type: ignore[no-untyped-def]
    gateway, receiver, db = live
    receiver.answer = complete_order_answer(1)
    return live


def checkout(gateway: Gunicorn, receiver: StoreReceiver, **overrides: Any) -> str:
    """A fresh order handed to the gateway as the store would; returns the hosted page URL."""
    back = gateway.url + "/healthz"
    body = signed_checkout(orderid=next(ORDER_IDS), randomkey=secrets.token_hex(8), notificationurl=receiver.url,
                           returnurl=back + "?returned=1", cancelurl=back + "?cancelled=1",
                           errorurl=back + "?error=0", **overrides)
    answer = requests.post(gateway.url + "/checkout", json=body, timeout=10).json()
    assert answer["errormessage"] == "", answer
    return f"{answer['redirecturl']}?paymenttoken={answer['paymenttoken']}"


def new_page(browser, width: int, locale: str = "en-US"):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 800}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


def fill_card(page, number: str = CARDS["visa"], cvc: str = "123", expiry: str = "1239") -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM/YY)").fill(expiry)
    page.get_by_label("Security code").fill(cvc)
    page.get_by_label("Name on card").fill("Ada Shopper")


def assert_accessible(page, name: str) -> None:  # type: ignore[no-untyped-def]
    results = Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"


def no_horizontal_overflow(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("""[...document.querySelectorAll('.card')].every(card => {
        const box = card.getBoundingClientRect();
        return [...card.querySelectorAll('table')].every(t => t.getBoundingClientRect().right <= box.right - 8);
    })""")


# Each state: how to bring a fresh order's page into it.
def form(page, live) -> None:  # type: ignore[no-untyped-def]
    page.goto(checkout(live[0], live[1]))


def field_errors(page, live) -> None:  # type: ignore[no-untyped-def]
    form(page, live)
    fill_card(page, number="4242424242424241", cvc="12")
    page.get_by_role("button", name="Pay $123.12").click()
    page.locator("#error-summary").wait_for()


def decline(page, live) -> None:  # type: ignore[no-untyped-def]
    form(page, live)
    fill_card(page, number=CARDS["insufficient"])
    page.get_by_role("button", name="Pay $123.12").click()
    page.locator("#decline").wait_for()


def confirming(page, live) -> None:  # type: ignore[no-untyped-def]
    live[1].answer = 503  # the store cannot be reached: the payment waits, approved, for it
    form(page, live)
    fill_card(page)
    page.get_by_role("button", name="Pay $123.12").click()
    page.get_by_role("heading", name="Payment received").wait_for()
    page.wait_for_load_state("domcontentloaded")  # the page's deferred script has run


def cancelled(page, live) -> None:  # type: ignore[no-untyped-def]
    form(page, live)
    url = page.url
    page.get_by_role("button", name="Cancel and return to the store").click()
    page.wait_for_url("**/healthz?cancelled=1")
    page.goto(url)


def expired(page, live) -> None:  # type: ignore[no-untyped-def]
    form(page, live)
    token = page.url.rsplit("=", 1)[1]
    with live[2].transaction() as session:
        session.execute(update(Payment).where(Payment.token == token)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    page.reload()


def unknown_token(page, live) -> None:  # type: ignore[no-untyped-def]
    page.goto(live[0].url + "/pay?paymenttoken=" + "x" * 40)


STATES: dict[str, tuple[Callable[..., None], str]] = {
    "form": (form, "Pay by card"),
    "field-errors": (field_errors, "This card number is not valid"),
    "decline": (decline, "Your card has insufficient funds."),
    "confirming": (confirming, "We are confirming it with"),
    "cancelled": (cancelled, "This payment was cancelled."),
    "expired": (expired, "This payment session has expired"),
    "unknown-token": (unknown_token, "We could not find this payment."),
}


@pytest.mark.any_engine
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("state", list(STATES))
def test_every_state_is_accessible_and_fits(browser, shop, state, width):
    reach, words = STATES[state]
    page = new_page(browser, width)
    try:
        reach(page, shop)
        assert words in page.locator("main").inner_text()
        if state != "unknown-token":
            assert "Espresso Corner" in page.locator("header").inner_text()
            assert "Test mode" in page.locator("header").inner_text()
        assert_accessible(page, f"{state} at {width}px")
        no_horizontal_overflow(page)
        screenshot(page, f"hosted-page-{state}-{width}")
    finally:
        page.context.close()


@pytest.mark.any_engine
@pytest.mark.parametrize("state", ["field-errors", "decline"])
def test_focus_moves_to_the_error_summary(browser, shop, state):
    page = new_page(browser, 390)
    try:
        STATES[state][0](page, shop)
        focused = page.evaluate("document.activeElement.id")
        assert focused in ("error-summary", "decline")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
    finally:
        page.context.close()


@pytest.mark.any_engine
def test_inputs_use_the_page_font(browser, shop):
    page = new_page(browser, 390)
    try:
        form(page, shop)
        fonts = page.evaluate("""['body', '#card_number', '#pay-button'].map(
            s => getComputedStyle(document.querySelector(s)).fontFamily)""")
        assert len(set(fonts)) == 1
    finally:
        page.context.close()


@pytest.mark.any_engine
def test_script_detects_the_brand_and_formats_as_the_shopper_types(browser, shop):
    page = new_page(browser, 390)
    try:
        form(page, shop)
        number = page.get_by_label("Card number")
        number.press_sequentially(CARDS["amex"])
        assert number.input_value() == "3782 822463 10005"
        assert page.locator("#card_number-brand").inner_text() == "American Express"
        assert page.locator("#card_number-mark").is_visible()
        number.press_sequentially("999")  # beyond Amex's 15 digits: ignored
        assert number.input_value() == "3782 822463 10005"
        assert page.get_by_label("Security code").get_attribute("maxlength") == "4"
        number.fill("")
        number.press_sequentially(CARDS["visa"])
        assert number.input_value() == "4242 4242 4242 4242"
        assert page.locator("#card_number-brand").inner_text() == "Visa"
        expiry = page.get_by_label("Expiry (MM/YY)")
        expiry.press_sequentially("1239")
        assert expiry.input_value() == "12/39"
        expiry.fill("")
        expiry.press_sequentially("7")
        assert expiry.input_value() == "07/"
    finally:
        page.context.close()


@pytest.mark.any_engine
def test_inline_validation_mirrors_the_server_and_keeps_what_was_typed(browser, shop):
    page = new_page(browser, 390)
    try:
        form(page, shop)
        fill_card(page, number="4242424242424241", cvc="12", expiry="0120")
        page.get_by_role("button", name="Pay $123.12").click()
        summary = page.locator("#error-summary")
        assert page.evaluate("document.activeElement.id") == "error-summary"
        text = summary.inner_text()
        for words in ("This card number is not valid", "This card has expired.", "Enter the 3-digit security code."):
            assert words in text
        # Checked in the browser: nothing was sent, and nothing the shopper typed was wiped.
        assert "/pay/submit" not in page.url
        assert page.get_by_label("Card number").input_value() == "4242 4242 4242 4241"
        assert page.get_by_label("Card number").get_attribute("aria-invalid") == "true"
        summary.get_by_role("link", name="Enter the 3-digit security code.").click()
        assert page.evaluate("document.activeElement.id") == "cvc"
    finally:
        page.context.close()


def test_pay_button_cannot_charge_twice(browser, shop):
    gateway, receiver, db = shop
    page = new_page(browser, 390)
    try:
        form(page, shop)
        token = page.url.rsplit("=", 1)[1]
        fill_card(page)
        button = page.get_by_role("button", name="Pay $123.12")
        button.evaluate("b => { b.click(); b.click(); b.form.requestSubmit(); }")
        page.wait_for_url("**/healthz?returned=1")
        with db.transaction() as session:
            payment = session.scalars(select(Payment).where(Payment.token == token)).one()
            charges = session.scalar(select(func.count()).select_from(SandboxCharge)
                                     .where(SandboxCharge.amount == payment.amount_total,
                                            SandboxCharge.reference.like(f"ps{payment.id}a%")))
            assert (payment.state, payment.attempt, charges) == ("completed", 1, 1)
    finally:
        page.context.close()


def test_keyboard_only_purchase(browser, shop):
    page = new_page(browser, 1280)
    try:
        form(page, shop)
        page.keyboard.press("Tab")
        typed = {"card_number": CARDS["mastercard"], "expiry": "1239", "cvc": "123", "holder": "Ada Shopper"}
        for _ in range(40):
            active = page.evaluate("document.activeElement.id")
            if active in typed:
                page.keyboard.type(typed.pop(active))
            elif active == "pay-button" and not typed:
                break
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "pay-button", typed
        page.keyboard.press("Enter")
        page.wait_for_url("**/healthz?returned=1")
    finally:
        page.context.close()


def test_status_page_moves_on_by_itself_and_announces_it(browser, shop):
    gateway, receiver, db = shop
    page = new_page(browser, 390)
    try:
        confirming(page, shop)
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        assert page.get_by_role("status").is_visible()
        assert "This page checks again by itself." in page.get_by_role("status").inner_text()
        receiver.answer = complete_order_answer(1)
        with db.transaction() as session:
            session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        page.wait_for_url("**/healthz?returned=1", timeout=20000)
    finally:
        page.context.close()


def test_status_page_without_javascript_offers_check_again(browser, shop):
    gateway, receiver, db = shop
    context = browser.new_context(viewport={"width": 390, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    try:
        confirming(page, shop)
        assert "This page checks again by itself." not in page.get_by_role("status").inner_text()
        receiver.answer = complete_order_answer(1)
        with db.transaction() as session:
            session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        page.get_by_role("link", name="Check again now").click()
        page.wait_for_url("**/healthz?returned=1")
    finally:
        context.close()


@pytest.mark.any_engine
@pytest.mark.parametrize("locale, lang, words, total", [
    ("de-DE", "de", "Mit Karte bezahlen", "1.234,56\xa0€"),
    ("ja-JP", "ja", "カードで支払う", "€1,234.56"),
])
def test_page_in_the_browsers_language(browser, shop, locale, lang, words, total):
    page = new_page(browser, 390, locale=locale)
    try:
        page.goto(checkout(shop[0], shop[1], currency="EUR", amounttotal=123456, items=[], taxtotal=0, shippingtotal=0,
                           discount=0))
        assert page.locator("html").get_attribute("lang") == lang
        assert words in page.locator("main").inner_text()
        assert page.get_by_test_id("total").inner_text() == total
        assert_accessible(page, f"form in {lang}")
        screenshot(page, f"hosted-page-{lang}")
        page.get_by_role("link", name="English").click()
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_test_id("total").inner_text() == "€1,234.56"
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def authorizenet_shop(database_url):  # type: ignore[no-untyped-def]
    """The gateway with Authorize.Net as its processor, at an address where nothing listens: a card
    sent there would come back as an error page, never as the form's own refusal."""
    env = {**gateway_env(database_url, PRIVATE_KEY), "GATEWAY_PROCESSOR": "authorizenet",
           "AUTHORIZENET_URL": f"http://127.0.0.1:{free_port()}/xml/v1/request.api"}
    with StoreReceiver() as receiver, Gunicorn(env, workers=1, quick_stop=True) as gateway:
        yield gateway, receiver


@pytest.mark.any_engine
def test_script_refuses_a_19_digit_visa_authorizenet_cannot_take_in_the_shoppers_language(browser, authorizenet_shop):
    page = new_page(browser, 390, locale="de-DE")
    try:
        form(page, authorizenet_shop)
        page.locator("#card_number").fill("4111111111111111110")
        page.locator("#expiry").fill("1239")
        page.locator("#cvc").fill("123")
        page.locator("#holder").fill("Ada Shopper")
        page.locator("#pay-button").click()
        summary = page.locator("#error-summary")
        assert "Diese Karte kann hier nicht verwendet werden: Ihre Nummer ist zu lang." in summary.inner_text()
        assert "/pay/submit" not in page.url  # refused in the browser: nothing was sent
        assert page.locator("#card_number").get_attribute("aria-invalid") == "true"
    finally:
        page.context.close()
