"""Each store's identity on shopper pages: its name, logo and support contact.

The protocol names no store, so the gateway tells stores apart by the host of their
notification URL (the same key that keeps two stores' order 123 apart). A store nobody has
described yet is shown by that host name.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from sqlalchemy import select

from ..db import Database
from ..memo import Recent, memory_of
from ..models import StoreProfile, utcnow
from ..services import Services


class ProfileError(ValueError):
    """A store profile value that cannot be shown safely."""


@dataclass(frozen=True)
class StoreIdentity:
    store_key: str
    display_name: str
    logo_url: str = ""
    support_email: str = ""
    support_phone: str = ""
    support_url: str = ""
    configured: bool = False


EDITABLE = ("display_name", "logo_url", "support_email", "support_phone", "support_url")
LIMITS = {"display_name": 120, "logo_url": 2000, "support_email": 254, "support_phone": 40, "support_url": 2000}
# Every page view shows its store's identity. A saved change shows at once in the worker that saved it
# and within CACHE_SECONDS in the others; CACHE_SIZE stores are kept, the least recently shown dropped.
CACHE_SIZE = 1024
CACHE_SECONDS = 30.0

_RECENT: WeakKeyDictionary[Database, Recent[str, StoreIdentity]] = WeakKeyDictionary()


def _recent(services: Services) -> Recent[str, StoreIdentity]:
    """One memory per database (an app, in tests several in turn), never one store's name for another's."""
    return memory_of(_RECENT, services.db, CACHE_SIZE, CACHE_SECONDS)


def store_key(notification_url: str) -> str:
    """Orders are numbered per store; the store's host keeps two stores' order 123 apart."""
    return (urlsplit(notification_url).hostname or "").lower()


def identity(services: Services, key: str) -> StoreIdentity:
    """The saved identity of a store, or a default that names it by its host."""
    return _recent(services).get_or_make(key, lambda: _read_identity(services, key))


def _read_identity(services: Services, key: str) -> StoreIdentity:
    with services.db.read() as session:
        profile = session.get(StoreProfile, key)
        if profile is None:
            return StoreIdentity(store_key=key, display_name=key or "Online store")
        return _identity(profile)


def save_identity(services: Services, key: str, **values: str) -> StoreIdentity:
    """Create or update a store's identity; only https links are accepted (the page loads them)."""
    if not key:
        raise ProfileError("a store is named by its notification host; none given")
    cleaned = {name: _clean(name, values[name]) for name in EDITABLE if name in values}
    with services.db.transaction() as session:
        profile = session.get(StoreProfile, key, with_for_update=True)
        if profile is None:
            profile = StoreProfile(store_key=key, display_name=key, logo_url="", support_email="",
                                   support_phone="", support_url="")
            session.add(profile)
        for name, value in cleaned.items():
            setattr(profile, name, value)
        if not profile.display_name:
            profile.display_name = key
        profile.updated_at = utcnow()
        session.flush()
        saved = _identity(profile)
    _recent(services).forget(key)  # once committed: a page read in between must not keep the old identity
    return saved


def all_identities(services: Services) -> list[StoreIdentity]:
    with services.db.transaction() as session:
        return [_identity(p) for p in session.scalars(select(StoreProfile).order_by(StoreProfile.store_key))]


def _clean(name: str, value: str) -> str:
    value = (value or "").strip()
    if len(value) > LIMITS[name]:
        raise ProfileError(f"{name} is longer than {LIMITS[name]} characters")
    if name in ("logo_url", "support_url") and value and urlsplit(value).scheme != "https":
        raise ProfileError(f"{name} must be an https:// address")
    if name == "support_email" and value and "@" not in value:
        raise ProfileError("support_email is not an e-mail address")
    return value


def _identity(profile: StoreProfile) -> StoreIdentity:
    values = {f.name: getattr(profile, f.name) for f in fields(StoreIdentity) if f.name != "configured"}
    return StoreIdentity(**values, configured=True)
