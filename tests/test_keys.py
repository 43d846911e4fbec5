"""Every key rotates (issue 20, item 11): several Fernet keys open and the first seals, `gateway keys reseal`
moves what is stored to the first; the Private Key and the secret key each have an overlap window."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator

from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from flask.cli import ScriptInfo
from sqlalchemy import select

from gateway import create_app
from gateway.cli import main
from gateway.config import Settings
from gateway.console import accounts
from gateway.console.auth import COOKIE, LOGIN_COOKIE, PATH
from gateway.models import Charge, ConsoleAccount, Payment
from gateway.vault import Credentials, Vault

from . import factories
from .console_helpers import PASSWORD, form_csrf, make_account, signed_in
from .flow_helpers import approve_all, notifications_sent, open_session, pay
from .protocol_helpers import PRIVATE_KEY, md5, post_json, signed_checkout, signed_refund

OLD_FERNET, NEW_FERNET = Fernet.generate_key().decode(), Fernet.generate_key().decode()
NEW_PRIVATE_KEY = "the-portal-key-issued-after-rotation"
OLD_SECRET_KEY, NEW_SECRET_KEY = "secret-key-before-the-rotation", "secret-key-after-the-rotation"
CREDENTIALS = Credentials("merchant-login", "merchant-transaction-key")


@contextmanager
def running(settings: Settings, **changes: Any) -> Iterator[Any]:
    """The app on the test database with ``changes`` to its settings: one deployment before or after a rotation."""
    app = create_app(replace(settings, **changes))
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["gateway"].db.dispose()


def gateway(app: Any, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def stored(services: Any) -> tuple[str, str]:
    with services.db.transaction() as session:
        return (session.scalars(select(Payment.credentials_sealed)).one(),
                session.scalars(select(ConsoleAccount.totp_sealed)).one())


# The Fernet key --------------------------------------------------------------------------------------


def test_item_11_secrets_sealed_under_the_old_encryption_key_open_once_a_new_key_comes_first():
    sealed = Vault(OLD_FERNET, OLD_SECRET_KEY).seal(CREDENTIALS)
    rotated = Vault(f"{NEW_FERNET},{OLD_FERNET}", OLD_SECRET_KEY)
    assert rotated.open(sealed) == CREDENTIALS
    assert Vault(NEW_FERNET, OLD_SECRET_KEY).open(rotated.seal(CREDENTIALS)) == CREDENTIALS  # the first key seals


def test_item_11_reseal_moves_every_stored_secret_to_the_first_key_and_is_safe_to_rerun(settings):
    with running(settings, encryption_key=OLD_FERNET) as before:
        with factories.bound(before.extensions["gateway"]):
            factories.PaymentFactory()
        make_account(before.extensions["gateway"], "alice", "operator")
        accounts.enable_totp(before.extensions["gateway"], "test", "alice")
        old_credentials, old_totp = stored(before.extensions["gateway"])
        totp_secret = before.extensions["gateway"].vault.open_text(old_totp)
    with running(settings, encryption_key=f"{NEW_FERNET},{OLD_FERNET}") as rotated:
        first, again = gateway(rotated, "keys", "reseal"), gateway(rotated, "keys", "reseal")
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert first.output.splitlines() == [
        "merchant credentials: 1 re-sealed, 0 left alone (already under the first key, or erased meanwhile), 0 unreadable",
        "console TOTP secrets: 1 re-sealed, 0 left alone (already under the first key, or erased meanwhile), 0 unreadable"]
    assert again.output.count("0 re-sealed, 1 left alone") == 2
    with running(settings, encryption_key=NEW_FERNET) as after:  # the old key is gone
        vault = after.extensions["gateway"].vault
        new_credentials, new_totp = stored(after.extensions["gateway"])
        assert vault.open(new_credentials).secret and vault.open_text(new_totp) == totp_secret
    for secret in (old_credentials, new_credentials, old_totp, new_totp, totp_secret, NEW_FERNET, OLD_FERNET):
        assert secret not in first.output + again.output


def test_item_11_reseal_names_rows_no_configured_key_opens_and_fails(settings):
    with running(settings, encryption_key=Fernet.generate_key().decode()) as lost:
        with factories.bound(lost.extensions["gateway"]):
            payment_id = factories.PaymentFactory().id
        sealed, = stored_payments(lost.extensions["gateway"])
    with running(settings, encryption_key=f"{NEW_FERNET},{OLD_FERNET}") as rotated:
        result = gateway(rotated, "keys", "reseal")
        assert stored_payments(rotated.extensions["gateway"]) == [sealed]  # left as it was
    assert result.exit_code == 1
    assert f"no configured GATEWAY_ENCRYPTION_KEY opens payments {payment_id}" in result.output
    assert sealed not in result.output


def stored_payments(services: Any) -> list[str]:
    with services.db.transaction() as session:
        return list(session.scalars(select(Payment.credentials_sealed)))


# The Private Key -------------------------------------------------------------------------------------


def test_item_11_a_checkout_request_signed_with_the_previous_private_key_is_answered_and_notified_with_the_new_one(
        settings, store):
    with running(settings, private_key=NEW_PRIVATE_KEY, private_keys_previous=(PRIVATE_KEY,)) as app:
        client = app.test_client()
        answer = post_json(client, "/checkout", signed_checkout())  # signed with the old key
        assert answer["errorcode"] == ""
        assert answer["signature"] == md5(answer["randomkey"], NEW_PRIVATE_KEY, answer["paymenttoken"], answer["redirecturl"])
        approve_all(store)
        token, csrf = open_session(client, randomkey="rk-second-checkout")
        assert pay(client, token, csrf).status_code == 303
    notification, = notifications_sent(store)
    assert notification["signature"] == md5(notification["randomkey"], NEW_PRIVATE_KEY, notification["orderid"],
                                             notification["invoice"], notification["transactionid"])


def test_item_11_a_refund_request_signed_with_the_previous_private_key_is_answered_with_the_new_one(settings, store):
    with running(settings, private_key=NEW_PRIVATE_KEY, private_keys_previous=(PRIVATE_KEY,)) as app:
        client = app.test_client()
        approve_all(store)
        token, csrf = open_session(client)
        assert pay(client, token, csrf).status_code == 303
        with app.extensions["gateway"].db.transaction() as session:
            paid = session.scalars(select(Charge)).one().processor_transaction_id
        answer = post_json(client, "/post-order", signed_refund(transactionid=paid))
    assert answer["approved"] == 1, answer
    assert answer["signature"] == md5(answer["randomkey"], NEW_PRIVATE_KEY, 123, "AB-12234", answer["transactionid"])


def test_item_11_once_the_overlap_ends_the_old_private_key_is_refused(settings):
    with running(settings, private_key=NEW_PRIVATE_KEY) as app:
        answer = post_json(app.test_client(), "/checkout", signed_checkout())
    assert answer["errorcode"] != "" and "signature does not match" in answer["errormessage"]


# The secret key --------------------------------------------------------------------------------------


def test_item_11_an_operator_signed_in_before_a_secret_key_rotation_stays_signed_in(settings):
    """Console sessions are random tokens kept in the database: the secret key plays no part in them."""
    with running(settings, secret_key=OLD_SECRET_KEY) as before:
        make_account(before.extensions["gateway"], "alice", "operator")
        client, _ = signed_in(before, "alice")
        cookie = client.get_cookie(COOKIE, path=PATH)
    with running(settings, secret_key=NEW_SECRET_KEY) as after:
        rotated = after.test_client()
        rotated.set_cookie(COOKIE, cookie.value, path=PATH)
        page = rotated.get("/console/audit")
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)


def test_item_11_a_sign_in_form_served_before_a_secret_key_rotation_still_signs_in(settings):
    with running(settings, secret_key=OLD_SECRET_KEY) as before:
        make_account(before.extensions["gateway"], "alice", "operator")
        browser = before.test_client()
        csrf = form_csrf(browser.get("/console/login").get_data(as_text=True))
        nonce = browser.get_cookie(LOGIN_COOKIE, path=PATH).value
    form = {"csrf": csrf, "username": "alice", "password": PASSWORD, "code": ""}
    with running(settings, secret_key=NEW_SECRET_KEY, secret_keys_previous=(OLD_SECRET_KEY,)) as after:
        rotated = after.test_client()
        rotated.set_cookie(LOGIN_COOKIE, nonce, path=PATH)
        assert rotated.post("/console/login", data=form).status_code == 303


def test_item_11_refunds_of_charges_made_before_a_secret_key_rotation_still_find_their_charge(settings, store):
    """A charge keeps the credentials' fingerprint made under the secret key of its day."""
    with running(settings, secret_key=OLD_SECRET_KEY) as before:
        client = before.test_client()
        approve_all(store)
        token, csrf = open_session(client)
        assert pay(client, token, csrf).status_code == 303
        with before.extensions["gateway"].db.transaction() as session:
            paid = session.scalars(select(Charge)).one().processor_transaction_id
    with running(settings, secret_key=NEW_SECRET_KEY, secret_keys_previous=(OLD_SECRET_KEY,)) as after:
        answer = post_json(after.test_client(), "/post-order", signed_refund(transactionid=paid))
    assert answer["approved"] == 1, answer


def test_item_11_a_payment_page_served_before_a_secret_key_rotation_still_pays(settings, store):
    """A shopper who loaded the card form before the restart is not sent back to the store."""
    with running(settings, secret_key=OLD_SECRET_KEY) as before:
        approve_all(store)
        token, csrf = open_session(before.test_client())
    with running(settings, secret_key=NEW_SECRET_KEY, secret_keys_previous=(OLD_SECRET_KEY,)) as after:
        assert pay(after.test_client(), token, csrf).status_code == 303
