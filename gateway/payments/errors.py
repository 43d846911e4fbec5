"""What the domain says when it will not do what was asked: a code for the store, a sentence for
the merchant, and whether sending the same request again may succeed."""
from __future__ import annotations

from ..errorcodes import ErrorCode


class Refused(Exception):
    """The command was not carried out; nothing moved that the message does not mention.

    ``retry_safe``: the same request may be sent again as it is (another is still being processed,
    say). Where it is False, retrying changes nothing, or needs a person to check first.
    """

    def __init__(self, code: ErrorCode, message: str, *, retry_safe: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_safe = retry_safe
