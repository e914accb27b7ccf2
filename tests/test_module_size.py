"""No module of the application is over 600 lines (migrations aside): past that, a module holds more than one
noun and is split by noun, as `shared/inventory/` is into master data, receipts and counts."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "worker", "shared")
EXEMPT = (ROOT / "shared" / "migrations",)  # generated and append-only: one file per schema change
MAX_LINES = 600


def _modules() -> list[Path]:
    found = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return [path for path in found if not any(path.is_relative_to(exempt) for exempt in EXEMPT)]


def test_the_walk_finds_the_application() -> None:
    modules = {path.relative_to(ROOT).as_posix() for path in _modules()}
    assert {"api/main.py", "worker/celery_app.py", "shared/db.py", "shared/inventory/master.py"} <= modules
    assert not any(name.startswith("shared/migrations/") for name in modules)


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines()) for path in _modules()
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"split these modules by noun (at most {MAX_LINES} lines each): {too_long}"
