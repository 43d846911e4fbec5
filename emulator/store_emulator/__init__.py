"""A local 3dcart store emulator: plays the store platform's part of the protocol against the gateway.

A development and demonstration tool. It keeps its orders in memory, so it runs as ONE process
(`gunicorn -w 1 --threads 4 'store_emulator.wsgi:app'`). It is its own distribution
(threedcart-store-emulator, `pip install -e ./emulator`) so the gateway's production wheel never ships it.
"""
from __future__ import annotations

import secrets

from flask import Flask

from gateway.money import format_money

from . import merchant, shop
from .store import Store


def create_emulator_app(gateway_url: str, private_key: str, public_url: str | None = None,
                        credentials: tuple[str, str] = ("user1", "password1"), answer_delay: float = 0.0,
                        first_orderid: int = 1001) -> Flask:
    """`gateway_url` is the gateway's base URL (its /checkout and /post-order); `public_url` the emulator's own;
    `answer_delay` the seconds its notification URL takes to answer (a slow store); `first_orderid` where order
    numbers start (a gateway remembers paid orders, so a second run against the same database starts elsewhere)."""
    # Its own templates/ (package data), not the gateway's: the two distributions install separately.
    app = Flask(__name__, template_folder="templates")
    app.config.update(
        EMULATOR_GATEWAY_URL=gateway_url.rstrip("/"),
        EMULATOR_PRIVATE_KEY=private_key,
        EMULATOR_PUBLIC_URL=(public_url or "").rstrip("/"),
        SECRET_KEY=secrets.token_hex(32),  # flash messages only; the private key signs protocol objects, nothing else
    )
    app.extensions["emulator_store"] = Store(credentials, first_orderid=first_orderid, answer_delay=answer_delay)
    app.add_template_filter(format_money, "money")
    app.register_blueprint(shop.bp)
    app.register_blueprint(merchant.bp)
    return app
