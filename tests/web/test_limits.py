"""The shopper routes' limits per client address (gateway/web/limits.py): what a refused shopper sees,
and what uses up an allowance. Card attempts and token guessing are also in test_security.py (case 6)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

import pytest
from flask import Flask

from gateway import create_app

from ..flow_helpers import open_session

GUESS = "guess0000000000000000000"


@pytest.fixture
def limited_app(settings, request) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    pages = getattr(request, "param", "3 per minute; 5 per hour")
    app = create_app(replace(settings, limit_page_per_address=pages, limit_unknown_token_per_address="2 per minute"))
    yield app
    app.extensions["gateway"].db.dispose()


def view(client: Any, token: str, address: str = "198.51.100.7") -> Any:
    return client.get("/pay", query_string={"paymenttoken": token}, environ_base={"REMOTE_ADDR": address})


def test_page_views_are_limited_per_address(limited_app):
    client = limited_app.test_client()
    token, _ = open_session(client)
    codes = [view(client, token).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = view(client, token)
    assert "Too many requests from your network" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60  # the minute's window, not the hour's
    assert view(client, token, address="198.51.100.8").status_code == 200  # another shopper is not affected


@pytest.mark.parametrize("limited_app", ["100 per minute"], indirect=True)
def test_viewing_a_real_page_does_not_use_up_the_guessing_allowance(limited_app):
    client = limited_app.test_client()
    token, _ = open_session(client)
    assert [view(client, token).status_code for _ in range(5)] == [200] * 5
    assert [view(client, GUESS).status_code for _ in range(3)] == [404, 404, 429]
    assert view(client, token).status_code == 429  # spent, the allowance refuses every request of the address


def test_a_guess_refused_says_when_to_come_back(limited_app):
    client = limited_app.test_client()
    for _ in range(2):
        view(client, GUESS)
    refused = view(client, GUESS)
    assert refused.status_code == 429
    assert "unknown payment links" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
