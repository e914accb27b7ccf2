"""`make soak`: the fault scenarios run N times over, then a table of scenario, invariant, runs, violations
and time, also written to bench-results/soak.json.

    python -m tests.faults.soak --runs 20 [--full] [-k EXPR]

One pytest session per pass (a fresh database, fresh processes), so one pass's leftovers never hide another's
violation; a pass that fails keeps its processes' logs in bench-results/soak-logs/pass-N/. A violation is an
invariant that did not hold (tests/faults/invariants.py); a scenario that failed for another reason (a bound
waited out, an assertion of the scenario's own) is counted as a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
RESULTS = Path("bench-results/soak.json")


@dataclass
class Row:
    scenario: str
    invariant: str = ""
    runs: int = 0
    violations: int = 0
    failures: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)


RECORD_ENV = "ASORA_SOAK_RECORD"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """As a pytest plugin (`-p tests.faults.soak`, in each pass's own process): one JSON line per scenario
    call, with its invariant and the violations `holds` found."""
    record = os.environ.get(RECORD_ENV)
    if not record or (report.when != "call" and not (report.when == "setup" and report.failed)):
        return
    props = dict(report.user_properties)
    line = {
        "scenario": report.nodeid.split("::")[-1].removeprefix("test_"),
        "invariant": str(props.get("invariant", "")),
        "violations": int(str(props.get("violations", 0))),
        "failed": report.failed,
        "seconds": report.duration,
        "message": str(report.longrepr).splitlines()[-1][:300] if report.failed and report.longrepr else "",
    }
    with Path(record).open("a") as out:
        out.write(json.dumps(line) + "\n")


def collect(record: Path, rows: dict[str, Row]) -> None:
    for text in record.read_text().splitlines() if record.exists() else []:
        line = json.loads(text)
        row = rows.setdefault(line["scenario"], Row(line["scenario"]))
        row.invariant = line["invariant"] or row.invariant
        row.runs += 1
        row.seconds += line["seconds"]
        row.violations += line["violations"]
        row.failures += int(line["failed"] and not line["violations"])
        if line["message"]:
            row.messages.append(line["message"])


def table(rows: list[Row], runs: int) -> str:
    lines = [
        f"| scenario | invariant | runs | violations | other failures | time (s, total over {runs} passes) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.invariant} | {row.runs} | {row.violations} | {row.failures} | {row.seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("SOAK_N", "20")))
    parser.add_argument("--full", action="store_true", help="the scenarios at full size (slower)")
    parser.add_argument("-k", default="", help="a pytest -k expression selecting scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.full:
        os.environ["ASORA_FAULTS_FULL"] = "1"
    rows: dict[str, Row] = {}
    started = time.monotonic()
    for n in range(args.runs):
        print(f"soak pass {n + 1}/{args.runs}", flush=True)
        record = args.out.parent / f"soak-pass-{n + 1}.jsonl"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.unlink(missing_ok=True)
        # Each pass's processes log under its own base temporary directory, kept when the pass found anything.
        logs = (args.out.parent / "soak-logs" / f"pass-{n + 1}").resolve()
        logs.parent.mkdir(parents=True, exist_ok=True)  # pytest makes --basetemp itself, not its parents
        argv_ = [sys.executable, "-m", "pytest", str(HERE), "-p", "no:cacheprovider", "-p", "tests.faults.soak", "-q"]
        argv_ += ["--basetemp", str(logs)] + (["-k", args.k] if args.k else [])
        done = subprocess.run(argv_, env=os.environ | {RECORD_ENV: str(record), "ASORA_FAULTS_ALL": "1"}, check=False)
        collect(record, rows)
        record.unlink(missing_ok=True)
        if done.returncode != 0:
            print(f"pass {n + 1} found something; its processes' logs are kept in {logs}", flush=True)
        else:
            shutil.rmtree(logs, ignore_errors=True)
    ordered = sorted(rows.values(), key=lambda r: r.scenario)
    print(table(ordered, args.runs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "runs": args.runs,
        "full_size": args.full,
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": [asdict(r) for r in ordered],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")
    bad = sum(r.violations + r.failures for r in ordered)
    return 1 if bad or not ordered else 0


if __name__ == "__main__":
    sys.exit(main())
