"""`GET /mgmt/instances/{id}`: Trove's management view, for administrators only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.helpers import Api, MakeApi, create, fault_of
from cellar.db import instances as repo
from cellar.db.engine import transaction


def _built(sessions: sessionmaker[Session], instance_id: str, tag: str) -> None:
    """What provisioning records: the server's and the volume's ids."""
    with transaction(sessions) as session:
        repo.update_instance(
            session,
            instance_id=instance_id,
            compute_instance_id=f"server-{tag}",
            volume_id=f"volume-{tag}",
            server_status="ACTIVE",
            task_description="The server and the volume are made.",
        )


def _mgmt(api: Api, instance_id: str) -> dict[str, Any]:
    response = api.get(f"/mgmt/instances/{instance_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()["instance"]
    return view


def test_an_admin_sees_the_server_and_volume_behind_an_instance(
    api: Api, make_api: MakeApi, sessions: sessionmaker[Session]
) -> None:
    iid = create(api)["id"]
    admin = make_api("ops", admin=True)
    before = _mgmt(admin, iid)
    assert before["server"] is None and before["volume"] == {"id": None, "size": 2}

    _built(sessions, iid, "a")
    view = _mgmt(admin, iid)
    public = api.get(f"/instances/{iid}").json()["instance"]
    # The instance view, plus what only an operator sees.
    assert {k: v for k, v in view.items() if k in public and k != "volume"} == {
        k: v for k, v in public.items() if k != "volume"
    }
    assert view["server"] == {
        "id": "server-a",
        "name": f"cellar-{iid}",
        "status": "ACTIVE",
        "tenant_id": "p1",
    }
    assert view["volume"] == {"id": "volume-a", "size": 2}
    assert view["tenant_id"] == "p1" and view["deleted"] is False
    assert view["provisioning_engine"] == "native" and view["stack_id"] is None
    assert view["cluster_id"] is None and view["replica_of"] is None
    assert view["task_description"] == "The server and the volume are made."
    assert view["service_status"] == "NEW"


def test_an_admin_sees_a_cluster_members_server_and_volume(
    api: Api, make_api: MakeApi, sessions: sessionmaker[Session]
) -> None:
    body = {
        "cluster": {
            "name": "pg",
            "instances": [
                {"flavorRef": "2", "volume": {"size": 2}},
                {"flavorRef": "1", "volume": {"size": 3}},
            ],
        }
    }
    response = api.post("/clusters", json=body)
    assert response.status_code == 200, response.text
    cluster = response.json()["cluster"]
    primary, replica = (m["id"] for m in cluster["instances"])
    _built(sessions, replica, "r")

    view = _mgmt(make_api("ops", admin=True), replica)
    assert view["server"]["id"] == "server-r" and view["volume"] == {"id": "volume-r", "size": 3}
    assert view["cluster_id"] == cluster["id"]
    assert view["replica_of"]["id"] == primary


def test_a_non_admin_is_refused_even_for_its_own_instance(api: Api) -> None:
    iid = create(api)["id"]
    assert "administrators" in fault_of(api.get(f"/mgmt/instances/{iid}"), "forbidden", 403)
    assert api.get("/mgmt/instances/no-such-id").status_code == 403


def test_an_unknown_or_deleted_instance_is_404(
    api: Api, make_api: MakeApi, sessions: sessionmaker[Session]
) -> None:
    admin = make_api("ops", admin=True)
    fault_of(admin.get("/mgmt/instances/no-such-id"), "itemNotFound", 404)

    iid = create(api)["id"]
    with transaction(sessions) as session:
        repo.update_instance(session, instance_id=iid, deleted=True)
    fault_of(admin.get(f"/mgmt/instances/{iid}"), "itemNotFound", 404)
    assert admin.get(f"/mgmt/instances/{iid}?deleted=true").json()["instance"]["deleted"] is True
