"""The store server's calls to the gateway: POST a signed object, trust the answer only if its signature checks out."""
from __future__ import annotations

from typing import Any, Callable

import requests

from gateway.protocol.jsonbody import BodyError, parse_object

from .store import Store

TIMEOUT_SECONDS = 20


class GatewayTrouble(Exception):
    """No usable answer from the gateway; the text says why, for the page the person is looking at."""


def call_gateway(store: Store, url: str, body: dict[str, Any], answer_name: str,
                 signed: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """POST `body` to `url`, log the exchange, and return the answer if `signed` accepts its signature."""
    try:
        answer = _post(url, body)
    except GatewayTrouble as trouble:
        store.record("store -> gateway", url, body, str(trouble), answer_name, "no answer")
        raise
    valid = signed(answer)
    store.record("store -> gateway", url, body, answer, answer_name, "valid" if valid else "INVALID")
    if not valid:
        raise GatewayTrouble(f"the gateway's {answer_name} signature does not match, so the store ignores it")
    return answer


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The answer as a JSON object whose numbers keep their wire text, as signatures need."""
    try:
        response = requests.post(url, json=body, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise GatewayTrouble(f"the gateway at {url} could not be reached ({exc.__class__.__name__})") from exc
    try:
        return parse_object(response.content)
    except BodyError as exc:
        raise GatewayTrouble(f"the gateway answered HTTP {response.status_code} without a JSON object") from exc
