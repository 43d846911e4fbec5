"""The proof of work (gateway/challenge.py): a solution pays for one attempt, unexpired, and
nothing a client posts makes verify raise."""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import challenge

SECRET = "a-test-secret-key-of-enough-length-0123456789"
BOUND = "paytoken123:1"
EASY = 2_000


def solve(issued: dict[str, Any]) -> int:
    """What the page's worker does: try numbers until the digest matches."""
    for number in range(issued["maxnumber"] + 1):
        if hashlib.sha256(f"{issued['salt']}{number}".encode()).hexdigest() == issued["challenge"]:
            return number
    raise AssertionError("the challenge has no solution below its maxnumber")


def encode(payload: object) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def solution_for(issued: dict[str, Any], **changes: Any) -> str:
    payload = {"algorithm": issued["algorithm"], "challenge": issued["challenge"], "number": solve(issued),
               "salt": issued["salt"], "signature": issued["signature"], "took": 420}
    return encode({**payload, **changes})


def test_a_solved_challenge_verifies():
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    assert issued["algorithm"] == "SHA-256" and issued["maxnumber"] == EASY
    assert challenge.verify(SECRET, BOUND, solution_for(issued))


def test_an_expired_challenge_is_refused(monkeypatch):
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    solution = solution_for(issued)
    now = challenge.time.time()
    monkeypatch.setattr(challenge.time, "time", lambda: now + 61)
    assert not challenge.verify(SECRET, BOUND, solution)


def test_a_solution_for_another_payment_is_refused():
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    assert not challenge.verify(SECRET, "otherpaytoken:1", solution_for(issued))


def test_a_solution_replayed_for_the_next_attempt_is_refused():
    issued = challenge.issue(SECRET, "paytoken123:1", EASY, 60)
    assert not challenge.verify(SECRET, "paytoken123:2", solution_for(issued))


def test_a_challenge_issued_under_another_secret_is_refused():
    issued = challenge.issue("another-secret-key-of-enough-length-98765", BOUND, EASY, 60)
    assert not challenge.verify(SECRET, BOUND, solution_for(issued))


def test_a_wrong_number_is_refused():
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    wrong = (solve(issued) + 1) % (EASY + 1)
    assert not challenge.verify(SECRET, BOUND, solution_for(issued, number=wrong))


def test_a_forged_challenge_with_its_own_salt_is_refused():
    """A client that picks its own easy salt and number cannot sign it."""
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    salt = "mine?expires=99999999999"
    forged = {**issued, "salt": salt, "challenge": hashlib.sha256(f"{salt}0".encode()).hexdigest()}
    assert not challenge.verify(SECRET, BOUND, solution_for(forged))


def test_a_pushed_back_expiry_is_refused():
    issued = challenge.issue(SECRET, BOUND, EASY, 60)
    later = issued["salt"].split("?")[0] + "?expires=99999999999"
    assert not challenge.verify(SECRET, BOUND, solution_for(issued, salt=later))


def test_each_challenge_is_new():
    first, second = challenge.issue(SECRET, BOUND, EASY, 60), challenge.issue(SECRET, BOUND, EASY, 60)
    assert first["salt"] != second["salt"] and first["signature"] != second["signature"]


MALFORMED = [
    "", " ", "not base64!", "YWJj", "=" * 10, "é", "\x00", "A" * 5000,
    encode(None), encode([]), encode("text"), encode(12), encode({}),
    encode({"algorithm": "SHA-256"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": "7", "salt": "s?expires=99999999999", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": 7.0, "salt": "s?expires=99999999999", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": True, "salt": "s?expires=99999999999", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": -1, "salt": "s?expires=99999999999", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": 10**400, "salt": "s", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "é", "number": 1, "salt": "s?expires=99999999999", "signature": "ü"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": 1, "salt": "//[bad?expires=1e999", "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": "x", "number": 1, "salt": "s?expires=" + "9" * 500, "signature": "y"}),
    encode({"algorithm": "SHA-256", "challenge": None, "number": 1, "salt": {}, "signature": []}),
    base64.b64encode(b"[" * 600 + b"]" * 600).decode()[:1024],
    base64.b64encode(b"\xff\xfe\x00garbage").decode(),
    base64.b64encode(b'{"number": 1e99999}').decode(),
]


@pytest.mark.parametrize("solution", MALFORMED)
def test_malformed_solutions_are_refused_without_raising(solution):
    assert challenge.verify(SECRET, BOUND, solution) is False


@pytest.mark.parametrize("solution", [None, 12, b"bytes", ["list"]])
def test_a_solution_that_is_not_text_is_refused_without_raising(solution):
    assert challenge.verify(SECRET, BOUND, solution) is False  # type: ignore[arg-type]


@given(st.text(max_size=1200) | st.binary(max_size=800).map(lambda raw: base64.b64encode(raw).decode()))
def test_any_posted_text_is_refused_without_raising(solution):
    assert challenge.verify(SECRET, BOUND, solution) is False
