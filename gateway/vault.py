"""Merchant secrets at rest: Fernet encryption for what we must read back, keyed HMAC for what we only compare."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken


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
    def __init__(self, encryption_key: str, secret_key: str) -> None:
        self._fernet = Fernet(encryption_key.encode())
        self._mac_key = hashlib.sha256(b"credentials:" + secret_key.encode()).digest()

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

    def fingerprint(self, credentials: Credentials) -> str:
        """A keyed hash that lets a later request prove it holds the same credentials."""
        message = json.dumps([credentials.login, credentials.secret]).encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def matches(self, credentials: Credentials, fingerprint: str) -> bool:
        return hmac.compare_digest(self.fingerprint(credentials), fingerprint)
