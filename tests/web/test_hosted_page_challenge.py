"""The security check on the card form (gateway/challenge.py) as the server renders it: shown only
when asked for, bound to the next attempt, translated, explained without JavaScript, and the
page's CSP as strict as ever."""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from gateway import challenge

from ..flow_helpers import open_session, payment_row
from ..test_challenge import solution_for


@pytest.fixture
def challenged(app):  # type: ignore[no-untyped-def]
    """The seam a test forces the challenge through (the risk step's decision joins it at merge)."""
    app.config["CHALLENGE_EVERY_PAYMENT"] = True
    return app


def page(client: Any, token: str, lang: str = "en") -> str:
    return client.get("/pay", query_string={"paymenttoken": token, "lang": lang}).get_data(as_text=True)


def embedded(text: str) -> dict[str, Any]:
    found = re.search(r'data-challenge="([^"]+)"', text)
    assert found, "the page carries no challenge"
    return json.loads(html.unescape(found.group(1)))  # type: ignore[no-any-return]


def test_a_page_without_risk_shows_no_security_check(client):
    token, _ = open_session(client)
    text = page(client, token)
    assert 'id="challenge"' not in text and "challenge.js" not in text
    assert re.search(r'<button type="submit" id="pay-button"[^>]*>', text).group(0).count("disabled") == 0  # type: ignore[union-attr]


def test_a_challenged_page_carries_a_challenge_for_the_next_attempt(challenged, client, services):
    token, _ = open_session(client)
    text = page(client, token)
    issued = embedded(text)
    assert issued["algorithm"] == "SHA-256" and issued["maxnumber"] == challenge.DIFFICULTY
    attempt, key = payment_row(services, token).attempt, services.settings.secret_key
    solution = solution_for(issued)
    assert challenge.verify(key, challenge.binding(token, attempt + 1), solution)
    assert not challenge.verify(key, challenge.binding(token, attempt), solution)
    assert 'name="altcha"' in text and "challenge.js" in text and "challenge-worker.js" in text
    assert re.search(r'<button type="submit" id="pay-button"[^>]*\bdisabled>', text)
    assert 'id="challenge-status" role="status"' in text


def test_a_challenged_page_says_without_javascript_what_to_do(challenged, client):
    token, _ = open_session(client)
    noscript = re.search(r"<noscript>(.*?)</noscript>", page(client, token), re.S).group(1)  # type: ignore[union-attr]
    assert "needs JavaScript for a short security check" in noscript and "reload" in noscript


@pytest.mark.parametrize("lang, words", [("de", "Sicherheitsprüfung"), ("es", "comprobación de seguridad"),
                                         ("fr", "vérification de sécurité"), ("ja", "セキュリティチェック"),
                                         ("pt", "verificação de segurança")])
def test_the_security_check_speaks_the_pages_language(challenged, client, lang, words):
    token, _ = open_session(client)
    text = html.unescape(page(client, token, lang))
    section = text[text.index('id="challenge"'):text.index("</noscript>")]
    assert section.count(words) >= 3, section
    assert "security check" not in section


def test_the_security_check_keeps_the_content_security_policy_strict(challenged, client):
    token, _ = open_session(client)
    policy = client.get("/pay", query_string={"paymenttoken": token}).headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy and "blob:" not in policy
    assert "worker-src" not in policy or "worker-src 'self';" in policy


def test_a_store_under_attack_shows_the_check_and_charges_only_once_it_is_solved(client, services, store):
    """The risk step and the page together: the first card is answered with the check and not charged; with
    the check solved, it is."""
    from ..flow_helpers import approve_all, pay
    from ..payments.test_risk import under_attack_at

    approve_all(store)
    token, csrf = open_session(client)
    under_attack_at(services, payment_row(services, token).store_key)
    unsolved = pay(client, token, csrf)
    assert unsolved.status_code == 200
    issued = embedded(unsolved.get_data(as_text=True))
    assert payment_row(services, token).state == "open" and payment_row(services, token).attempt == 0
    assert pay(client, token, csrf, altcha="not-a-solution").status_code == 200
    assert pay(client, token, csrf, altcha=solution_for(issued)).status_code == 303
    assert payment_row(services, token).state == "completed"
