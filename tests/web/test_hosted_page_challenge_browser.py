"""The security check in a real headless Chromium: solved while the shopper types, Pay enabled
after it, all by keyboard, accessible. How long it takes is measured by bench/challenge_browser.py."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from gateway import challenge
from gateway.config import DEV_SECRET_KEY

from ..browser import launch, screenshot
from ..live import Gunicorn, StoreReceiver, gateway_env
from ..protocol_helpers import CARDS, PRIVATE_KEY, complete_order_answer
from .test_hosted_page_browser import assert_accessible, checkout, new_page

pytestmark = [pytest.mark.browser, pytest.mark.live]

SOLVED = "#challenge[data-state=solved]"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from launch()


@pytest.fixture(scope="module")
def shop(database_url):  # type: ignore[no-untyped-def]
    env = {**gateway_env(database_url, PRIVATE_KEY), "GATEWAY_LIMIT_CARD_PER_ADDRESS": "10000 per minute",
           "GATEWAY_LIMIT_PAGE_PER_ADDRESS": "10000 per minute"}
    with StoreReceiver() as receiver, Gunicorn(env, workers=1, app="tests.web.challenged_wsgi:app") as gateway:
        receiver.answer = complete_order_answer(1)
        yield gateway, receiver


def posted_solution(request: Any) -> str:
    return parse_qs(request.post_data or "").get("altcha", [""])[0]


def test_keyboard_only_purchase_through_the_security_check(browser, shop):
    page = new_page(browser, 390)
    posts: list[Any] = []
    page.on("request", lambda request: posts.append(request) if "/pay/submit" in request.url else None)
    try:
        url = checkout(*shop)
        page.goto(url)
        token = url.rsplit("paymenttoken=", 1)[1]
        page.keyboard.press("Tab")
        typed = {"card_number": CARDS["mastercard"], "expiry": "1239", "cvc": "123", "holder": "Ada Shopper"}
        for _ in range(40):
            active = page.evaluate("document.activeElement.id")
            if active in typed:
                page.keyboard.type(typed.pop(active))
                if not typed:
                    page.wait_for_selector(SOLVED)
            elif active == "pay-button" and not typed:
                break
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "pay-button", typed
        assert page.get_by_role("status").filter(has_text="Security check done").is_visible()
        assert_accessible(page, "challenge solved")
        screenshot(page, "challenge-solved-390")
        page.keyboard.press("Enter")
        page.wait_for_url("**/healthz?returned=1")
        [post] = posts
        assert challenge.verify(DEV_SECRET_KEY, challenge.binding(token, 1), posted_solution(post))
    finally:
        page.context.close()


@pytest.mark.any_engine
def test_pay_stays_disabled_until_the_check_is_solved(browser, shop):
    page = new_page(browser, 1280)
    try:
        page.route("**/challenge-worker.js", lambda route: route.abort())
        page.goto(checkout(*shop))
        page.wait_for_selector("#challenge[data-state=failed]")
        assert page.locator("#pay-button").is_disabled()
        assert "could not run in this browser" in page.get_by_role("status").inner_text()
        assert page.locator("#altcha").input_value() == ""
        assert_accessible(page, "challenge failed")
    finally:
        page.context.close()


@pytest.mark.any_engine
def test_without_javascript_the_page_says_why_it_cannot_pay(browser, shop):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(checkout(*shop))
        notice = page.locator("#challenge noscript p")  # Playwright's text search skips <noscript>
        assert notice.is_visible()
        assert "This payment needs JavaScript for a short security check" in notice.inner_text()
        assert page.locator("#pay-button").is_disabled()
        screenshot(page, "challenge-no-javascript")
    finally:
        context.close()
