"""Encryption of BMC and switch secrets at rest (Fernet).

The key comes from the config (`secret_key`) or from a key file created on first start with mode
0600. Losing the key makes stored secrets unreadable: operators back it up with the database
(docs/runbooks/secret-key.md). Nothing here logs a secret or a key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from provisiond.errors import ConfigError, ProvisionError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "secret_key: not a Fernet key (32 url-safe base64-encoded bytes)", key="secret_key"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ProvisionError(
                "stored secret cannot be decrypted with the current key "
                "(was the key file replaced? see docs/runbooks/secret-key.md)"
            ) from exc


def load_or_create_key(key: str, key_file: Path) -> bytes:
    """The configured key, else the key file, else a new key file (0600, created exclusively)."""
    if key:
        return key.encode("ascii")
    try:
        data = key_file.read_bytes().strip()
    except FileNotFoundError:
        pass
    else:
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"secret key file {key_file} has mode {mode:o}; it must not be readable by group "
                f"or others (chmod 600 {key_file})",
                key="secret_key_file",
            )
        return data
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our open: use theirs.
        return key_file.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(new + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return new
