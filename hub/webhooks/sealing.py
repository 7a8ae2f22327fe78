"""Webhook signing secrets at rest: sealed with AES-256-GCM under the hub's webhook key.

The hub must sign with a subscription's secret, so the secret cannot be stored as a hash. It is
encrypted instead (``v1.<base64 nonce + ciphertext>``), with the subscription id as associated
data so a sealed secret copied to another row does not open. The key is ``HUB_WEBHOOK_KEY``
(32 bytes, base64); embedded runs without it use a key file made once in ``HUB_DATA_DIR``
(mode 0600). A database dump alone therefore reveals no secret.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import HubError

__all__ = ["SecretSealer", "load_or_create_key"]

_VERSION = "v1."
_KEY_FILE = "webhook.key"


class SecretSealer:
    """Seals and opens secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the webhook key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, secret: str, *, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, context: str) -> str:
        if not sealed.startswith(_VERSION):
            raise HubError("a sealed webhook secret of an unknown version")
        try:
            raw = base64.b64decode(sealed.removeprefix(_VERSION), validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise HubError("a webhook secret does not open with this key") from exc


def load_or_create_key(data_dir: Path) -> bytes:
    """The embedded runs' key: read from ``data_dir``, made (0600) the first time."""
    path = data_dir / _KEY_FILE
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode())
    return key
