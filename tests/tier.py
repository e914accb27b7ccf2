"""Which tier is running: `make test` (CI, the default) or `make test-fast` (ASORA_TEST_TIER=fast).

The fast tier runs every test that needs no worker or stack, with smaller search budgets for the generated ones:
each Hypothesis property draws a quarter of its examples (at least 10), schemathesis draws fewer cases per
operation, and the hostile walk is shorter. `make test` always runs the full budgets, so nothing is searched less
before a change lands."""

from __future__ import annotations

import os

FAST = os.environ.get("ASORA_TEST_TIER", "full") == "fast"


def examples(full: int, fast: int | None = None) -> int:
    """A generated test's example count: `full` in `make test`; in `make test-fast`, `fast` when given (for a
    property whose every example is a whole run of jobs), else a quarter of `full` (at least 10)."""
    if not FAST:
        return full
    return fast if fast is not None else max(10, full // 4)
