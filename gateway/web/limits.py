"""Rate limits on the shopper-facing routes: card testing and token guessing cost time.

Counters live in a shared store (``GATEWAY_RATELIMIT_STORAGE``: Redis in production, so every
worker on every host counts together; memory by default for one development process). Client
addresses come from the socket, or from X-Forwarded-For only as far as ``GATEWAY_TRUSTED_PROXIES``
says; IPv6 clients are counted per /64, the block one subscriber usually holds.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from typing import Any, Callable, NoReturn

from flask import Flask, abort, current_app, make_response, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import HTTPException, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from ..config import Settings
from .limit_storage import storage_uri

log = logging.getLogger(__name__)


def N_(message: str) -> str:  # noqa: N802 - the catalogue extractor's marker for deferred translation
    return message


# Marked for the catalogues here, translated into the shopper's language when a limit refuses.
CARD_ATTEMPTS = N_("Too many card attempts from your network. Please wait a few minutes before trying again.")
PAGE_LOOKUPS = N_("Too many requests from your network. Please wait a minute and try again.")
UNKNOWN_TOKENS = N_("Too many unknown payment links from your network. Please wait a minute and try again.")
STORE_BUSY = N_("This store is receiving an unusual number of card attempts. Please wait a few minutes and try again.")


def client_address() -> str:
    address = request.remote_addr or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


KEY_PREFIX = "gateway"
# The console's sign-in limits use Flask-Limiter's decorators; every limit counts in its storage.
limiter = Limiter(key_func=client_address, strategy="moving-window", headers_enabled=True, key_prefix=KEY_PREFIX)


class AddressLimit:
    """A shopper route's limit per client address, in the limiter's storage (memory, or Redis shared by
    every worker). Flask-Limiter's own decorator resolved, parsed and filtered its limits anew at every
    request (a fifth of a page view); this one parses a setting once and makes one storage call a limit.

    ``only_status``: only answers with this status use up the allowance (404 for token guessing); the
    limit still refuses every request once the allowance is spent."""

    def __init__(self, setting: str, scope: str, message: str, only_status: int | None = None) -> None:
        self.setting, self.scope, self.message, self.only_status = setting, scope, message, only_status

    def __call__(self, view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            settings: Settings = current_app.extensions["gateway"].settings
            items, key = _parsed(getattr(settings, self.setting)), client_address()
            strategy = limiter.limiter
            if self.only_status is None:
                for item in items:
                    if not strategy.hit(item, KEY_PREFIX, self.scope, key):
                        self._refuse(item, key)
                return view(*args, **kwargs)
            for item in items:
                if not strategy.test(item, KEY_PREFIX, self.scope, key):
                    self._refuse(item, key)
            try:
                response = make_response(view(*args, **kwargs))
            except HTTPException as exc:
                self._count(exc.code, items, key)
                raise
            self._count(response.status_code, items, key)
            return response

        return limited

    def _count(self, status: int | None, items: tuple[RateLimitItem, ...], key: str) -> None:
        if status == self.only_status:
            for item in items:
                limiter.limiter.hit(item, KEY_PREFIX, self.scope, key)

    def _refuse(self, item: RateLimitItem, key: str) -> NoReturn:
        reset = limiter.limiter.get_window_stats(item, KEY_PREFIX, self.scope, key).reset_time
        raise TooManyRequests(gettext(self.message), retry_after=max(1, math.ceil(reset - time.time())))


@functools.lru_cache(maxsize=32)
def _parsed(setting: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(setting))


card_attempts = AddressLimit("limit_card_per_address", "card", CARD_ATTEMPTS)
page_lookups = AddressLimit("limit_page_per_address", "page", PAGE_LOOKUPS)
unknown_tokens = AddressLimit("limit_unknown_token_per_address", "token", UNKNOWN_TOKENS, only_status=404)


# The console's sign-in form, per client address and per account name (English: the console is).
SIGN_IN_PER_ADDRESS = "30 per minute; 300 per hour"
SIGN_IN_PER_ACCOUNT = "10 per minute; 100 per hour"
SIGN_INS = "Too many sign-in attempts. Wait a minute and try again."


def _account_name() -> str:
    return request.form.get("username", "").strip().lower()[:64]


sign_ins_per_address = limiter.limit(lambda: SIGN_IN_PER_ADDRESS, methods=["POST"], error_message=SIGN_INS,
                                     scope="sign-in-address")
sign_ins_per_account = limiter.limit(lambda: SIGN_IN_PER_ACCOUNT, key_func=_account_name, methods=["POST"],
                                     error_message=SIGN_INS, scope="sign-in-account")


def limit_console_sign_in(app: Flask) -> None:
    """Sign-in POSTs cost an argon2 check each: counted per address and per account before the view
    runs. Applied by endpoint once the console's blueprint is registered (web does not import it)."""
    sign_in: Callable[..., Any] = app.view_functions["console.login"]
    app.view_functions["console.login"] = sign_ins_per_account(sign_ins_per_address(sign_in))


def check_store(store_key: str) -> None:
    """Card attempts across one store's pages, from any number of addresses (a card-testing botnet)."""
    settings: Settings = current_app.extensions["gateway"].settings
    for item in _parsed(settings.limit_card_per_store):
        if not limiter.limiter.hit(item, KEY_PREFIX, "card-store", store_key):
            abort(429, gettext(STORE_BUSY))


def init_limits(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)  # type: ignore[method-assign]
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(settings.ratelimit_storage)
    limiter.init_app(app)
    if settings.is_production and settings.ratelimit_storage.startswith("memory"):
        log.warning("rate limits are counted in memory: each worker process counts on its own; use Redis")
