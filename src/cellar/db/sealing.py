"""Secrets a job must carry until it has used them (users' passwords of a create),
sealed at rest: Fernet (AES-128-CBC with an HMAC-SHA256) under a key that cellar keeps
outside its database, in a file of its state directory (`Settings.secret_key_path`,
mode 0600, made on first use). A copy of the database alone reveals no sealed secret;
every API and task-manager process of one deployment must read the same key file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

_KEYS: dict[Path, Fernet] = {}
_LOCK = threading.Lock()


class SealError(Exception):
    """A sealed value that this deployment's key does not open."""


def _load_or_create(path: Path) -> Fernet:
    """The key at `path`; made (atomically, 0600) when there is none yet. Two processes
    that start at once agree: the second one's link fails and it reads the first's."""
    try:
        return Fernet(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return Fernet(path.read_bytes().strip())


def _fernet(path: Path) -> Fernet:
    with _LOCK:
        key = _KEYS.get(path)
        if key is None:
            key = _KEYS[path] = _load_or_create(path)
        return key


def seal(key_path: Path, data: dict[str, Any]) -> str:
    """`data` (JSON-safe) sealed with the key at `key_path`."""
    return _fernet(Path(key_path)).encrypt(json.dumps(data).encode()).decode()


def unseal(key_path: Path, sealed: str) -> dict[str, Any]:
    """What `seal` sealed; SealError if the key at `key_path` does not open it."""
    try:
        data = _fernet(Path(key_path)).decrypt(sealed.encode())
    except InvalidToken:
        raise SealError(f"a sealed secret does not open with the key in {key_path}") from None
    value: dict[str, Any] = json.loads(data)
    return value
