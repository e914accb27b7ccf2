"""The hostile walk in `make test`: a short walk over the app (`python -m tests.hostile.walk` is the long one),
and the walk's own checks shown to catch what they exist for on an app that breaks every rule."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from tests.conftest import OPERATOR_KEY
from tests.hostile.stocked import Tenant
from tests.hostile.walk import Caller, Walk, callers_for, table, write_results
from tests.tier import FAST

SHORT_WALK = 100 if FAST else 300  # requests; `make test-fast` walks a third (tests/tier.py)


def test_a_short_walk_finds_no_violation(in_process: str, tmp_path: Any) -> None:
    from api.main import app

    tally = Walk(app, callers_for(in_process, OPERATOR_KEY)).run(SHORT_WALK)
    write_results(tally, tmp_path / "hostile.json")
    assert tally.requests >= SHORT_WALK
    assert not +tally.violations, table(tally) + "\n" + "\n".join(map(str, tally.examples[:10]))
    # the walk got past the refusals: reads and writes were answered as well as refused
    assert {200, 201, 202} <= set(tally.statuses) and {404, 422} <= set(tally.statuses), tally.statuses


def _broken_app() -> FastAPI:
    """Three operations, each breaking one rule the walk checks."""
    broken = FastAPI()

    @broken.get("/crash", operation_id="crash")
    def crash() -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=500)

    @broken.get("/bare-error", operation_id="bare_error", responses={422: {"description": "refused"}})
    def bare_error() -> JSONResponse:
        return JSONResponse({"detail": "no"}, status_code=400)

    @broken.get("/things/{thing_id}", operation_id="things_get")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    return broken


def test_the_walk_counts_each_kind_of_violation() -> None:
    victim = Tenant("victim", "k", path_ids={"thing_id": ["victims-thing"]})
    callers = [Caller("intruder", "k", None, victim, cross_tenant=True)]
    tally = Walk(_broken_app(), callers).run(30)
    assert tally.requests >= 30
    by_operation = tally.by_operation
    assert by_operation["GET /crash"]["server_error"] > 0
    assert by_operation["GET /crash"]["out_of_envelope"] > 0
    assert by_operation["GET /bare-error"]["out_of_envelope"] > 0
    assert by_operation["GET /bare-error"]["conformance"] > 0  # a status the schema does not declare
    assert by_operation["GET /things/{thing_id}"]["cross_tenant"] > 0
    assert not tally.ok
