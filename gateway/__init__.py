"""A 3dcart (Shift4Shop) redirect payment gateway application."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from . import observability
from .config import Settings, load_settings
from .services import Services

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """The app factory; ``settings`` default to the environment (and refuse unsafe production)."""
    settings = settings or load_settings()
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["gateway"] = Services.build(settings)
    observability.init_app(app, settings)

    from .web import api_docs, checkout, errors, health, payment_page, post_order

    app.register_blueprint(checkout.bp)
    app.register_blueprint(payment_page.bp)
    app.register_blueprint(post_order.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_docs.bp)
    errors.register(app)
    from .console import views as console

    console.register(app)
    return app
