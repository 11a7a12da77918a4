"""Backups through the API and the task manager on the fake cloud (its backup repository
a model that refuses what pgBackRest refuses): Trove's backup API, the instance BACKUP
meanwhile, failures, restore points and their window, and scheduled backups kept by the
engine's retention."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plane import ControlPlane
from sqlalchemy import update

from cellar.db.engine import make_session_factory, transaction
from cellar.db.models import BackupSchedule
from cellar.taskmanager.backup_schedule import take_due_backups


def post_backup(plane: ControlPlane, iid: str, name: str = "b", **extra: Any) -> Any:
    body = {"backup": {"name": name, "instance": iid, **extra}}
    return plane.http.post(plane.url("/backups"), json=body)


def backup(plane: ControlPlane, iid: str, name: str = "b", **extra: Any) -> dict[str, Any]:
    r = post_backup(plane, iid, name, **extra)
    assert r.status_code == 202, r.text
    made = r.json()["backup"]
    assert made["status"] == "NEW"
    plane.run()
    return show(plane, made["id"])


def show(plane: ControlPlane, bid: str) -> dict[str, Any]:
    r = plane.http.get(plane.url(f"/backups/{bid}"))
    assert r.status_code == 200, r.text
    return dict(r.json()["backup"])


def windowed(plane: ControlPlane, iid: str) -> dict[str, Any]:
    """The instance once its restorable window is open (from the second after the one its
    first backup ended in)."""
    deadline = time.monotonic() + 5
    while (shown := plane.show(iid)).get("restorable_from") is None:
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)
    return shown


def active(plane: ControlPlane) -> str:
    iid = plane.create("src")
    plane.run()
    assert plane.show(iid)["status"] == "ACTIVE"
    return iid


def test_full_and_incremental_backups_and_their_deletion(plane: ControlPlane) -> None:
    iid = active(plane)
    r = post_backup(plane, iid, "first", description="the first")
    assert r.status_code == 202, r.text
    assert plane.show(iid)["status"] == "BACKUP"
    refused = plane.http.post(plane.url(f"/instances/{iid}/action"), json={"restart": {}})
    assert refused.status_code == 422, refused.text
    plane.run()
    full = show(plane, r.json()["backup"]["id"])
    assert full["status"] == "COMPLETED" and full["size"] > 0, full
    assert full["locationRef"].startswith(f"cellar-{iid}/") and full["parent_id"] is None
    assert full["datastore"]["type"] == "postgresql" and full["description"] == "the first"
    assert plane.show(iid)["status"] == "ACTIVE"

    incr = backup(plane, iid, "second", incremental=1)
    assert incr["status"] == "COMPLETED" and incr["parent_id"] == full["id"]
    listed = plane.http.get(plane.url(f"/instances/{iid}/backups")).json()["backups"]
    assert [b["id"] for b in listed] == [full["id"], incr["id"]]
    filtered = plane.http.get(plane.url("/backups"), params={"instance_id": "nope"}).json()
    assert filtered["backups"] == []

    r = plane.http.delete(plane.url(f"/backups/{full['id']}"))
    assert r.status_code == 409 and incr["id"] in r.text, r.text
    assert plane.http.delete(plane.url(f"/backups/{incr['id']}")).status_code == 202
    plane.run()
    assert plane.http.get(plane.url(f"/backups/{incr['id']}")).status_code == 404
    r = plane.http.delete(plane.url(f"/backups/{full['id']}"))
    assert r.status_code == 409 and "only full backup" in r.text, r.text


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"backup": {"instance": "X"}}, 400, "backup.name"),
        ({"backup": {"name": "b", "instance": "nope"}}, 404, "nope"),
        ({"backup": {"name": "b", "instance": "X", "parent_id": "nope"}}, 400, "backup.parent_id"),
    ],
)
def test_bad_backup_requests(plane: ControlPlane, body: Any, status: int, words: str) -> None:
    iid = active(plane)
    if body["backup"].get("instance") == "X":
        body["backup"]["instance"] = iid
    r = plane.http.post(plane.url("/backups"), json=body)
    assert r.status_code == status and words in r.text, r.text
    assert plane.http.get(plane.url("/backups")).json()["backups"] == []


def test_a_failed_backup_says_why_and_leaves_the_instance_idle(plane: ControlPlane) -> None:
    iid = active(plane)
    plane.services.guest.stop_db(iid)  # the datastore is down: nothing to copy
    failed = backup(plane, iid)
    assert failed["status"] == "FAILED" and failed["fail_reason"], failed
    assert plane.show(iid)["task"] == "NONE"
    # A failed backup holds nothing: it goes at once.
    assert plane.http.delete(plane.url(f"/backups/{failed['id']}")).status_code == 202
    assert plane.http.get(plane.url(f"/backups/{failed['id']}")).status_code == 404


def test_restore_points_and_the_window(plane: ControlPlane) -> None:
    iid = active(plane)
    full = backup(plane, iid)
    shown = windowed(plane, iid)
    start = datetime.fromisoformat(shown["restorable_from"])
    until = datetime.fromisoformat(shown["restorable_until"])
    assert start <= until

    restored = plane.create("copy", restorePoint={"backupRef": full["id"]}, users=[])
    plane.run()
    assert plane.show(restored)["status"] == "ACTIVE"

    too_early = (start - timedelta(hours=1)).astimezone(UTC).isoformat()
    for point, field, words in [
        ({"backupRef": full["id"], "restoreTime": too_early}, "restoreTime", "before backup"),
        ({"instance": iid, "restoreTime": too_early}, "restoreTime", "restorable window"),
        ({"instance": iid}, "restoreTime", "is required"),
        ({"backupRef": "nope"}, "backupRef", "no backup"),
        ({"backupRef": full["id"], "restoreTime": "yesterday"}, "restoreTime", "RFC 3339"),
        ({"backupRef": full["id"], "restoreTime": "2026-01-01T00:00:00"}, "restoreTime", "zone"),
        ({}, "restorePoint", "either backupRef or instance"),
    ]:
        body = {"instance": {"name": "x", "flavorRef": "1", "volume": {"size": 1},
                             "restorePoint": point}}  # fmt: skip
        r = plane.http.post(plane.url("/instances"), json=body)
        assert r.status_code == 400, (point, r.text)
        assert "instance.restorePoint" in r.text and field in r.text and words in r.text, r.text
    # Users of its own: a restored instance has its source's.
    r = plane.http.post(plane.url("/instances"), json={"instance": {
        "name": "x", "flavorRef": "1", "volume": {"size": 1},
        "restorePoint": {"backupRef": full["id"]},
        "users": [{"name": "u", "password": "secret-pw-1"}],
    }})  # fmt: skip
    assert r.status_code == 400 and "instance.users" in r.text, r.text


def test_scheduled_backups_are_taken_and_kept_by_retention(plane: ControlPlane) -> None:
    iid = active(plane)
    body = {"backup_schedule": {"interval_hours": 24, "retention": {"count": 1}}}
    r = plane.http.put(plane.url(f"/instances/{iid}/backup_schedule"), json=body)
    assert r.status_code == 200, r.text
    schedule = r.json()["backup_schedule"]
    assert schedule["interval_hours"] == 24 and schedule["retention"] == {"count": 1}
    sessions = make_session_factory(plane.engine)
    assert take_due_backups(sessions) == []  # due in a day

    def due_now() -> None:
        with transaction(sessions) as s:
            s.execute(update(BackupSchedule).values(next_at=datetime(2000, 1, 1)))

    due_now()
    [first] = take_due_backups(sessions)
    assert take_due_backups(sessions) == []  # moved on by its interval
    plane.run()
    assert show(plane, first)["status"] == "COMPLETED"
    assert show(plane, first)["name"].startswith("automated-")

    due_now()
    [second] = take_due_backups(sessions)
    plane.run()
    # Retention of one full backup: the engine expired the first, its row followed.
    assert show(plane, second)["status"] == "COMPLETED"
    assert plane.http.get(plane.url(f"/backups/{first}")).status_code == 404
    assert plane.services.backup is not None
    assert [s.backup_id for s in plane.services.backup.list_backup_sets(iid)] == [second]

    bad = {"backup_schedule": {"interval_hours": 1, "retention": {"count": 1, "days": 2}}}
    r = plane.http.put(plane.url(f"/instances/{iid}/backup_schedule"), json=bad)
    assert r.status_code == 400 and "retention" in r.text, r.text
    assert plane.http.delete(plane.url(f"/instances/{iid}/backup_schedule")).status_code == 204
    assert plane.http.get(plane.url(f"/instances/{iid}/backup_schedule")).status_code == 404


def test_a_replication_groups_members_share_one_archive(plane: ControlPlane) -> None:
    """A group is one PostgreSQL system: its members archive into the group's stanza, a
    replica can be the source of a backup (its primary runs too), an incremental backup
    of the primary follows the replica's full one, and a restore reads any of them."""
    body = {"cluster": {"name": "pg", "instances": [
        {"flavorRef": "1", "volume": {"size": 1}}, {"flavorRef": "1", "volume": {"size": 1}},
    ]}}  # fmt: skip
    r = plane.http.post(plane.url("/clusters"), json=body)
    assert r.status_code == 200, r.text
    cid = r.json()["cluster"]["id"]
    plane.run()
    members = {m["role"]: m["id"] for m in plane.http.get(plane.url(f"/clusters/{cid}")).json()[
        "cluster"]["instances"]}  # fmt: skip
    primary, replica = members["primary"], members["replica"]

    full = backup(plane, replica, "from-the-replica")
    assert full["status"] == "COMPLETED", full["fail_reason"]
    assert full["instance_id"] == replica and full["locationRef"].startswith(f"cellar-{cid}/")
    assert plane.show(replica)["status"] == "ACTIVE"
    incr = backup(plane, primary, "then-the-primary", incremental=True)
    assert incr["status"] == "COMPLETED" and incr["parent_id"] == full["id"], incr
    # The window is the group's, shown on every member (its end moves on with the WAL).
    shown = [windowed(plane, m) for m in (primary, replica)]
    assert shown[0]["restorable_from"] == shown[1]["restorable_from"] is not None, shown
    assert all(s["restorable_until"] for s in shown), shown
    # A backup an incremental one (of another member) depends on stays.
    r = plane.http.delete(plane.url(f"/backups/{full['id']}"))
    assert r.status_code == 409 and incr["id"] in r.text, r.text

    restored = plane.create("copy", restorePoint={"backupRef": full["id"]}, users=[])
    at = windowed(plane, replica)["restorable_until"]
    to_time = plane.create("at", restorePoint={"instance": replica, "restoreTime": at}, users=[])
    plane.run()
    for iid in (restored, to_time):
        assert plane.show(iid)["status"] == "ACTIVE", plane.show(iid)
        assert "replica_of" not in plane.show(iid)

    # With the primary stopped, a replica's backup fails, saying why.
    plane.services.guest.stop_db(primary)
    failed = backup(plane, replica, "no-primary")
    assert failed["status"] == "FAILED" and primary in failed["fail_reason"], failed
    assert plane.show(replica)["status"] == "ACTIVE"
