"""What the guest agent and the control plane agree on: port, header, paths, secrets.

Both directions carry the instance's secret in `SECRET_HEADER`: the control plane's
commands to the agent (`http://<server address>:AGENT_PORT/...`) and the agent's
heartbeats to the control plane (`{control_plane_url}/guest/v1/instances/{id}/heartbeat`).
The secret is HMAC-SHA256 of the instance id under a key only the control plane holds
(`KEY_FILE` in its state directory), so the API checks it without storing anything; the
agent only ever sees its own instance's secret, through its config drive.

Standard library only: the agent imports this inside every server.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

AGENT_PORT = 8780
SECRET_HEADER = "X-Cellar-Guest-Secret"
KEY_FILE = "guest.key"
KEY_BYTES = 32

# The config drive's files (written by the cloud, read by the agent).
USER_DATA = "user_data.json"
META_DATA = "meta_data.json"


def heartbeat_path(instance_id: str) -> str:
    return f"/guest/v1/instances/{instance_id}/heartbeat"


def read_key(path: Path) -> bytes | None:
    """The key in `path`, or None if there is none (yet)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    return key if len(key) == KEY_BYTES else None


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (0600, random) on first use; safe against a racing process:
    the key is written to a private temporary file and linked into place, so a reader
    never sees a partial key and the first link wins."""
    key = read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process linked its key first
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    key = read_key(path)
    if key is None:
        raise RuntimeError(f"{path} does not hold a {KEY_BYTES}-byte guest key")
    return key


def instance_secret(key: bytes, instance_id: str) -> str:
    return hmac.new(key, instance_id.encode(), hashlib.sha256).hexdigest()


def secret_matches(key: bytes | None, instance_id: str, given: str | None) -> bool:
    """Whether `given` is the instance's secret (constant-time; no key, no match)."""
    if key is None or not given:
        return False
    return hmac.compare_digest(instance_secret(key, instance_id), given)
