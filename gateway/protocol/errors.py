"""A request the protocol answers with errorcode/errormessage (the codes are gateway.errorcodes)."""
from __future__ import annotations

from typing import Mapping

from ..errorcodes import ErrorCode

__all__ = ["ErrorCode", "ProtocolError"]


class ProtocolError(Exception):
    """A request we must answer with errorcode/errormessage instead of success.

    ``echo`` holds the request's own fields that passed validation, as they were sent, so an
    error answer can be signed over them; a field that did not validate is never signed.
    """

    def __init__(self, code: ErrorCode, message: str, echo: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.echo: Mapping[str, str] = echo or {}
