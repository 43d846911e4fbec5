"""Issue 9: hostile input, replayed requests, production misconfiguration, card testing.

Each numbered case of the issue has tests named after it; every one of them failed on the code
before the fix (a 500, an unsigned answer, a second charge, or an accepted request).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from gateway import create_app
from gateway.models import Payment, PaymentState, PostOrderRequest, SeenRequest
from gateway.notifications import client as store_client
from gateway.notifications.client import is_public
from gateway.notifications.exchange import UnsafeDestination
from gateway.protocol.signing import sign
from gateway.web.hardening import RedactPaymentTokens

from ..flow_helpers import approve_all, notifications_sent, open_session, pay
from ..protocol_helpers import (
    EXAMPLE_CHECKOUT,
    PRIVATE_KEY,
    assert_checkout_response_signed,
    md5,
    post_json,
    signed_checkout,
    signed_refund,
)

WHOLE_NUMBER_FIELDS = {
    "/checkout": ["orderid", "amounttotal", "taxtotal", "shippingtotal", "discount"],
    "/post-order": ["orderid", "amounttotal"],
}
HUGE_NUMBERS = [b"1e1000000", b"9" * 600_000, b"-1e999999999", b"1" + b"0" * 5000 + b".5"]


def sessions(services) -> int:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Payment))


def assert_refund_answer_signed(answer: dict, orderid: str = "", invoice: str = "") -> None:
    assert answer["signature"] == sign(answer["randomkey"], PRIVATE_KEY, orderid, invoice, answer["transactionid"])


def raw_post(client, path: str, body: bytes):  # type: ignore[no-untyped-def]
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 200, response.data[:300]
    return response.get_json()


def production_app(settings):  # type: ignore[no-untyped-def]
    app = create_app(replace(settings, environment="production", notify_allow_private=False))
    app.config["TESTING"] = True
    return app


# 1. CPU denial of service without a signature -------------------------------------------------


@pytest.mark.parametrize("path", sorted(WHOLE_NUMBER_FIELDS))
@pytest.mark.parametrize("number", HUGE_NUMBERS, ids=["1e1000000", "600000-digits", "huge-exponent", "5000-digit-fraction"])
def test_case_1_huge_numbers_are_refused_before_conversion(client, path, number):
    for field in WHOLE_NUMBER_FIELDS[path]:
        answer = raw_post(client, path, b'{"%s": %s}' % (field.encode(), number))
        assert answer["errorcode"] == "100"
        assert f"{field}: must be" in answer["errormessage"] and "at most" in answer["errormessage"]


def test_case_1_a_signed_huge_amount_is_refused_too(client, services):
    body = json.dumps(signed_checkout(amounttotal="1e1000000")).encode()
    answer = raw_post(client, "/checkout", body)
    assert answer["errorcode"] == "100" and "amounttotal: must be at most" in answer["errormessage"]
    assert sessions(services) == 0


# 2. Production runs on the sandbox: see tests/test_config.py (test_case_2_*) --------------------


# 3. Replayed or reshaped CheckoutRequests ------------------------------------------------------


def test_case_3_a_paid_order_replayed_with_another_notification_host_is_refused(client, services, store):
    approve_all(store)
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    replayed = signed_checkout(randomkey=EXAMPLE_CHECKOUT["randomkey"], notificationurl=EXAMPLE_CHECKOUT[
        "notificationurl"].replace("example-com.3dcartstores.com", "localhost"))
    answer = post_json(client, "/checkout", replayed)
    assert answer["errorcode"] == "100" and "randomkey" in answer["errormessage"] and not answer["paymenttoken"]
    assert sessions(services) == 1 and len(notifications_sent(store)) == 1


def test_case_3_a_signature_cannot_be_reshaped_across_the_invoice_amount_boundary(client, services):
    original = signed_checkout(invoice="AB-1001", amounttotal=2500)
    reshaped = {**original, "invoice": "AB-10012", "amounttotal": 500}
    assert md5(original["randomkey"], PRIVATE_KEY, 123, "AB-10012", 500) == original["signature"]  # same md5 text
    assert post_json(client, "/checkout", original)["errorcode"] == ""
    answer = post_json(client, "/checkout", reshaped)
    assert answer["errorcode"] == "100" and "already used" in answer["errormessage"]
    with services.db.transaction() as session:
        assert session.scalars(select(Payment.amount_total)).all() == [2500]


def test_case_3_an_exact_retry_gets_its_session_back(client, services):
    first = post_json(client, "/checkout", signed_checkout())
    again = post_json(client, "/checkout", signed_checkout())
    assert first["paymenttoken"] == again["paymenttoken"] and sessions(services) == 1
    assert_checkout_response_signed(again)


def test_case_3_a_randomkey_is_accepted_once_across_both_endpoints(client, services):
    assert post_json(client, "/checkout", signed_checkout(randomkey="shared-rk"))["errorcode"] == ""
    answer = post_json(client, "/post-order", signed_refund(randomkey="shared-rk"))
    assert answer["errorcode"] == "100" and "already used" in answer["errormessage"]
    with services.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PostOrderRequest)) == 0


def test_case_3_request_fingerprints_are_keyed(client, services):
    body = signed_checkout()
    post_json(client, "/checkout", body)
    with services.db.transaction() as session:
        stored = session.scalars(select(SeenRequest.digest)).one()
    unkeyed = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    assert stored != unkeyed and len(stored) == 64


# 4. Money taken that can never be reported -----------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://store.example.com/notify",
    "https://10.0.0.7/notify",
    "https://127.0.0.1/notify",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/notify",
    "https://[64:ff9b::7f00:1]/notify",
    "https://[2002:7f00:1::1]/notify",
    "https://[::ffff:127.0.0.1]/notify",
    "https://100.64.0.1/notify",
])
def test_case_4_checkout_refuses_a_notification_url_delivery_would_refuse(settings, url):
    app = production_app(settings)
    answer = post_json(app.test_client(), "/checkout", signed_checkout(notificationurl=url))
    assert answer["errorcode"] == "100" and "notificationurl" in answer["errormessage"]
    assert not answer["paymenttoken"]
    assert sessions(app.extensions["gateway"]) == 0
    app.extensions["gateway"].db.dispose()


def test_case_4_production_checkout_needs_https_shopper_pages(settings, monkeypatch):
    monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["93.184.215.14"])
    app = production_app(settings)
    answer = post_json(app.test_client(), "/checkout", signed_checkout(returnurl="http://shop.example.com/thanks"))
    assert answer["errorcode"] == "100" and "returnurl must use https" in answer["errormessage"]
    assert post_json(app.test_client(), "/checkout", signed_checkout(randomkey="rk-2"))["errorcode"] == ""
    app.extensions["gateway"].db.dispose()


@pytest.mark.live
def test_case_4_delivery_connects_to_the_address_it_checked(monkeypatch):
    """DNS rebinding: the check saw a public address; the connection must go there, not re-resolve."""
    from ..live import StoreReceiver

    with StoreReceiver() as receiver:
        port = receiver.server.server_address[1]
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.1"])
        monkeypatch.setattr(store_client, "is_public", lambda address: True)
        client = store_client.StoreClient(timeout=5, require_https=False, allow_private=False)
        # store.invalid never resolves: only the checked address can have been used.
        exchange = client.post(f"http://store.invalid:{port}/notify", {"orderid": 1})
    assert exchange.error == "" and exchange.answer is not None and exchange.answer.processed
    assert receiver.received == [{"orderid": 1}]


# 5. Unsigned 500s ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/checkout", "/post-order"])
def test_case_5_a_100000_deep_array_gets_a_signed_answer(client, path):
    answer = raw_post(client, path, b"[" * 100_000 + b"]" * 100_000)
    assert answer["errorcode"] == "100" and "nested" in answer["errormessage"]
    if path == "/post-order":
        assert_refund_answer_signed(answer)


@pytest.mark.parametrize("field", ["orderid", "invoice"])
def test_case_5_a_lone_surrogate_in_a_signed_field_gets_a_signed_answer(client, field):
    body = json.dumps(signed_refund()).replace(f'"{field}": ', f'"{field}": "\\ud800", "x": ', 1)
    answer = raw_post(client, "/post-order", body.encode())
    assert answer["errorcode"] == "100" and "surrogate" in answer["errormessage"]
    assert_refund_answer_signed(answer)


def test_case_5_a_bad_field_is_never_signed_over(client):
    answer = raw_post(client, "/post-order", json.dumps(signed_refund(orderid="12x")).encode())
    assert answer["errorcode"] == "100"
    assert_refund_answer_signed(answer, orderid="", invoice="AB-12234")


@pytest.mark.parametrize("method,path", [("GET", "/pay"), ("GET", "/pay/status"), ("POST", "/pay/submit"),
                                         ("POST", "/pay/cancel"), ("POST", "/pay")])
@pytest.mark.parametrize("token", ["%00", "a" * 40 + "%00", "x" * 100_000, "%ff%fe" * 20, "%ed%a0%80" * 8],
                         ids=["nul", "trailing-nul", "100k", "not-utf8", "encoded-surrogate"])
def test_case_5_a_malformed_payment_token_is_a_404(client, method, path, token):
    if method == "GET":
        response = client.get(f"{path}?paymenttoken={token}")
    else:
        response = client.post(path, data=f"paymenttoken={token}&csrf=x",
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 404


def test_case_5_a_signed_huge_quantity_is_refused_at_checkout(client, services):
    items = [{"itemid": "a", "itemname": "bulk", "unitprice": 5, "quantity": "1e5000"}]
    answer = post_json(client, "/checkout", signed_checkout(items=items))
    assert answer["errorcode"] == "100" and "items.0.quantity: must be at most" in answer["errormessage"]
    assert sessions(services) == 0


def test_case_5_stored_payment_page_renders_at_the_largest_quantity(client):
    items = [{"itemid": "a", "itemname": "bulk", "unitprice": 10**12, "quantity": "1000000"}]
    token, _ = open_session(client, items=items)
    assert client.get("/pay", query_string={"paymenttoken": token}).status_code == 200


# 6. Card testing and guessing ------------------------------------------------------------------


def test_case_6_card_attempts_are_limited_per_address(client, store):
    approve_all(store)
    token, csrf = open_session(client)
    codes = [pay(client, token, csrf, number="4242").status_code for _ in range(11)]
    assert codes[:10] == [422] * 10  # a field error each, but each counts as an attempt
    assert codes[10] == 429
    refused = pay(client, token, csrf, number="4242")
    assert "Too many card attempts" in refused.get_data(as_text=True) and refused.headers.get("Retry-After")
    other = client.post("/pay/submit", data={"paymenttoken": token}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code != 429  # another shopper's address is not affected


def test_case_6_token_guessing_is_limited_per_address(client):
    guesses = [client.get("/pay", query_string={"paymenttoken": f"guess{n:020d}"}).status_code for n in range(21)]
    assert guesses[:20] == [404] * 20 and guesses[20] == 429
    assert "unknown payment links" in client.get("/pay?paymenttoken=x" * 1).get_data(as_text=True)


def test_case_6_card_attempts_are_limited_per_store_across_addresses(settings, store):
    approve_all(store)
    app = create_app(replace(settings, limit_card_per_store="5 per minute"))
    client = app.test_client()
    token, csrf = open_session(client)
    codes = [
        client.post("/pay/submit", data={"paymenttoken": token, "csrf": csrf, "card_number": "1"},
                    environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code
        for n in range(6)
    ]
    assert codes == [422] * 5 + [429]
    app.extensions["gateway"].db.dispose()


def test_case_6_limits_are_shared_by_every_process_through_redis(settings):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = replace(settings, ratelimit_storage="redis://127.0.0.1:6379/0",
                     limit_unknown_token_per_address="3 per minute")
    apps = [create_app(shared), create_app(shared)]
    address = {"REMOTE_ADDR": f"203.0.113.{hash(settings.database_url) % 200}"}
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").flushdb()
        codes = [apps[n % 2].test_client().get("/pay?paymenttoken=guess0000000000000000",
                                               environ_base=address).status_code for n in range(4)]
        assert codes == [404, 404, 404, 429]
    finally:
        for app in apps:
            app.extensions["gateway"].db.dispose()


# 7. Smaller ------------------------------------------------------------------------------------


def test_case_7_hsts_in_production(settings):
    app = production_app(settings)
    assert app.test_client().get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")
    app.extensions["gateway"].db.dispose()


def test_case_7_signed_answers_are_never_cached(client):
    for path, body in (("/checkout", signed_checkout()), ("/post-order", signed_refund())):
        response = client.post(path, data=json.dumps(body), content_type="application/json")
        assert response.headers["Cache-Control"] == "no-store"


def test_case_7_production_pages_post_only_to_https(settings, monkeypatch):
    monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["93.184.215.14"])
    app = production_app(settings)
    client = app.test_client()
    token = post_json(client, "/checkout", signed_checkout())["paymenttoken"]
    policy = client.get("/pay", query_string={"paymenttoken": token}).headers["Content-Security-Policy"]
    assert "form-action 'self' https:" in policy and "http:" not in policy.replace("https:", "")
    app.extensions["gateway"].db.dispose()


def test_case_7_payment_tokens_are_redacted_from_access_logs():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1,
                               '%(h)s "%(r)s" %(s)s', ({"h": "127.0.0.1", "r": "GET /pay?paymenttoken=SeCrEt-123&x=1 HTTP/1.1",
                                                        "s": "200"},), None)
    RedactPaymentTokens().filter(record)
    assert "SeCrEt" not in record.getMessage() and "paymenttoken=[redacted]&x=1" in record.getMessage()


def test_case_7_the_filter_is_on_the_access_loggers(app):
    for name in ("gunicorn.access", "werkzeug"):
        assert any(isinstance(f, RedactPaymentTokens) for f in logging.getLogger(name).filters)


@pytest.mark.parametrize("address,public", [
    ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False), ("64:ff9b::5db8:d70e", True),
    ("2002:7f00:1::1", False), ("2002:c0a8:101::1", False), ("2002:5db8:d70e::1", True),
    ("::ffff:127.0.0.1", False), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ("93.184.215.14", True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
])
def test_case_7_tunnelled_loopback_and_private_addresses_are_not_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_case_7_a_405_says_which_methods_are_allowed(client):
    response = client.delete("/checkout")
    assert response.status_code == 405 and response.headers["Allow"]
    assert "POST" in response.headers["Allow"]


def test_case_7_unresolvable_notification_host_is_refused_with_a_reason():
    with pytest.raises(UnsafeDestination, match="cannot resolve"):
        store_client.check_destination("https://no-such-host.invalid/x", require_https=True, allow_private=False)


def test_case_7_an_open_session_still_pays_after_the_fixes(client, store):
    approve_all(store)
    token, csrf = open_session(client)
    assert pay(client, token, csrf).status_code == 303
    with client.application.extensions["gateway"].db.transaction() as session:
        assert session.scalars(select(Payment.state)).one() == PaymentState.COMPLETED.value


def test_case_6_a_refusal_speaks_the_shoppers_language(client):
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    for n in range(21):
        response = client.get(f"/pay?paymenttoken=guess{n:020d}", headers=german)
    assert response.status_code == 429
    assert "Zu viele unbekannte Zahlungslinks" in response.get_data(as_text=True)


def _self_signed(tmp_path, name: str):  # type: ignore[no-untyped-def]
    """A certificate for ``name`` and its key, as PEM files (the test's own certificate authority)."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
                   .not_valid_after(now + timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "store.pem", tmp_path / "store.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.live
def test_case_4_https_delivery_is_pinned_and_still_checks_the_certificate(monkeypatch, tmp_path):
    """Production delivery (https): the socket goes to the checked address while SNI and the
    certificate check still use the store's name, so a pinned call is neither broken nor unverified."""
    import ssl

    from ..live import StoreReceiver

    cert, key = _self_signed(tmp_path, "store.invalid")
    with StoreReceiver() as receiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
        port = receiver.server.server_address[1]
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        monkeypatch.setattr(store_client, "resolve", lambda host, port, timeout=3.0: ["127.0.0.1"])
        monkeypatch.setattr(store_client, "is_public", lambda address: True)
        client = store_client.StoreClient(timeout=5, require_https=True, allow_private=False)
        delivered = client.post(f"https://store.invalid:{port}/notify", {"orderid": 7})
        impostor = client.post(f"https://other-store.invalid:{port}/notify", {"orderid": 8})
    assert delivered.error == "" and delivered.answer is not None and delivered.answer.processed
    assert impostor.answer is None and impostor.error  # the certificate is for store.invalid only
    assert receiver.received == [{"orderid": 7}]
