"""The proof of work a shopper's browser solves before a risky card attempt (card-testing defence).

ALTCHA's format (https://altcha.org), first-party code: the page gets ``salt`` and
``challenge = sha256(salt + str(number))`` for a secret random ``number`` below ``maxnumber``; the
browser tries numbers until it finds it, which costs a real shopper about a second once and a card
tester that second on every attempt. ``signature`` lets the server check the challenge is its own
without keeping state: it is an HMAC of ``challenge`` under a key derived from the gateway's secret
key and ``bound_to`` (the payment token and attempt number), so a solution pays for that attempt
only. ``salt`` carries the expiry (``?expires=<unix seconds>``), as ALTCHA's own library does.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

ALGORITHM = "SHA-256"
# The number is uniform below this, so a browser tries half of it on average. Headless Chromium's
# WebCrypto tries about 80,000 a second on the reference machine under load (two cores shared):
# 0.67 s on average, 1.4 s at worst (tests/web/test_hosted_page_challenge_browser.py measures it).
DIFFICULTY = 100_000
TTL_SECONDS = 600
# The posted field is base64 of a JSON object a few hundred bytes long; anything longer is not ours.
MAX_SOLUTION_CHARS = 1024
MAX_NUMBER = 10**9


def binding(payment_token: str, attempt: int) -> str:
    """What a challenge is bound to: one attempt of one payment (the page issues it for the next)."""
    return f"{payment_token}:{attempt}"


def issue(secret: str, bound_to: str, difficulty: int = DIFFICULTY, ttl_seconds: int = TTL_SECONDS) -> dict[str, Any]:
    """A fresh challenge for the page to embed: valid for ``ttl_seconds``, for ``bound_to`` only."""
    expires = int(time.time()) + ttl_seconds
    salt = f"{secrets.token_hex(12)}?expires={expires}"
    number = secrets.randbelow(difficulty + 1)
    challenge = _digest(salt, number)
    return {"algorithm": ALGORITHM, "challenge": challenge, "maxnumber": difficulty, "salt": salt,
            "signature": _signature(secret, bound_to, challenge)}


def verify(secret: str, bound_to: str, solution: str) -> bool:
    """Whether ``solution`` (the form's ``altcha`` field) solves an unexpired challenge issued for
    ``bound_to``. Anything else, however malformed, is False: this never raises on input."""
    payload = _parse(solution)
    if payload is None:
        return False
    salt, challenge, number = payload["salt"], payload["challenge"], payload["number"]
    return (payload["algorithm"] == ALGORITHM
            and _unexpired(salt)
            and hmac.compare_digest(_digest(salt, number), challenge)
            and hmac.compare_digest(_signature(secret, bound_to, challenge), payload["signature"]))


def _parse(solution: object) -> dict[str, Any] | None:
    """The decoded payload when it has ALTCHA's fields with the right types, else None."""
    if not isinstance(solution, str) or len(solution) > MAX_SOLUTION_CHARS:
        return None
    try:
        payload = json.loads(base64.b64decode(solution.encode("ascii"), validate=True))
    except (UnicodeError, binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    texts = ("algorithm", "challenge", "salt", "signature")
    if not all(isinstance(payload.get(name), str) and payload[name].isascii() for name in texts):
        return None
    number = payload.get("number")
    if type(number) is not int or not 0 <= number <= MAX_NUMBER:
        return None
    return payload


def _unexpired(salt: str) -> bool:
    expires = parse_qs(salt.partition("?")[2]).get("expires", [""])[0]
    return expires.isdigit() and len(expires) <= 12 and int(expires) > time.time()


def _digest(salt: str, number: int) -> str:
    return hashlib.sha256(f"{salt}{number}".encode()).hexdigest()


def _signature(secret: str, bound_to: str, challenge: str) -> str:
    """HMAC-SHA256 of the challenge under a key for this binding, derived from the gateway's secret
    (label "challenge"), so no new secret is needed and no other use of the secret key collides."""
    challenge_key = hmac.new(secret.encode(), b"challenge", hashlib.sha256).digest()
    binding_key = hmac.new(challenge_key, bound_to.encode("utf-8", "replace"), hashlib.sha256).digest()
    return hmac.new(binding_key, challenge.encode(), hashlib.sha256).hexdigest()
