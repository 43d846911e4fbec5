"""The risk step: each signal, each decision, and what a card tester can (not) learn from it."""
from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.models import Charge, Notification, PaymentEvent, PaymentState, RiskOutcome, RiskSignal, utcnow
from gateway.payments import risk
from gateway.payments.charging import submit_card

from .. import factories
from ..flow_helpers import open_session, payment_row
from ..protocol_helpers import CARDS, card_form, csrf_from

LIVE = CARDS["visa"]
DECLINED = CARDS["decline"]
OTHER_STORE = "other-store.example"
ORDERS = itertools.count(900001)


def card(number: str = LIVE, cvc: str = "123") -> dict[str, str]:
    return {"card_number": number, "expiry": "12/39", "cvc": cvc, "holder": "Ada Shopper"}


def new_payment(services: Any, **values: Any) -> Any:
    with factories.bound(services):
        return factories.PaymentFactory(orderid=values.pop("orderid", next(ORDERS)), **values)


@pytest.fixture
def sales(services: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The card numbers that reached the processor."""
    reached: list[str] = []
    sandbox = services.processor.inner
    real_sale = sandbox.sale

    def counted(request: Any) -> Any:
        reached.append(request.card.number)
        return real_sale(request)

    monkeypatch.setattr(sandbox, "sale", counted)
    return reached


def seen(services: Any, outcome: RiskOutcome, count: int = 1, *, number: str = LIVE, address: str = "198.51.100.7",
         store_key: str | None = None, reason: str = "card_declined", ago: timedelta = timedelta(0),
         payment: Any = None) -> None:
    """Earlier attempts in the windows, as the risk step would have recorded them."""
    payment = payment or new_payment(services)
    with services.db.transaction() as session:
        for _ in range(count):
            session.add(RiskSignal(
                at=utcnow() - ago, store_key=store_key or payment.store_key, payment_id=payment.id,
                orderid=payment.orderid, card_fingerprint=risk.card_fingerprint(services.settings.secret_key, number),
                address=address, network=risk.network_of(address), outcome=outcome, reason=reason))


def attempt(services: Any, number: str = LIVE, address: str = "203.0.113.9", solution_ok: bool | None = None,
            payment: Any = None) -> Any:
    return submit_card(services, payment or new_payment(services), card(number), address, solution_ok)


def decisions(services: Any, payment_id: int) -> list[tuple[str, str]]:
    with services.db.transaction() as session:
        rows = session.scalars(select(PaymentEvent).where(PaymentEvent.payment_id == payment_id,
                                                          PaymentEvent.kind.like("risk_%")).order_by(PaymentEvent.id))
        return [(row.kind, row.detail) for row in rows]


def under_attack(services: Any) -> None:
    """The store's decline ratio is past its threshold: 20 judged attempts, 19 declined, from elsewhere."""
    under_attack_at(services, new_payment(services).store_key)


def under_attack_at(services: Any, store_key: str) -> None:
    seen(services, RiskOutcome.DECLINED, 19, number="4000000000000002", address="192.0.2.1", store_key=store_key)
    seen(services, RiskOutcome.APPROVED, 1, number="4000000000000002", address="192.0.2.1", store_key=store_key)


# Decisions


def test_a_clean_attempt_is_allowed_and_charged_with_its_decision_on_the_timeline(services, sales):
    result = attempt(services)
    assert result.payment.state == PaymentState.APPROVED and sales == [LIVE]
    assert decisions(services, result.payment.id) == [("risk_allow", "")]


def approved_signals(services: Any, payment_id: int) -> int:
    with services.db.transaction() as session:
        return len(session.scalars(select(RiskSignal).where(RiskSignal.payment_id == payment_id,
                                                            RiskSignal.outcome == RiskOutcome.APPROVED)).all())


def test_an_approved_attempt_is_remembered_in_the_transaction_that_records_its_charge(services, sales):
    """One commit fewer before the store is told: the signal is written with the charge, or not at all."""
    payment = new_payment(services)
    assert attempt(services, payment=payment).payment.state == PaymentState.APPROVED
    assert approved_signals(services, payment.id) == 1
    failing = new_payment(services)
    with services.db.transaction() as session:  # its notification's row is taken: the charge's record fails, whole
        session.add(Notification(payment_id=failing.id, url=failing.notification_url, payload={}))
    with pytest.raises(IntegrityError):
        attempt(services, payment=failing)
    assert approved_signals(services, failing.id) == 0
    with services.db.transaction() as session:
        assert session.scalars(select(Charge).where(Charge.payment_id == failing.id)).all() == []
    assert payment_row(services, failing.token).state == PaymentState.AUTHORIZING  # recovery asks the processor


def test_a_challenge_sends_nothing_to_the_processor_and_counts_no_decline(services, sales):
    under_attack(services)
    result = attempt(services)
    assert result.challenge and not result.decline and sales == []
    assert result.payment.state == PaymentState.OPEN and payment_row(services, result.payment.token).decline_count == 0
    assert decisions(services, result.payment.id) == [("risk_challenge", "store_under_attack")]


def test_a_wrong_solution_is_challenged_again(services, sales):
    under_attack(services)
    assert attempt(services, solution_ok=False).challenge and sales == []


def test_a_solved_challenge_is_allowed(services, sales):
    under_attack(services)
    result = attempt(services, solution_ok=True)
    assert result.payment.state == PaymentState.APPROVED and sales == [LIVE]
    assert decisions(services, result.payment.id) == [("risk_allow", "store_under_attack, challenge_solved")]


def test_a_refusal_reaches_no_processor_and_counts_as_a_decline(services, sales):
    seen(services, RiskOutcome.DECLINED, 2)
    result = attempt(services)
    assert sales == [] and result.decline == "Your card was declined."
    assert payment_row(services, result.payment.token).decline_count == 1
    assert decisions(services, result.payment.id) == [("risk_refuse", "card_declines")]


def test_a_refusal_looks_exactly_like_a_decline_to_the_shopper(client, services, sales):
    declined_token, csrf = open_session(client, orderid=910001)
    declined = client.post("/pay/submit", data=card_form(declined_token, csrf, DECLINED),
                           environ_base={"REMOTE_ADDR": "198.51.100.1"})
    seen(services, RiskOutcome.DECLINED, 1, number=DECLINED, address="192.0.2.50")
    refused_token, csrf = open_session(client, orderid=910002)
    refused = client.post("/pay/submit", data=card_form(refused_token, csrf, DECLINED),
                          environ_base={"REMOTE_ADDR": "203.0.113.2"})
    assert sales == [DECLINED]
    assert decisions(services, payment_row(services, refused_token).id) == [("risk_refuse", "card_declines")]
    assert refused.status_code == declined.status_code == 402
    strip = (declined_token, refused_token, csrf_of(declined), csrf_of(refused))
    assert scrubbed(refused.get_data(as_text=True), strip) == scrubbed(declined.get_data(as_text=True), strip)


def csrf_of(response: Any) -> str:
    return csrf_from(response.get_data(as_text=True))


def scrubbed(html: str, tokens: tuple[str, ...]) -> str:
    for token in tokens:
        html = html.replace(token, "")
    return html


def test_a_refusal_takes_as_long_as_the_processors_typical_answer(services, sales, monkeypatch):
    monkeypatch.setattr(risk, "_SALE_SECONDS", type(risk._SALE_SECONDS)([0.3, 0.3, 0.3], maxlen=64))
    seen(services, RiskOutcome.DECLINED, 2)
    started = time.monotonic()
    attempt(services)
    assert sales == [] and time.monotonic() - started >= 0.3


# Signals


def test_card_declines_refuse_a_card_declined_twice_even_on_a_new_payment_and_address(services, sales):
    seen(services, RiskOutcome.DECLINED, 1)
    assert attempt(services, address="203.0.113.50").payment.state == PaymentState.APPROVED
    seen(services, RiskOutcome.DECLINED, 1)
    assert attempt(services, address="203.0.113.51").decline and sales == [LIVE]


def test_card_stores_refuse_a_card_tried_at_many_stores(services, sales):
    seen(services, RiskOutcome.APPROVED, 1, store_key=OTHER_STORE, address="192.0.2.77")
    seen(services, RiskOutcome.APPROVED, 1, store_key="third-store.example", address="192.0.2.78")
    result = attempt(services)
    assert sales == [] and decisions(services, result.payment.id) == [("risk_refuse", "card_stores")]


def test_address_declines_challenge_from_the_first_and_refuse_from_the_third(services, sales):
    seen(services, RiskOutcome.DECLINED, 1, number="4000000000009995", address="203.0.113.9")
    first = attempt(services, "5555555555554444")
    assert first.challenge and ("address_declines" in decisions(services, first.payment.id)[0][1])
    seen(services, RiskOutcome.DECLINED, 2, number="4000000000009995", address="203.0.113.9")
    third = attempt(services, "5555555555554444", solution_ok=True)
    assert third.decline and sales == []
    assert "address_declines" in decisions(services, third.payment.id)[0][1]


def test_network_declines_count_the_whole_slash_24(services, sales):
    seen(services, RiskOutcome.DECLINED, 6, number="4000000000009995", address="203.0.113.200", reason="insufficient_funds")
    result = attempt(services, address="203.0.113.9", solution_ok=True)
    assert sales == [] and decisions(services, result.payment.id) == [
        ("risk_refuse", "network_declines, challenge_solved")]
    assert attempt(services, address="203.0.114.9").payment.state == PaymentState.APPROVED


def test_testing_decline_reasons_on_the_network_bring_a_challenge(services, sales):
    seen(services, RiskOutcome.DECLINED, 1, number="4000000000000127", address="203.0.113.200", reason="incorrect_cvc")
    result = attempt(services)
    assert result.challenge and "network_testing_declines" in decisions(services, result.payment.id)[0][1]


def test_payment_cards_refuse_a_third_card_on_one_payment(services, sales):
    payment = new_payment(services)
    for number in ("4000000000009995", "4000000000000069"):
        seen(services, RiskOutcome.DECLINED, 1, number=number, address="192.0.2.10", payment=payment)
    assert "payment_cards" in risk.decide(
        risk.signals(services, payment, risk.card_fingerprint(services.settings.secret_key, LIVE), "198.18.0.1",
                     risk.DEFAULTS),
        risk.DEFAULTS, True)[1]


def test_order_cards_refuse_a_fourth_card_on_one_order_over_its_payments(services, sales):
    orderid = next(ORDERS)
    for number in ("4000000000009995", "4000000000000069", "4000000000000127"):
        seen(services, RiskOutcome.APPROVED, 1, number=number, address="192.0.2.10",
             payment=new_payment(services, orderid=orderid))
    result = attempt(services, payment=new_payment(services, orderid=orderid), address="198.18.0.1")
    assert sales == [] and decisions(services, result.payment.id) == [("risk_refuse", "order_cards")]


def test_a_store_past_its_decline_ratio_is_under_attack_and_refuses_a_card_declined_once(services, sales):
    under_attack(services)
    seen(services, RiskOutcome.DECLINED, 1, address="192.0.2.99")
    result = attempt(services, solution_ok=True)
    assert sales == [] and result.decline
    assert decisions(services, result.payment.id) == [("risk_refuse", "card_declines, challenge_solved")]


def test_a_store_past_its_attempt_rate_is_under_attack(services, sales):
    risk.set_thresholds(services, new_payment(services).store_key, "tester", attack_attempts_per_minute=5)
    seen(services, RiskOutcome.APPROVED, 5, number="5555555555554444", address="192.0.2.5")
    assert attempt(services).challenge and sales == []


def test_the_attempt_rate_is_counted_up_to_its_threshold_for_a_decision_and_whole_for_an_operator(services, sales):
    store_key = new_payment(services).store_key
    risk.set_thresholds(services, store_key, "tester", attack_attempts_per_minute=5)
    seen(services, RiskOutcome.APPROVED, 8, number="5555555555554444", address="192.0.2.5", store_key=store_key)
    limits = risk.thresholds(services, store_key)
    assert risk.signals(services, new_payment(services, store_key=store_key), "", "", limits).store_attempts_last_minute == 5
    assert [status.attempts_last_minute for status in risk.store_status(services) if status.store_key == store_key] == [8]


def test_an_attack_subsides_once_its_attempts_leave_the_window(services, sales):
    seen(services, RiskOutcome.DECLINED, 20, number="4000000000000002", address="192.0.2.1", ago=timedelta(minutes=11))
    result = attempt(services)
    assert result.payment.state == PaymentState.APPROVED and sales == [LIVE]
    assert not any(status.under_attack for status in risk.store_status(services))


def test_no_clean_shopper_is_challenged_before_an_attack(services):
    seen(services, RiskOutcome.APPROVED, 10, number="5555555555554444", address="192.0.2.1")
    assert not risk.needs_challenge(services, new_payment(services), "203.0.113.9")
    under_attack(services)
    assert risk.needs_challenge(services, new_payment(services), "203.0.113.9")


# What is kept, and the store's own thresholds


def test_the_card_number_is_kept_only_as_a_keyed_fingerprint(services, settings):
    attempt(services)
    with services.db.transaction() as session:
        row = session.scalars(select(RiskSignal)).one()
    assert LIVE not in repr(vars(row)) and LIVE[-4:] not in row.card_fingerprint
    assert row.card_fingerprint == risk.card_fingerprint(settings.secret_key, LIVE)
    assert row.card_fingerprint != risk.card_fingerprint(settings.secret_key + "x", LIVE)


def test_a_stores_thresholds_are_its_own_and_checked(services):
    store_key = new_payment(services).store_key
    risk.set_thresholds(services, store_key, "op", card_declines=5)
    assert risk.thresholds(services, store_key).card_declines == 5
    assert risk.thresholds(services, OTHER_STORE) == risk.DEFAULTS
    with pytest.raises(ValueError):
        risk.set_thresholds(services, store_key, "op", attack_decline_percent=101)
    assert risk.thresholds(services, store_key).attack_decline_percent == risk.DEFAULTS.attack_decline_percent


def test_decisions_are_counted_by_kind_and_reason(services):
    def count() -> float:
        return REGISTRY.get_sample_value("gateway_risk_decisions_total",
                                         {"kind": "challenge", "reason": "store_under_attack"}) or 0.0

    before = count()
    under_attack(services)
    attempt(services)
    assert count() == before + 1
    assert REGISTRY.get_sample_value("gateway_stores_under_attack") >= 1


def test_a_shopper_retrying_after_a_decline_on_their_own_payment_is_not_challenged(services, sales):
    payment = new_payment(services)
    assert attempt(services, "4000000000009995", payment=payment).decline
    retried = attempt(services, payment=payment)
    assert retried.payment.state == PaymentState.APPROVED and sales == ["4000000000009995", LIVE]


def test_payment_addresses_challenge_a_payment_tried_from_a_second_address_and_refuse_under_attack(services, sales):
    payment = new_payment(services)
    seen(services, RiskOutcome.APPROVED, 1, number="5555555555554444", address="192.0.2.40", payment=payment)
    first = attempt(services, payment=payment, address="203.0.113.40")
    assert first.challenge and decisions(services, payment.id) == [("risk_challenge", "payment_addresses")]
    under_attack(services)
    refused = attempt(services, payment=payment, address="203.0.113.40", solution_ok=True)
    assert refused.decline and sales == []
    assert decisions(services, payment.id)[-1] == ("risk_refuse", "payment_addresses, challenge_solved")


def test_the_decline_ratio_follows_the_last_attempts_not_a_busy_hour_before(services):
    seen(services, RiskOutcome.APPROVED, 50, number="5555555555554444", address="192.0.2.1")
    payment = new_payment(services)
    assert not risk.needs_challenge(services, payment, "203.0.113.9")
    seen(services, RiskOutcome.DECLINED, 10, number="4000000000000002", address="192.0.2.2")
    assert risk.needs_challenge(services, payment, "203.0.113.9")


def test_thresholds_saved_by_another_worker_apply_here_within_their_memory(services, monkeypatch):
    """Remembered per worker (one query fewer per card attempt): the saving worker applies a change at
    once, every other within THRESHOLDS_SECONDS."""
    store_key = new_payment(services).store_key
    assert risk.thresholds(services, store_key).card_declines == risk.DEFAULTS.card_declines
    other_worker = type(services).build(services.settings)
    try:
        risk.set_thresholds(other_worker, store_key, "op", card_declines=7)
        assert risk.thresholds(other_worker, store_key).card_declines == 7
        assert risk.thresholds(services, store_key).card_declines == risk.DEFAULTS.card_declines
        later = time.monotonic() + risk.THRESHOLDS_SECONDS + 1
        monkeypatch.setattr("gateway.memo.time.monotonic", lambda: later)
        assert risk.thresholds(services, store_key).card_declines == 7
    finally:
        other_worker.db.dispose()
