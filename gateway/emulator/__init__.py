"""A local 3dcart store emulator: plays the store platform's part of the protocol against the gateway.

A development and demonstration tool. It keeps its orders in memory, so it runs as one process
(`gunicorn -w 1 --threads 4 'gateway.emulator.wsgi:app'`).
"""
from __future__ import annotations

from flask import Flask

from .. import TEMPLATES
from .store import Store


def create_emulator_app(gateway_url: str, private_key: str, public_url: str | None = None,
                        credentials: tuple[str, str] = ("user1", "password1")) -> Flask:
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(
        EMULATOR_GATEWAY_URL=gateway_url.rstrip("/"),
        EMULATOR_PRIVATE_KEY=private_key,
        EMULATOR_PUBLIC_URL=(public_url or "").rstrip("/"),
        EMULATOR_CREDENTIALS=credentials,
        SECRET_KEY=private_key,
    )
    app.extensions["store"] = Store()
    from .views import bp

    app.register_blueprint(bp)
    return app
