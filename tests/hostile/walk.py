"""The hostile walk: schemathesis over the app's own schema, as the owners of two tenants and as the operator,
with valid and invalid data, until a given number of requests has been sent.

    python -m tests.hostile.walk --requests 5000

Standalone, it makes a scratch database and Redis database on the configured servers (or embedded ones), serves
the API in this process, stocks two tenants, walks, prints a table, writes `bench-results/hostile.json`, and
exits 1 on any violation. `tests/hostile/test_walk.py` runs a short walk in `make test`.

Every answer goes through four kinds of check, counted apart:
- `not_a_server_error`: no 5xx (the health check's 503 without workers is its declared answer);
- response conformance: status code, content type, headers and body as the schema declares them;
- `contract_envelope`: every 4xx/5xx is `{"error": {code, reason, message, details, request_id}}` with one
  of the contract's codes, the status that code stands for, and the response's `X-Request-ID`;
- `no_cross_tenant_answer`: the second tenant's owner, sent the first tenant's ids in the path, never gets a
  2xx.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.errors import STATUS_BY_CODE
from tests.hostile.stocked import Tenant, stock_tenant

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ENVELOPE_KEYS = frozenset({"code", "reason", "message", "details", "request_id"})
# Statuses the contract's codes are answered with beyond STATUS_BY_CODE: an over-limit body or file is a
# VALIDATION_FAILED answered as 413, and a method a path does not have is 405 NOT_FOUND.
EXTRA_STATUSES = {("VALIDATION_FAILED", 413), ("NOT_FOUND", 405)}
HEALTH = ("/health", "/livez", "/metrics")
SEED = 20261202
RESULTS = Path("bench-results") / "hostile.json"
KINDS = ("server_error", "conformance", "out_of_envelope", "cross_tenant")


def _header(response: Any, name: str) -> str | None:
    value = response.headers.get(name) or response.headers.get(name.lower())
    if isinstance(value, list):
        return value[0] if value else None
    return cast(str | None, value)


def contract_envelope(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx is the contract's envelope (health and metrics answer their own bodies)."""
    del ctx
    if response.status_code < 400 or case.path in HEALTH:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != ENVELOPE_KEYS or set(body) != {"error"}:
        raise AssertionError(f"{response.status_code} is not the envelope: {response.text[:200]!r}")
    code = error["code"]
    if code not in STATUS_BY_CODE:
        raise AssertionError(f"{code!r} is not a contract code")
    if STATUS_BY_CODE[code] != response.status_code and (code, response.status_code) not in EXTRA_STATUSES:
        raise AssertionError(f"{code} answered with status {response.status_code}")
    if not isinstance(error["message"], str) or not isinstance(error["details"], list):
        raise AssertionError(f"message or details of the wrong type: {error!r}")
    if error["reason"] is not None and not isinstance(error["reason"], str):
        raise AssertionError(f"reason of the wrong type: {error!r}")
    if error["request_id"] is None or error["request_id"] != _header(response, "x-request-id"):
        raise AssertionError(f"request_id {error['request_id']!r} is not the X-Request-ID header")


@dataclass(frozen=True)
class Caller:
    name: str
    key: str
    x_tenant_id: str | None
    ids: Tenant  # whose existing ids are put into generated requests
    cross_tenant: bool = False  # the ids are another tenant's: no 2xx may come back for them


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    by_operation: dict[str, Counter[str]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def record(self, kind: str, label: str, caller: str, status: int, message: str) -> None:
        self.violations[kind] += 1
        self.by_operation.setdefault(label, Counter())[kind] += 1
        if len(self.examples) < 50:
            self.examples.append({
                "kind": kind, "operation": label, "caller": caller, "status": status, "message": message[:500],
            })  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.requests > 0 and not +self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "violations": {kind: self.violations[kind] for kind in KINDS},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "by_operation": {label: dict(c) for label, c in sorted(self.by_operation.items())},
            "examples": self.examples,
            "skipped": self.skipped,
            "ok": self.ok,
        }


def _negatable(document: dict[str, Any], method: str, path: str) -> bool:
    """Whether invalid input can be generated for an operation: it takes a body or a query parameter, or a path
    parameter with a constraint. (For a bare string path parameter schemathesis searches seconds before it
    gives up, and the positive walk already sends it every string.)"""
    operation = document["paths"][path][method.lower()]
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query":
            return True
        schema = parameter.get("schema", {})
        if parameter["in"] == "path" and (schema.get("type") != "string" or set(schema) - {"type", "title"}):
            return True
    return False


def _messages(exc: FailureGroup) -> str:
    return "; ".join(f"{f.title}: {f.message}" for f in exc.exceptions)[:500]


class Walk:
    def __init__(self, app: Any, callers: list[Caller], *, seed: int = SEED) -> None:
        self.app = app
        self.callers = callers
        self.seed = seed
        generation = {"deterministic": True, "with-security-parameters": False}  # the caller's key, not a generated one
        config = schemathesis.Config.from_dict({"seed": seed, "generation": generation})
        self.document = app.openapi()
        self.schema = schemathesis.openapi.from_dict(self.document, config=config)
        # An operation schemathesis cannot read raises here: the walk does not silently skip it.
        self.operations = [cast(Any, result).ok() for result in self.schema.get_all_operations()]
        self.tally = Tally()

    def exercise(self, case: Any, caller: Caller) -> None:
        adopted = False
        if case.path_parameters:
            before = dict(case.path_parameters)
            caller.ids.adopt_path(case.path, case.path_parameters)
            adopted = before != case.path_parameters
        if isinstance(case.body, dict | list):
            case.body = caller.ids.adopt_body(case.body)
        if case.headers:
            case.headers.pop("X-Tenant-ID", None)  # the caller's own, below
        headers = {"Authorization": f"Bearer {caller.key}"}
        if caller.x_tenant_id:
            headers["X-Tenant-ID"] = caller.x_tenant_id
        response = case.call(session=ASGIClient(self.app), base_url="http://testserver", headers=headers)
        self.tally.requests += 1
        self.tally.statuses[response.status_code] += 1
        label = f"{case.method.upper()} {case.path}"
        groups = [("conformance", CONFORMANCE), ("out_of_envelope", [contract_envelope])]
        if case.path not in HEALTH:  # /health answers 503 by design when a dependency is down
            groups.insert(0, ("server_error", [not_a_server_error]))
        for kind, checks in groups:
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as exc:
                self.tally.record(kind, label, caller.name, response.status_code, _messages(exc))
        if caller.cross_tenant and adopted and response.status_code < 300:
            message = f"{label} with {case.path_parameters} answered {response.status_code}"
            self.tally.record("cross_tenant", label, caller.name, response.status_code, message)

    def _draw(self, operation: Any, mode: GenerationMode, caller: Caller, count: int, seed: int) -> None:
        strategy = operation.as_strategy(generation_mode=mode)

        @hypothesis.seed(seed)
        @hypothesis.settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @hypothesis.given(strategy)
        def draw(case: Any) -> None:
            try:
                self.exercise(case, caller)
            except Exception as exc:  # the app raised through the transport: as bad as a 5xx
                self.tally.requests += 1
                message = f"{exc.__class__.__name__}: {exc}"
                self.tally.record("server_error", operation.label, caller.name, 0, message)

        try:
            draw()
        except hypothesis.errors.Unsatisfiable:
            self.tally.skipped.append(f"{operation.label} {mode.value} {caller.name}: nothing to generate")

    def run(self, requests: int, *, max_rounds: int = 100) -> Tally:
        units = [
            (operation, mode, caller)
            for operation in self.operations
            for caller in self.callers
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if mode is GenerationMode.POSITIVE or _negatable(self.document, operation.method, operation.path)
        ]
        random.Random(self.seed).shuffle(units)  # a short walk still touches every operation and caller
        for round_ in range(max_rounds):
            remaining = requests - self.tally.requests
            if remaining <= 0:
                break
            quota = max(1, math.ceil(remaining / len(units)))
            sent = self.tally.requests
            for n, (operation, mode, caller) in enumerate(units):
                if self.tally.requests >= requests:
                    break
                self._draw(operation, mode, caller, quota, self.seed + round_ * len(units) + n)
            if self.tally.requests == sent:
                break
        return self.tally


def callers_for(base: str, operator_key: str) -> list[Caller]:
    """Two stocked tenants and the operator: each owner on its own ids, the second owner also on the first
    tenant's ids (each such answer must be a refusal), and the operator acting on the first tenant."""
    first, second = stock_tenant(base, "walka"), stock_tenant(base, "walkb")
    return [
        Caller("owner-a", first.owner_key, None, first),
        Caller("owner-b", second.owner_key, None, second),
        Caller("owner-b-on-a", second.owner_key, None, first, cross_tenant=True),
        Caller("operator-on-a", operator_key, first.tenant_id, first),
    ]


def table(tally: Tally) -> str:
    lines = [f"{'measure':<34} {'count':>8}", f"{'-' * 34} {'-' * 8}", f"{'requests':<34} {tally.requests:>8}"]
    lines += [f"{kind + ' violations':<34} {tally.violations[kind]:>8}" for kind in KINDS]
    lines += [f"{'status ' + str(status):<34} {count:>8}" for status, count in sorted(tally.statuses.items())]
    for label, counts in sorted(tally.by_operation.items()):
        lines.append(f"  {label}: {dict(counts)}")
    return "\n".join(lines)


def write_results(tally: Tally, path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tally.as_dict(), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests to send (default 5000)")
    parser.add_argument("--seed", type=int, default=SEED, help="generation seed (default %(default)s)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file (default %(default)s)")
    args = parser.parse_args(argv)

    from tests.benchmarks.harness import scratch_environment
    from tests.conftest import OPERATOR_KEY, TEST_ENV

    os.environ.update(TEST_ENV)
    with scratch_environment():
        from api.main import app
        from shared import db
        from shared.tenants import service as tenants
        from tests.support import IN_PROCESS

        with db.unit_of_work(db.SYSTEM_SCOPE) as session:  # the system login (docs/security.md)
            tenants.ensure_operator_key(session, OPERATOR_KEY)
        walk = Walk(app, callers_for(IN_PROCESS, OPERATOR_KEY), seed=args.seed)
        tally = walk.run(args.requests)
    print(table(tally))
    print(f"results: {write_results(tally, args.output)}")
    if not tally.ok:
        print("hostile walk: violations found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
