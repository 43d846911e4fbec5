"""A 3dcart (Shift4Shop) redirect payment gateway application.

Importing the package is cheap: the web app's modules load inside create_app(), so a `gateway` command that
serves nothing (gateway.cli imports this package first) never pays for Flask's extensions.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings

PACKAGE = Path(__file__).resolve().parent


def _templates_folder() -> Path:
    """Inside the package once installed from a wheel; the checkout's top-level templates/ otherwise."""
    shipped = PACKAGE / "templates"
    return shipped if shipped.is_dir() else PACKAGE.parent / "templates"


TEMPLATES = _templates_folder()
MAX_BODY_BYTES = 1024 * 1024


def announce(settings: Settings) -> None:
    """Every start-up says which mode runs, loudly when it is not safe for real money."""
    log = logging.getLogger("gateway")
    log.info("gateway starting: %s", settings.describe())
    if not settings.is_production:
        log.warning("DEVELOPMENT MODE: public development keys and defaults; never take real payments like this")
        return
    if settings.processor == "sandbox":
        log.warning("SANDBOX IN %s: every valid card is approved and nobody is charged", settings.environment.upper())
    if settings.notify_allow_private:
        log.warning("GATEWAY_NOTIFY_ALLOW_PRIVATE IN %s: store notifications may be sent to loopback and private "
                    "addresses, so a signed CheckoutRequest can make the gateway call into its own network",
                    settings.environment.upper())
    if settings.metrics_public and not settings.metrics_token:
        log.warning("GATEWAY_METRICS_PUBLIC: /metrics is served to anyone, without a token")


def create_app(settings: Settings | None = None) -> Flask:
    """The app factory; ``settings`` default to the environment (and refuse unsafe production)."""
    from flask import Flask

    from . import budget
    from .config import load_settings
    from .observability import app as observability
    from .services import Services

    settings = settings or load_settings()
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["gateway"] = Services.build(settings, complete=True)
    app.before_request(lambda: budget.start(settings.request_budget_seconds))
    app.teardown_request(lambda _error: budget.clear())
    observability.init_app(app, settings)
    announce(settings)

    from .console import views as console
    from .web import api_docs, assets, checkout, errors, hardening, health, home, i18n, limits, metrics, payment_page, post_order

    limits.init_limits(app, settings)
    i18n.init_app(app)
    assets.init_app(app)

    app.register_blueprint(checkout.bp)
    app.register_blueprint(payment_page.bp)
    app.register_blueprint(post_order.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_docs.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(metrics.bp)
    errors.register(app)
    hardening.register(app, settings)
    console.register(app)
    limits.limit_console_sign_in(app)
    return app
