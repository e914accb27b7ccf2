"""The last lines of a child's log that `asora up` shows when the child dies during start-up: JSON lines are
shown as a person reads them, and a traceback as its last line only."""

from __future__ import annotations

import json

from shared.cli.launch import _log_tail


def test_json_lines_are_shown_as_level_and_event_and_a_traceback_as_its_last_line(tmp_path):
    log = tmp_path / "api.log"
    crash = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nOSError: [Errno 98] in use'
    log.write_text(
        "\n".join(
            [
                "raw text from before logging was configured",
                json.dumps({"event": "relay started", "level": "info", "logger": "asora.relay"}),
                json.dumps({"event": "start-up failed", "level": "error", "exception": crash}),
                "[1, 2]",
            ]
        )
        + "\n"
    )
    assert _log_tail(log) == [
        "raw text from before logging was configured",
        "info: relay started",
        "error: start-up failed (OSError: [Errno 98] in use)",
        "[1, 2]",
    ]
    assert not any("Traceback" in line for line in _log_tail(log))


def test_a_missing_log_shows_nothing(tmp_path):
    assert _log_tail(tmp_path / "absent.log") == []
