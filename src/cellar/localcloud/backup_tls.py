"""The backup repository's certificates: a CA of the local cloud's own, and what it signs.

- the repository server's certificate, for the host's address on the bridge;
- one client certificate per project (CN `project-<id>`), given to that project's guests:
  the repository lets each CN in for its project's stanzas only;
- the repository host's client certificate (CN `cellar-repository`), with which it
  reaches the guests' pgBackRest servers to take backups;
- one server certificate per instance, for its address.

pgBackRest 2.45 checks a server's name against the certificate's CN and DNS names only
(an IP address entry alone is refused: measured), so an address goes in both.
Made with the `openssl` command; the CA's key is root's (0600) and never leaves the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cellar.localcloud.system import LocalCloudError

REPOSITORY_CLIENT_CN = "cellar-repository"
_DAYS = "3650"


# ECDSA P-256 keys: made in ~0.01 s where an RSA 2048 one takes 0.1 to 0.5 s (random
# primes), and every instance create makes one; pgBackRest's TLS takes either.
_NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def project_cn(project_id: str) -> str:
    return "project-" + re.sub(r"[^A-Za-z0-9_-]", "_", project_id)


def _openssl(*args: str) -> None:
    done = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise LocalCloudError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


class CertificateAuthority:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert = directory / "ca.crt"
        self.key = directory / "ca.key"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time makes the CA or a certificate (five instances of one
        project created at once would otherwise write one key and another's cert)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "ca.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self) -> None:
        if self.cert.is_file():
            return
        with self._locked():
            self._make_ca()

    def _make_ca(self) -> None:
        if self.cert.is_file():
            return
        self.directory.chmod(0o755)
        tmp = self.directory / "ca.crt.tmp"
        _openssl(
            "req", "-x509", *_NEW_KEY, "-nodes", "-keyout", str(self.key),
            "-out", str(tmp), "-days", _DAYS, "-subj", "/CN=cellar-local-cloud-ca",
        )  # fmt: skip
        self.key.chmod(0o600)
        tmp.chmod(0o644)
        os.replace(tmp, self.cert)

    def issue(self, name: str, cn: str, *, address: str | None = None) -> tuple[Path, Path]:
        """`<name>.crt` and `<name>.key` (made once), for client and server use."""
        self.ensure()
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        if cert.is_file() and key.is_file():
            return cert, key
        with self._locked():
            if not (cert.is_file() and key.is_file()):
                self._issue(cert, key, cn, address)
        return cert, key

    def _issue(self, cert: Path, key: Path, cn: str, address: str | None) -> None:
        names = f"DNS:{cn}" if address is None else f"DNS:{address},IP:{address}"
        with tempfile.TemporaryDirectory(dir=self.directory) as scratch:
            csr, ext = Path(scratch) / "req.csr", Path(scratch) / "req.ext"
            ext.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth,clientAuth\n")
            _openssl(
                "req", *_NEW_KEY, "-nodes", "-keyout", str(key), "-out", str(csr),
                "-subj", f"/CN={cn}",
            )  # fmt: skip
            key.chmod(0o600)
            tmp = Path(scratch) / "out.crt"
            _openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                # A random serial, no serial file shared between processes.
                "-set_serial", f"0x{secrets.token_hex(16)}",
                "-out", str(tmp), "-days", _DAYS, "-extfile", str(ext),
            )  # fmt: skip
            tmp.chmod(0o644)
            os.replace(tmp, cert)
