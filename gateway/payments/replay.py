"""Each randomkey the platform signs with is accepted once, on one endpoint, for one body.

The md5 signature covers a handful of fields concatenated without separators and no time, so a
signed request could be replayed forever, sent with a different (unsigned) notification host, or
reshaped across a field boundary. The randomkey is inside every signature: remembering each one
closes all three, while an exact retry of the same body still gets its first answer back.
"""
from __future__ import annotations

import hmac

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from ..errorcodes import ErrorCode
from ..models import SeenRequest, utcnow
from .errors import Refused

CHECKOUT, POST_ORDER = "checkout", "post-order"


def claim(session: Session | Connection, endpoint: str, randomkey: str, fingerprint: str) -> None:
    """Record a randomkey without reading first: nearly every request carries a fresh one.

    The insert goes out at once, in the caller's transaction; a key used before makes it raise
    IntegrityError, and the caller then asks :func:`first_use` (in a new transaction) whether this
    is an exact retry or a replay.
    """
    session.execute(_RECORD, {"randomkey": randomkey, "endpoint": endpoint, "digest": fingerprint, "created_at": utcnow()})


# A Core insert, sent at once: the ORM's unit of work cost a quarter of a checkout's CPU.
_RECORD = insert(SeenRequest.__table__)  # type: ignore[arg-type]


def first_use(session: Session, endpoint: str, randomkey: str, fingerprint: str) -> bool:
    """True the first time a randomkey is seen, False for an exact retry (the same ``fingerprint``, the
    edge's keyed digest of the whole request); any other reuse is refused.

    Runs inside the caller's transaction, so a request that is refused leaves no trace; two
    first uses racing each other collide on the primary key and the caller retries.
    """
    seen = session.get(SeenRequest, randomkey)
    if seen is None:
        claim(session, endpoint, randomkey, fingerprint)
        return True
    if seen.endpoint != endpoint or not hmac.compare_digest(seen.digest, fingerprint):
        raise Refused(
            ErrorCode.BAD_REQUEST,
            f"randomkey {randomkey!r} was already used for a different request; every request needs a fresh randomkey",
        )
    return False
