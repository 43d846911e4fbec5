"""Merchant secrets at rest: Fernet encryption for what we must read back, keyed HMAC for what we only compare."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


@dataclass(frozen=True)
class Credentials:
    """The merchant's Credential 1 and 2; never printed."""

    login: str
    secret: str

    def __repr__(self) -> str:
        return f"Credentials(login={self.login[:2]!r}…, secret=<hidden>)"


class VaultError(RuntimeError):
    """Stored credentials could not be decrypted (wrong or rotated key)."""


class Vault:
    """``encryption_key`` is comma-separated Fernet keys: the first seals, every one opens, so a new key
    goes first and the old one stays listed until `gateway keys reseal` has sealed everything anew.
    ``previous_secret_keys`` keep matching the fingerprints made before GATEWAY_SECRET_KEY rotated."""

    def __init__(self, encryption_key: str, secret_key: str, previous_secret_keys: Sequence[str] = ()) -> None:
        fernets = [Fernet(key.strip().encode()) for key in encryption_key.split(",") if key.strip()]
        if not fernets:
            raise ValueError("no encryption key")
        self._primary = fernets[0]
        self._fernet = MultiFernet(fernets)
        self._mac_keys = [_mac_key(key) for key in (secret_key, *previous_secret_keys)]

    def seal(self, credentials: Credentials) -> str:
        payload = json.dumps({"login": credentials.login, "secret": credentials.secret})
        return self._fernet.encrypt(payload.encode()).decode()

    def open(self, sealed: str) -> Credentials:
        try:
            payload = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise VaultError("stored merchant credentials cannot be decrypted with the current key") from exc
        return Credentials(payload["login"], payload["secret"])

    def seal_text(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open_text(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise VaultError("a stored secret cannot be decrypted with the current key") from exc

    def reseal(self, sealed: str) -> str | None:
        """``sealed`` under the first key, or None when it already is (re-running a re-seal changes nothing)."""
        try:
            self._primary.decrypt(sealed.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken as exc:
            raise VaultError("a stored secret cannot be decrypted with any configured key") from exc

    def fingerprint(self, credentials: Credentials) -> str:
        """A keyed hash that lets a later request prove it holds the same credentials."""
        return _fingerprint(self._mac_keys[0], credentials)

    def matches(self, credentials: Credentials, fingerprint: str) -> bool:
        """Under the current secret key or a previous one: a rotation must not refuse refunds of older charges."""
        return any(hmac.compare_digest(_fingerprint(key, credentials), fingerprint) for key in self._mac_keys)


def _mac_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"credentials:" + secret_key.encode()).digest()


def _fingerprint(mac_key: bytes, credentials: Credentials) -> str:
    message = json.dumps([credentials.login, credentials.secret]).encode()
    return hmac.new(mac_key, message, hashlib.sha256).hexdigest()
