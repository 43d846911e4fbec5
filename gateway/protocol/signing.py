"""md5 signatures as the platform computes them: fields concatenated as sent, no separator."""
from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Sequence


def fresh_randomkey() -> str:
    """A new 32-hex-digit random key, as the official sample gateway sends."""
    return uuid.uuid4().hex


def sign(randomkey: str, private_key: str, *fields: object) -> str:
    """Lowercase hex md5 of randomkey + private key + the fields, each as its wire text."""
    text = randomkey + private_key + "".join(wire_text(value) for value in fields)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def verify(signature: object, randomkey: str, private_key: str, *fields: object) -> bool:
    """Constant-time, case-insensitive check of a received signature."""
    if not isinstance(signature, str):
        return False
    expected = sign(randomkey, private_key, *fields)
    return hmac.compare_digest(signature.strip().lower().encode(), expected.encode())


def verify_any(signature: object, randomkey: str, private_keys: Sequence[str], *fields: object) -> bool:
    """Signed with any of the keys: during a Private Key rotation the store may still sign with the old one."""
    return any(verify(signature, randomkey, key, *fields) for key in private_keys)


def wire_text(value: object) -> str:
    """The text a field had on the wire; a JSON number keeps its original digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
