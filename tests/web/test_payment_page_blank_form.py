"""A page view's card form is its store's page for the language with the payment's own five things filled in
(gateway/web/payment_page._blank_form): the very page the template renders for that payment."""
from __future__ import annotations

import pytest
from flask import template_rendered

from gateway.payments.queries import find_view
from gateway.payments.stores import save_identity
from gateway.web import payment_page

from .. import factories


def rendered(app, services, token: str, lang: str) -> str:  # type: ignore[no-untyped-def]
    """The template's own page for the payment, without the blank page of its store."""
    with app.test_request_context("/pay", query_string={"paymenttoken": token, "lang": lang}):
        view = find_view(services, token)
        return payment_page._pay_page(view, payment_page._page(view), payment_page.csrf_token(token), {}, "", None, {})


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_a_second_payment_of_the_store_gets_the_page_the_template_renders_for_it(app, client, services, lang):
    with factories.bound(services):
        first = factories.PaymentFactory(invoice="A-1", amount_total=1999)
        second = factories.PaymentFactory(invoice='B<&"\'>2', amount_total=123456, currency="EUR",
                                          items=[{"itemid": "<b>x</b>", "itemname": "Tea & <cake>", "quantity": "2", "unitprice": 61728}])
    assert client.get("/pay", query_string={"paymenttoken": first.token, "lang": lang}).status_code == 200
    templates: list[str] = []
    with template_rendered.connected_to(lambda _app, template, **_extra: templates.append(template.name), app):
        page = client.get("/pay", query_string={"paymenttoken": second.token, "lang": lang})
    assert page.status_code == 200 and "pay.html" not in templates  # filled in, not rendered again
    assert page.get_data(as_text=True) == rendered(app, services, second.token, lang)
    assert second.token in page.get_data(as_text=True) and first.token not in page.get_data(as_text=True)
    assert "B&lt;&amp;&#34;&#39;&gt;2" in page.get_data(as_text=True)
    assert "\x00" not in page.get_data(as_text=True)


def test_a_stores_new_name_shows_on_its_next_blank_form(app, client, services):
    with factories.bound(services):
        payment = factories.PaymentFactory()
    client.get("/pay", query_string={"paymenttoken": payment.token})
    save_identity(services, payment.store_key, display_name="Tea & Co")
    page = client.get("/pay", query_string={"paymenttoken": payment.token}).get_data(as_text=True)
    assert "Tea &amp; Co" in page and page == rendered(app, services, payment.token, "en")


def test_the_blank_forms_policy_is_its_own_payments(app, client, services):
    """The response's Content-Security-Policy names the payment's own store pages (development)."""
    with factories.bound(services):
        first = factories.PaymentFactory(cancel_url="http://one.example/cancel")
        second = factories.PaymentFactory(cancel_url="http://two.example/cancel")
    client.get("/pay", query_string={"paymenttoken": first.token})
    policy = client.get("/pay", query_string={"paymenttoken": second.token}).headers["Content-Security-Policy"]
    assert "http://two.example" in policy and "http://one.example" not in policy
