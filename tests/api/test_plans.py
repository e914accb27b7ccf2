"""Plan ceilings: every master-data limit of the contract's table, enforced atomically under concurrency,
explained (limit, used, max) and audited; a downgrade keeps data and blocks new creations."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

from shared import db
from shared.errors import PlanLimitExceeded
from shared.tenants import plans
from tests.support import Api, create, make_tenant, operator

FREE = {"categories": 10, "hubs": 1, "bins": 10, "vendors": 5, "items": 100}


@pytest.fixture(scope="module")
def base(in_process):
    return in_process


def _refusal(response, limit, used, maximum):
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert error["details"][0] | {"message": ""} == {"limit": limit, "used": used, "max": maximum, "message": ""}
    return error


def _count(api: Api, path: str) -> int:
    return len(api.get(path, params={"limit": 1000}).json()["items"])


def test_every_free_plan_ceiling_is_enforced_and_audited(base):
    tenant_id, owner = make_tenant(base, plan="free", prefix="free")
    hub = create(owner, "/hubs", {"name": "h0"})
    category = create(owner, "/categories", {"name": "c0"})
    bodies = {
        "categories": lambda n: {"name": f"c{n}"},
        "hubs": lambda n: {"name": f"h{n}"},
        "bins": lambda n: {"hub_id": hub["id"], "name": f"b{n}"},
        "vendors": lambda n: {"name": f"v{n}"},
        "items": lambda n: {"sku": f"SKU-{n}", "name": f"i{n}", "category_id": category["id"]},
    }
    for limit, maximum in FREE.items():
        path = f"/{limit}"
        for n in range(_count(owner, path), maximum):
            create(owner, path, bodies[limit](n))
        _refusal(owner.post(path, json=bodies[limit](maximum)), limit, maximum, maximum)
        assert _count(owner, path) == maximum  # no partial write
    # The operator cannot override the ceiling either.
    _refusal(operator(base, tenant_id).post("/hubs", json={"name": "by operator"}), "hubs", 1, 1)
    events = owner.get("/audit", params={"limit": 1000}).json()["items"]
    refused = [(e["action"], e["actor_role"]) for e in events if e["reason"] == "PLAN_LIMIT_EXCEEDED"]
    assert refused == [(f"POST /{limit}", "owner") for limit in FREE] + [("POST /hubs", "operator")]
    assert {e["details"]["status"] for e in events if e["outcome"] == "refused"} == {402}


def test_enterprise_has_no_ceiling(base):
    _, owner = make_tenant(base, plan="enterprise", prefix="ent")
    for n in range(FREE["hubs"] + 2):
        create(owner, "/hubs", {"name": f"h{n}"})
    assert _count(owner, "/hubs") == 3


def _fire_together(base: str, key: str, path: str, bodies: list[dict[str, Any]]) -> list[int]:
    clients = [Api(base, key) for _ in bodies]
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def fire(i: int) -> None:
        barrier.wait()
        statuses[i] = clients[i].post(path, json=bodies[i]).status_code

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.http.close()
    return statuses


def test_concurrent_creates_at_the_ceiling_cannot_both_pass(base):
    _, owner = make_tenant(base, plan="free", prefix="race")
    for n in range(FREE["categories"] - 3):
        create(owner, "/categories", {"name": f"c{n}"})
    statuses = _fire_together(base, owner.key, "/categories", [{"name": f"race{n}"} for n in range(8)])
    assert sorted(statuses) == [201] * 3 + [402] * 5
    assert _count(owner, "/categories") == FREE["categories"]

    statuses = _fire_together(base, owner.key, "/hubs", [{"name": f"hub{n}"} for n in range(6)])
    assert sorted(statuses) == [201] + [402] * 5
    assert _count(owner, "/hubs") == 1


def test_downgrade_keeps_data_and_blocks_new_creations(base):
    tenant_id, owner = make_tenant(base, plan="enterprise", prefix="down")
    hubs = [create(owner, "/hubs", {"name": f"h{n}"}) for n in range(3)]
    op = operator(base)
    assert op.put(f"/tenants/{tenant_id}/plan", json={"plan": "free"}).json()["plan"] == "free"
    assert [h["id"] for h in owner.get("/hubs").json()["items"]] == [h["id"] for h in hubs]
    assert owner.get(f"/hubs/{hubs[0]['id']}").status_code == 200
    assert owner.patch(f"/hubs/{hubs[0]['id']}", json={"name": "still editable"}).status_code == 200
    _refusal(owner.post("/hubs", json={"name": "one more"}), "hubs", 3, 1)
    assert owner.delete(f"/hubs/{hubs[2]['id']}").status_code == 204
    _refusal(owner.post("/hubs", json={"name": "one more"}), "hubs", 2, 1)
    assert op.put(f"/tenants/{tenant_id}/plan", json={"plan": "pro"}).status_code == 200
    create(owner, "/hubs", {"name": "after upgrade"})


def test_check_limit_is_reusable_for_other_ceilings(service_urls):
    from shared.tenants import service as tenants

    free, enterprise = f"cl-{secrets.token_hex(4)}", f"cl-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(session, tenant_id=free, name=free, plan="free", role_model="standard", actor=None)
        tenants.create_tenant(
            session, tenant_id=enterprise, name=enterprise, plan="enterprise", role_model="simple", actor=None
        )
    with db.unit_of_work(free) as session:
        assert plans.lock_tenant(session, free) == "free"
        plans.check_limit(session, free, "exports_per_month", used=4)
        with pytest.raises(PlanLimitExceeded) as refused:
            plans.check_limit(session, free, "exports_per_month", used=5)
        assert refused.value.details[0]["max"] == 5
        with pytest.raises(PlanLimitExceeded):
            plans.check_limit(session, free, "integrations", used=0)
    with db.unit_of_work(enterprise) as session:
        plans.check_limit(session, enterprise, "exports_per_month", used=10**9)
        assert plans.limit_for(session, enterprise, "items") is None
