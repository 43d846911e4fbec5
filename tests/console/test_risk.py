"""The console's side of the card-testing defence: the banner for stores under attack, and the
per-store threshold form (operators only, audited)."""
from __future__ import annotations

from typing import Any

import pytest

from gateway.models import RiskOutcome
from gateway.payments import risk

from ..console_helpers import make_account, signed_in
from ..payments.test_risk import attempt, new_payment, seen, under_attack


@pytest.fixture
def operator(app: Any, services: Any) -> tuple[Any, str]:
    make_account(services, "olivia", "operator")
    return signed_in(app, "olivia")


@pytest.fixture
def viewer(app: Any, services: Any) -> tuple[Any, str]:
    make_account(services, "victor", "viewer")
    return signed_in(app, "victor")


def store_key_of(services: Any) -> str:
    return str(new_payment(services).store_key)


def test_a_store_under_attack_is_named_in_a_banner_on_every_console_page(operator, services):
    console_client, _ = operator
    key = store_key_of(services)
    assert "Card-testing attack" not in console_client.get("/console/payments").get_data(as_text=True)
    under_attack(services)
    page = console_client.get("/console/payments").get_data(as_text=True)
    assert "Card-testing attack" in page and key in page


def test_an_operator_sets_a_stores_thresholds_from_the_console_and_it_is_audited(operator, services):
    console_client, csrf = operator
    key = store_key_of(services)
    form = console_client.get(f"/console/stores/{key}").get_data(as_text=True)
    assert 'name="card_declines"' in form
    answer = console_client.post(f"/console/stores/{key}/risk", data={
        "csrf": csrf, "card_declines": "4", "reason": "ticket 12"})
    assert answer.status_code == 303
    assert risk.thresholds(services, key).card_declines == 4
    audit = console_client.get("/console/audit").get_data(as_text=True)
    assert "store.risk_thresholds" in audit and "ticket 12" in audit


def test_a_bad_threshold_is_refused_with_a_message_and_nothing_changes(operator, services):
    console_client, csrf = operator
    key = store_key_of(services)
    console_client.post(f"/console/stores/{key}/risk", data={
        "csrf": csrf, "card_declines": "0", "reason": "typo"})
    page = console_client.get(f"/console/stores/{key}").get_data(as_text=True)
    assert "thresholds not saved" in page and risk.thresholds(services, key) == risk.DEFAULTS


def test_a_viewer_cannot_set_thresholds(viewer, services):
    viewer_client, csrf = viewer
    key = store_key_of(services)
    answer = viewer_client.post(f"/console/stores/{key}/risk", data={
        "csrf": csrf, "card_declines": "9", "reason": "x"})
    assert answer.status_code == 403 and risk.thresholds(services, key) == risk.DEFAULTS


def test_risk_status_and_thresholds_from_the_cli(cli, services):
    key = store_key_of(services)
    seen(services, RiskOutcome.DECLINED, 1)
    assert f"{key}\tnormal" in cli("risk", "status")
    under_attack(services)
    assert f"{key}\tUNDER ATTACK" in cli("risk", "status")
    assert "card-declines\t5" in cli("risk", "thresholds", key, "--card-declines", "5", "--note", "ticket 13")
    assert risk.thresholds(services, key).card_declines == 5


def test_each_risk_decision_and_its_reasons_are_on_the_payments_timeline(operator, services):
    console_client, _ = operator
    under_attack(services)
    challenged = attempt(services)
    attempt(services, solution_ok=True, payment=challenged.payment)
    page = console_client.get(f"/console/payments/{challenged.payment.id}").get_data(as_text=True)
    assert "Risk step: challenge asked" in page and "Risk step: allowed" in page
    assert "store_under_attack, challenge_solved" in page
