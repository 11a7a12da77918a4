"""GET /instances (pagination), GET /instances/{id}, DELETE from any state, events."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, MakeApi, create, fault_of, jobs, make_active
from cellar.db import instances as repo
from cellar.db.engine import transaction
from cellar.db.events import record_event
from cellar.domain.status import InstanceTask


def page(api: Api, **params: str | int) -> tuple[list[str], dict[str, list[str]] | None]:
    body = api.get("/instances", params=params).json()
    ids = [i["id"] for i in body["instances"]]
    if "links" not in body:
        return ids, None
    (link,) = body["links"]
    assert link["rel"] == "next"
    url = urlsplit(link["href"])
    assert url.path == "/v1.0/p1/instances"
    return ids, parse_qs(url.query)


def test_pagination_with_limit_and_marker(api: Api) -> None:
    made = [create(api, name=f"db{i}")["id"] for i in range(5)]
    first, nxt = page(api, limit=2)
    assert first == made[:2]
    assert nxt == {"limit": ["2"], "marker": [made[1]]}
    second, nxt = page(api, limit=2, marker=made[1])
    assert second == made[2:4]
    assert nxt is not None
    last, nxt = page(api, limit=2, marker=made[3])
    assert (last, nxt) == (made[4:], None)
    assert page(api) == (made, None)


def test_pagination_survives_the_markers_deletion(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    made = [create(api, name=f"db{i}")["id"] for i in range(3)]
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=made[0], deleted=True)
    assert page(api, marker=made[0]) == (made[1:], None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit: must be at least 1"),
        ({"limit": "101"}, "limit: must be at most 100"),
        ({"limit": "ten"}, "limit: must be an integer"),
        ({"marker": "nope"}, "marker: 'nope' is not an instance of this listing"),
    ],
)
def test_bad_paging_is_400(api: Api, params: dict[str, str], message: str) -> None:
    assert fault_of(api.get("/instances", params=params), "badRequest", 400) == message


def test_another_projects_marker_is_400(api: Api, make_api: MakeApi) -> None:
    theirs = create(make_api("p2"))["id"]
    response = api.get("/instances", params={"marker": theirs})
    assert fault_of(response, "badRequest", 400).startswith("marker: ")


def test_show_unknown_instance_is_404(api: Api) -> None:
    assert "Instance nope" in fault_of(api.get("/instances/nope"), "itemNotFound", 404)


def test_show_derives_status_and_fault(api: Api, sessions: sessionmaker[Session]) -> None:
    iid = create(api)["id"]
    make_active(sessions, iid)
    view = api.get(f"/instances/{iid}").json()["instance"]
    assert (view["status"], view["task"]) == ("ACTIVE", "NONE")
    with transaction(sessions) as session:
        repo.update_instance(
            session,
            instance_id=iid,
            addresses=["10.1.0.5"],
            fault_message="The volume could not be extended.",
            fault_details="quota",
            fault_at=repo.utcnow(),
        )
    view = api.get(f"/instances/{iid}").json()["instance"]
    assert view["ip"] == ["10.1.0.5"]
    assert view["fault"]["message"] == "The volume could not be extended."
    assert view["fault"]["details"] == "quota"


# How to reach each task from BUILDING, through the transition rules.
PATHS = {
    "BUILDING": [],
    "BUILDING_ERROR_SERVER": [InstanceTask.BUILDING_ERROR_SERVER],
    "NONE": [InstanceTask.NONE],
    "RESIZING": [InstanceTask.NONE, InstanceTask.RESIZING],
    "ERROR": [InstanceTask.NONE, InstanceTask.RESIZING, InstanceTask.ERROR],
}


@pytest.mark.parametrize("state", sorted(PATHS))
def test_delete_is_202_from_any_state(
    api: Api, sessions: sessionmaker[Session], state: str
) -> None:
    iid = create(api)["id"]
    with transaction(sessions) as session:
        for task in PATHS[state]:
            repo.change_task(session, instance_id=iid, target=task)
    response = api.delete(f"/instances/{iid}")
    assert (response.status_code, response.content) == (202, b"")
    assert [j.kind for j in jobs(sessions, iid)] == ["provision_instance", "delete_instance"]
    view = api.get(f"/instances/{iid}").json()["instance"]
    assert view["task"] == "DELETING"


def test_a_second_delete_submits_nothing_new(api: Api, sessions: sessionmaker[Session]) -> None:
    iid = create(api)["id"]
    assert api.delete(f"/instances/{iid}").status_code == 202
    assert api.delete(f"/instances/{iid}").status_code == 202
    assert [j.kind for j in jobs(sessions, iid)] == ["provision_instance", "delete_instance"]


def test_a_deleted_instance_is_gone(api: Api, sessions: sessionmaker[Session]) -> None:
    iid = create(api)["id"]
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=iid, deleted=True)
    fault_of(api.get(f"/instances/{iid}"), "itemNotFound", 404)
    fault_of(api.delete(f"/instances/{iid}"), "itemNotFound", 404)
    assert api.get("/instances").json() == {"instances": []}


def test_events_oldest_first(api: Api, sessions: sessionmaker[Session]) -> None:
    iid = create(api)["id"]
    assert api.get(f"/instances/{iid}/events").json() == {"events": []}
    with transaction(sessions) as session:
        record_event(
            session, instance_id=iid, operation="provision", step="volume", outcome="started"
        )
        record_event(
            session,
            instance_id=iid,
            operation="provision",
            step="volume",
            outcome="succeeded",
            message="vol-1",
            duration_ms=12,
        )
        record_event(session, instance_id="other", operation="x", step="y", outcome="z")
    events = api.get(f"/instances/{iid}/events").json()["events"]
    assert [(e["step"], e["outcome"], e["message"], e["duration_ms"]) for e in events] == [
        ("volume", "started", "", None),
        ("volume", "succeeded", "vol-1", 12),
    ]
    assert set(events[0]) == {
        "id",
        "operation",
        "step",
        "outcome",
        "message",
        "duration_ms",
        "created",
    }
    fault_of(api.get("/instances/nope/events"), "itemNotFound", 404)
