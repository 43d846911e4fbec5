"""One id per request (or per background delivery), carried into logs and onto outgoing calls,
so a store's or processor's logs can be matched with ours."""
from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-Id"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_current: ContextVar[str] = ContextVar("request_id", default="")


def begin(incoming: str | None = None) -> str:
    """Adopt a well-formed id from the proxy in front of us, or make one."""
    request_id = incoming if incoming and _ACCEPTABLE.match(incoming) else uuid.uuid4().hex
    _current.set(request_id)
    return request_id


def current() -> str:
    return _current.get()


def outgoing_headers() -> dict[str, str]:
    """Headers for a call to a store or processor; outside a request or a worker round, a fresh id is made."""
    return {HEADER: current() or begin()}
