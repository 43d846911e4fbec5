"""The charged shopper and a store that answers slowly or with garbage: the pay request ends within
one delivery deadline, shows the outcome (the charge stands), and the attempt is recorded."""
from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import select

from gateway import create_app
from gateway.models import Notification, NotificationAttempt, PaymentState

from ..flow_helpers import open_session, pay, payment_row
from ..notifications.stores import OK_ANSWER, RawStore, http_answer

pytestmark = pytest.mark.live


@pytest.fixture
def quick_delivery_app(settings):  # type: ignore[no-untyped-def]
    """Store deliveries cut off after 1.5 s (the same rules as the default 10 s, scaled down)."""
    app = create_app(dataclasses.replace(settings, notify_timeout_seconds=1.5))
    app.config["TESTING"] = True
    yield app
    app.extensions["gateway"].db.dispose()


def attempts(services):  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return session.scalars(select(NotificationAttempt).order_by(NotificationAttempt.id)).all()


def test_case_6_a_trickling_store_holds_the_charged_shopper_no_longer_than_one_delivery_deadline(
        quick_delivery_app):
    services = quick_delivery_app.extensions["gateway"]
    client = quick_delivery_app.test_client()
    with RawStore(http_answer(OK_ANSWER), trickle=0.5) as store:
        token, csrf = open_session(client, notificationurl=store.url)
        started = time.monotonic()
        response = pay(client, token, csrf)
        took = time.monotonic() - started
    assert response.status_code == 202 and "Payment received" in response.get_data(as_text=True)
    assert took < 2.5  # the answer alone would take 60 s at one byte every 0.5 s
    assert len(store.received) == 1
    assert payment_row(services, token).state == PaymentState.APPROVED.value  # the charge stands
    [attempt] = attempts(services)
    assert attempt.error == "store did not answer in time"


@pytest.mark.parametrize("body, kept", [
    (b'{"processed":1}\x00', '{"processed":1}\\x00'),
    (b"\xff\xfe\x00<html>\x1b", "\\xff\\xfe\\x00<html>\\x1b"),
], ids=["nul-after-the-json", "not-utf8"])
def test_case_7_nul_or_garbage_in_the_store_answer_shows_the_charged_shopper_the_outcome(
        quick_delivery_app, body, kept):
    services = quick_delivery_app.extensions["gateway"]
    client = quick_delivery_app.test_client()
    with RawStore(http_answer(body)) as store:
        token, csrf = open_session(client, notificationurl=store.url)
        response = pay(client, token, csrf)
    assert response.status_code == 202 and "Payment received" in response.get_data(as_text=True)
    payment = payment_row(services, token)
    assert payment.state == PaymentState.APPROVED.value
    [attempt] = attempts(services)
    assert (attempt.http_status, attempt.response_snippet) == (200, kept)
    with services.db.transaction() as session:
        notification = session.scalars(select(Notification)).one()
    assert notification.state == "pending" and "not a CompleteOrderResponse" in notification.last_error
