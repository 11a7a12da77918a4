"""The detached backup job of the local cloud's repository (`BackupRepository.start_backup`
runs `python -m cellar.localcloud.backup_job`): `pgbackrest backup` annotated with the
control plane's backup id, checked, its result and the time of each part written to the
job file. Standard library only: it starts on every backup's path, and cellar's own
modules cost a quarter of a second to import."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The commands that reach the database (through the guest's server); others refuse pg1-*.
WITH_PG = ("stanza-create", "backup", "check")
OWNER = "postgres"
ANNOTATION = "cellar-backup-id"


# pgBackRest's errors when the guest's server goes away mid-backup (killed: measured),
# which do not say so in words.
_LOST_GUEST = ("tls error", "client state is", "unable to connect", "unexpected eof")


def _reason(output: str) -> str:
    """A failed backup's reason: pgBackRest's error, with what it means when it is a
    lost connection to the guest's server."""
    detail = output.strip()[-1000:]
    if any(sign in detail.lower() for sign in _LOST_GUEST):
        return (
            "the connection to the instance's pgBackRest server broke (it stopped or was "
            f"killed during the backup): {detail}"
        )
    return detail


def safe_name(backup_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", backup_id)


def read_job(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_job(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def run_job(conf: str, stanza: str, backup_id: str, kind: str, pg_options: list[str]) -> None:
    """The detached backup: `pgbackrest backup` annotated with the backup id, checked
    (page checksums as it was taken, or `verify` of the set); the result, the set as
    `info` lists it and the time of each part go into the job file."""
    job = Path(conf).parent / "jobs" / f"{safe_name(backup_id)}.json"
    owner = pwd.getpwnam(OWNER)
    base = ["pgbackrest", f"--config={conf}", f"--stanza={stanza}"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        pg = pg_options if args[-1] in WITH_PG else []
        return subprocess.run(
            [*base, *pg, *args], cwd="/", capture_output=True, text=True, check=False,
            user=owner.pw_uid, group=owner.pw_gid, extra_groups=[],
        )  # fmt: skip

    result: dict[str, Any] = {**read_job(job)}
    # When each part ended (epoch seconds): where a backup's time went.
    clock = result.setdefault("clock", {})
    clock["job"] = time.time()
    done = run(f"--type={kind}", f"--annotation={ANNOTATION}={backup_id}", "backup")
    clock["backup"] = time.time()
    if done.returncode != 0:
        result.update(state="failed", error=_reason(done.stderr or done.stdout))
        write_job(job, result)
        return
    info = json.loads(run("--output=json", "info").stdout or "[{}]")
    clock["info"] = time.time()
    sets = [
        b
        for b in (info[0].get("backup", []) if info else [])
        if (b.get("annotation") or {}).get(ANNOTATION) == backup_id
    ]
    if not sets:
        result.update(state="failed", error="the backup set is not in the repository")
    elif sets[-1].get("error"):
        # pgBackRest found pages whose checksum is wrong (it copies them, and warns).
        result.update(state="failed", error=(
            "invalid page checksums in the database: " + (done.stderr or done.stdout).strip()
        )[-1000:])  # fmt: skip
    elif _pages_checked(Path(conf).parent / "repo", stanza, sets[-1]["label"]):
        # Checked as it was taken: every page's checksum (the cluster has them) and each
        # file's SHA-1 and size as read, recorded in the manifest; its WAL archived
        # (archive-check). A separate `verify` would read the whole set back again.
        result.update(state="completed", label=sets[-1]["label"], set=sets[-1], checked="pages")
    else:
        checked = run(f"--set={sets[-1]['label']}", "verify")
        clock["verify"] = time.time()
        if checked.returncode != 0:
            result.update(state="failed", error="verify: " + checked.stderr.strip()[-1000:])
        else:
            result.update(state="completed", label=sets[-1]["label"], set=sets[-1],
                          checked="verify")  # fmt: skip
    write_job(job, result)


def _pages_checked(repo: Path, stanza: str, label: str) -> bool:
    """Whether pgBackRest checked the page checksums of the set (the cluster has data
    checksums: `option-checksum-page` in its manifest)."""
    try:
        manifest = (repo / "backup" / stanza / label / "backup.manifest").read_text()
    except OSError:
        return False
    return "\noption-checksum-page=true\n" in manifest


if __name__ == "__main__":
    run_job(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]))
