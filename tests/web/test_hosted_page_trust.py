"""What makes shoppers trust the page: who they pay, whether it is a test, and errors in plain words."""
from __future__ import annotations

import dataclasses

import pytest

from gateway import create_app
from gateway.payments import stores
from gateway.web.payment_page import content_security_policy

from ..flow_helpers import open_session, pay
from ..protocol_helpers import CARDS


def html_of(client, token):  # type: ignore[no-untyped-def]
    return client.get("/pay", query_string={"paymenttoken": token}).get_data(as_text=True)


def test_merchant_identity_is_shown_with_logo_and_support_contact(client, services):
    stores.save_identity(services, "example-com.3dcartstores.com", display_name="Acme Coffee & Co",
                         logo_url="https://cdn.acme.test/logo.svg", support_email="help@acme.test",
                         support_phone="+1 555 0100", support_url="https://acme.test/help")
    token, _ = open_session(client)
    html = html_of(client, token)
    assert '<p class="name">Acme Coffee &amp; Co</p>' in html
    assert '<img src="https://cdn.acme.test/logo.svg"' in html
    assert 'href="mailto:help@acme.test"' in html and 'href="tel:+15550100"' in html
    assert 'href="https://acme.test/help"' in html
    assert "Acme Coffee &amp; Co never sees them" in html


def test_unknown_store_is_named_by_its_host_without_empty_contact(client):
    token, _ = open_session(client)
    html = html_of(client, token)
    assert '<p class="name">example-com.3dcartstores.com</p>' in html
    assert "Questions about your order" not in html and "<img src=\"https" not in html


def test_merchant_identity_is_on_every_shopper_page(client, services, store):
    stores.save_identity(services, "example-com.3dcartstores.com", display_name="Acme Coffee")
    token, csrf = open_session(client)
    for response in (pay(client, token, csrf, number="4242424242424241"),
                     pay(client, token, csrf, number=CARDS["decline"])):
        assert "Acme Coffee" in response.get_data(as_text=True)
    cancelled = client.post("/pay/cancel", data={"paymenttoken": token, "csrf": csrf})
    assert cancelled.status_code == 303
    gone = client.get("/pay", query_string={"paymenttoken": token})
    assert gone.status_code == 410 and "Acme Coffee" in gone.get_data(as_text=True)


def test_sandbox_processor_shows_the_test_mode_banner(client):
    token, _ = open_session(client)
    assert 'id="test-mode"' in html_of(client, token)


@pytest.mark.parametrize("testmode, banner", [(True, True), (False, False)])
def test_live_processor_shows_the_banner_only_for_test_orders(settings, testmode, banner):
    app = create_app(dataclasses.replace(settings, processor="authorizenet"))
    try:
        client = app.test_client()
        token, _ = open_session(client, testmode=testmode)
        assert ('id="test-mode"' in html_of(client, token)) is banner
    finally:
        app.extensions["gateway"].db.dispose()


def test_content_security_policy_allows_only_our_script_and_https_forms(client):
    token, _ = open_session(client)
    policy = client.get("/pay", query_string={"paymenttoken": token}).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "form-action 'self' https:;" not in policy
    assert policy.endswith("form-action 'self' https:") and "http:" not in policy.replace("https:", "")


def test_http_store_urls_are_allowed_as_form_targets_only_in_development(client, services):
    token, _ = open_session(client, cancelurl="http://localhost:5001/cart", returnurl="http://localhost:5001/ok",
                            errorurl="http://localhost:5001/error")
    policy = client.get("/pay", query_string={"paymenttoken": token}).headers["Content-Security-Policy"]
    assert policy.endswith("form-action 'self' https: http://localhost:5001")
    payment = type("P", (), {"cancel_url": "http://a.test/x", "return_url": "http://a.test/y", "error_url": "https://b.test"})
    production = dataclasses.replace(services.settings, environment="production")
    services.settings, saved = production, services.settings
    try:
        with client.application.test_request_context():
            assert content_security_policy(payment).endswith("form-action 'self' https:")  # type: ignore[arg-type]
    finally:
        services.settings = saved


@pytest.mark.parametrize("path, method, code, title", [
    ("/pay?paymenttoken=unknown", "GET", 404, "Page not found"),
    ("/no-such-page", "GET", 404, "Page not found"),
    ("/pay/submit", "POST", 404, "Page not found"),
    ("/pay/status", "DELETE", 405, "This page cannot be used this way"),
])
def test_error_pages_have_friendly_titles_not_http_names(client, path, method, code, title):
    response = client.open(path, method=method)
    html = response.get_data(as_text=True)
    assert response.status_code == code
    assert f"<h1>{title}</h1>" in html
    for raw in ("Not Found", "Bad Request", "Method Not Allowed", "The requested URL"):
        assert raw not in html


def test_forged_form_gets_a_friendly_400(client):
    token, _ = open_session(client)
    response = client.post("/pay/submit", data={"paymenttoken": token, "csrf": "forged"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "<h1>This request could not be used</h1>" in html
    assert "This form has expired" in html


def test_processor_error_does_not_say_try_again_twice(client, store):
    token, csrf = open_session(client)
    html = pay(client, token, csrf, number=CARDS["error"]).get_data(as_text=True)
    assert "We could not reach the card network. Please try again." in html
    assert html.lower().count("try again") == 1 and "You have 2 more attempts" in html


def test_card_number_and_cvc_are_never_echoed_and_the_shopper_is_told(client, store):
    token, csrf = open_session(client)
    html = pay(client, token, csrf, number=CARDS["insufficient"], cvc="987").get_data(as_text=True)
    assert CARDS["insufficient"] not in html and '"987"' not in html
    assert "we never show your card number or security code again" in html
    assert 'value="12/39"' in html and 'value="Ada Shopper"' in html


def test_focus_goes_to_the_error_summary_without_javascript(client):
    token, csrf = open_session(client)
    html = pay(client, token, csrf, number="4242424242424241").get_data(as_text=True)
    assert 'id="error-summary" tabindex="-1" autofocus' in html
    assert '<a href="#card_number">This card number is not valid' in html


def test_oversized_form_gets_a_friendly_413(client):
    response = client.post("/pay/submit", data={"paymenttoken": "x", "holder": "x" * (2 * 1024 * 1024)},
                           headers={"Accept-Language": "fr"})
    assert response.status_code == 413
    assert "<h1>Trop de données ont été envoyées</h1>" in response.get_data(as_text=True)
