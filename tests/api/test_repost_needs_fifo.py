"""A repost re-costs by FIFO, so `backdated_entries = repost` and a method other than FIFO exclude each other:
each way in is refused with 409 REPOST_NEEDS_FIFO and changes nothing (docs/costing.md)."""

from __future__ import annotations

from typing import Any

from tests.support import Api, make_tenant, seed_master_data


def _refused(response: Any) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"]["reason"] == "REPOST_NEEDS_FIFO", response.text


def _settings(owner: Api) -> dict[str, Any]:
    backdated = owner.get("/settings").json()["backdated_entries"]
    default = owner.get("/settings/valuation").json()["default_method"]
    return {"backdated_entries": backdated, "default_method": default}


def test_repost_mode_keeps_every_method_on_fifo(in_process: str) -> None:
    _, owner = make_tenant(in_process, prefix="rpf")
    seed_master_data(owner, skus=("A",))
    assert owner.patch("/settings", json={"backdated_entries": "repost"}).status_code == 200

    _refused(owner.put("/settings/valuation", json={"default_method": "lifo"}))
    _refused(owner.put("/valuation-methods/A", json={"method": "moving_average"}))
    assert _settings(owner) == {"backdated_entries": "repost", "default_method": "fifo"}
    assert owner.put("/valuation-methods/A", json={"method": "fifo"}).status_code == 200


def test_repost_mode_is_refused_while_a_method_other_than_fifo_is_in_use(in_process: str) -> None:
    _, owner = make_tenant(in_process, prefix="rpf")
    seed_master_data(owner, skus=("A",))
    assert owner.put("/valuation-methods/A", json={"method": "lifo"}).status_code == 200
    _refused(owner.patch("/settings", json={"backdated_entries": "repost"}))
    assert owner.put("/valuation-methods/A", json={"method": "fifo"}).status_code == 200
    assert owner.put("/settings/valuation", json={"default_method": "moving_average"}).status_code == 200
    _refused(owner.patch("/settings", json={"backdated_entries": "repost"}))
    assert _settings(owner) == {"backdated_entries": "reject", "default_method": "moving_average"}
