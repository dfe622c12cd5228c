"""Personal data at rest: AES-256-GCM, one key per installation.

The key is read from ``<data_dir>/keys/pii.key`` (32 random bytes, created with mode 0600 on first
start). Each value gets its own 96-bit nonce; the field name is bound as associated data, so a
ciphertext moved to another field does not decrypt. Stored form: ``v1:`` + base64(nonce ‖ ct);
binary values (proof-of-delivery images) are stored as the bytes nonce ‖ ct, without base64.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1:"


class DecryptionError(ValueError):
    """A stored value cannot be decrypted with this installation's key."""


class MissingKeyError(ValueError):
    """The data dir has no key: sealed data cannot be read (an admin command pointed at the
    wrong data dir must not create a new key)."""


def _key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "pii.key"


def load_key(data_dir: Path) -> bytes:
    """The installation's key; :class:`MissingKeyError` if there is none yet."""
    path = _key_path(data_dir)
    if not path.exists():
        raise MissingKeyError(
            f"No key at {path}: give the data dir of the servers whose orders these are "
            "(--data-dir or FLEET_DATA_DIR)"
        )
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path} must hold 32 bytes, it holds {len(key)}")
    return key


def load_or_create_key(data_dir: Path) -> bytes:
    path = _key_path(data_dir)
    if path.exists():
        return load_key(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    return key


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, field: str, value: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), field.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, field: str, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise DecryptionError(f"{field} is not sealed")
        raw = base64.b64decode(stored[len(PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except InvalidTag:
            raise DecryptionError(f"{field} does not decrypt with this key") from None

    def seal_bytes(self, field: str, value: bytes) -> bytes:
        """``value`` sealed for ``field`` as raw bytes (nonce ‖ ciphertext): a third smaller
        than :meth:`seal`'s text, for images."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value, field.encode())

    def open_bytes(self, field: str, stored: bytes) -> bytes:
        try:
            return self._aead.decrypt(stored[:12], stored[12:], field.encode())
        except (InvalidTag, ValueError):
            raise DecryptionError(f"{field} does not decrypt with this key") from None
