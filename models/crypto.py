"""Encryption at rest for secrets (provider keys, later user keys and MCP secrets).

Keys are Fernet keys, newest first. The newest encrypts; all of them decrypt, so a key is
rotated by prepending a new one, re-encrypting, then dropping the old one. Each ciphertext is
stored with the digest of the key that produced it (``*_key_id`` columns).
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsUnavailable(RuntimeError):
    """No encryption key is configured, or none of them can decrypt a stored value."""


class SecretBox:
    """Encrypts and decrypts secrets with a rotatable list of Fernet keys."""

    def __init__(self, keys: list[str]):
        self._keys = [k.encode() if isinstance(k, str) else k for k in keys]
        self._fernets = [Fernet(k) for k in self._keys]
        self._multi = MultiFernet(self._fernets) if self._fernets else None

    @property
    def active_key_id(self) -> str:
        """Digest of the key new secrets are encrypted with."""
        if not self._keys:
            raise SecretsUnavailable("no encryption key configured (AGENTFARM_ENCRYPTION_KEYS)")
        return key_digest(self._keys[0])

    def encrypt(self, plaintext: str) -> tuple[str, str]:
        """Return ``(ciphertext, key_id)``."""
        if self._multi is None:
            raise SecretsUnavailable("no encryption key configured (AGENTFARM_ENCRYPTION_KEYS)")
        return self._multi.encrypt(plaintext.encode()).decode(), self.active_key_id

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt a value produced by any configured key."""
        if self._multi is None:
            raise SecretsUnavailable("no encryption key configured (AGENTFARM_ENCRYPTION_KEYS)")
        try:
            return self._multi.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretsUnavailable("stored secret cannot be decrypted with any key") from exc


def key_digest(key: bytes) -> str:
    """A short, non-reversible identifier of a key."""
    return hashlib.sha256(key).hexdigest()[:16]


def generate_key() -> str:
    """A fresh Fernet key."""
    return Fernet.generate_key().decode()
