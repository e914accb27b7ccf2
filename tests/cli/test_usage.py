"""The CLI's surface without a stack: --version, help for every option, choices that match the domain, usage
errors (exit code 2), the data directory every command resolves, and the port helpers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer.testing import CliRunner

from shared.cli import choices
from shared.cli.main import app
from shared.config import Settings
from shared.ports import free_port, port_in_use

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def walk(command, path=()):
    """(path, command) for every command under the root, groups included."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


def test_version_comes_from_the_package_metadata():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"asora {version('asora')}"


def test_help_documents_the_exit_codes():
    result = invoke("--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for code in ("0 ok", "1 the operation failed", "2 usage error", "3 cannot reach", "4 timed out"):
        assert code in result.stdout
    assert "docs/cli.md" in result.stdout


def test_every_command_and_option_has_help():
    """A command or option added without help text fails here, so `--help` always explains everything."""
    missing = []
    for path, command in walk(typer.main.get_command(app)):
        if path and not (command.help or command.short_help):
            missing.append(" ".join(path))
        for param in command.params:
            if param.name not in ("help", "install_completion", "show_completion") and not getattr(param, "help", ""):
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []


# Commands that write or run something, print nothing to read back, or print a secret once: no --json.
WITHOUT_JSON = {
    ("up",),
    ("demo",),
    ("migrate",),
    ("down",),
    ("rollback",),
    ("tenants", "create"),
    ("keys", "create"),
    ("items", "add"),
    ("valuation", "set-default"),
    ("valuation", "switch"),
}


def test_every_read_command_has_json():
    """A command added without --json fails here unless it is listed above as one that reads nothing."""
    commands = {path: c for path, c in walk(typer.main.get_command(app)) if path and not getattr(c, "commands", None)}
    without = {path for path, c in commands.items() if "--json" not in {o for p in c.params for o in p.opts}}
    assert without == WITHOUT_JSON
    assert {("list-runs",), ("export", "list"), ("ops", "health"), ("tenants", "verify")} <= set(commands)


def test_options_with_a_fixed_set_of_values_list_them():
    for args, choice in (
        (("list-runs", "--help"), "rolled_back"),
        (("run", "--help"), "moving_average"),
        (("journal-entry", "--help"), "xero"),
        (("tenants", "create", "--help"), "enterprise"),
        (("keys", "create", "--help"), "viewer"),
    ):
        result = invoke(*args, env={"COLUMNS": "200"})
        assert choice in result.stdout, args


def test_every_option_with_choices_lists_all_of_them_in_its_help():
    """Walks every command: an option whose values are a fixed set shows the whole set in `--help`."""
    checked = 0
    for path, command in walk(typer.main.get_command(app)):
        with_choices = [p for p in command.params if getattr(p.type, "choices", None)]
        if not path or not with_choices:
            continue
        shown = invoke(*path, "--help", env={"COLUMNS": "500"}).stdout
        for param in with_choices:
            missing = [str(c) for c in param.type.choices if str(c) not in shown]
            assert missing == [], f"{' '.join(path)} {param.opts[0]}"
            checked += 1
    assert checked >= 5  # --status, --mode, --format, --group-by, --plan, --role-model, --role


def test_choices_match_the_domain():
    """The CLI's enums are spelled out for --help; these are the definitions they must agree with."""
    from shared.auth import OPERATOR, ROLE_PERMISSIONS
    from shared.journals.entries import JOURNAL_FORMATS, GroupBy
    from shared.reports.schemas import REPORTS
    from shared.runs.schemas import RunMode
    from shared.tenants.schemas import TenantCreate

    assert {c.value for c in choices.Plan} == set(get_args(TenantCreate.model_fields["plan"].annotation))
    assert {c.value for c in choices.RoleModel} == set(get_args(TenantCreate.model_fields["role_model"].annotation))
    roles = {OPERATOR} | {role for model in ROLE_PERMISSIONS.values() for role in model}
    assert {c.value for c in choices.Role} == roles
    assert tuple(c.value for c in choices.Report) == REPORTS
    assert {c.value for c in choices.JournalFormat} == set(JOURNAL_FORMATS)
    assert {c.value for c in choices.JournalGrouping} == set(get_args(GroupBy))
    assert {c.value for c in choices.CostingMode} == set(get_args(RunMode))


def test_an_unknown_status_is_a_usage_error_naming_the_choices():
    result = invoke("list-runs", "--tenant-id", "acme", "--status", "done", env={"COLUMNS": "200"})
    assert result.exit_code == 2
    for status in choices.RunStatus:
        assert status.value in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("journal-entry", "run_x", "--format", "pdf"),
        ("journal-entry", "run_x", "--group-by", "month"),
        ("tenants", "create", "acme", "--plan", "gold"),
        ("keys", "create", "--role", "admin"),
        ("run", "--tenant-id", "t", "--sales-file", "missing.csv"),
        ("export", "everything"),
        ("export", "valuation", "--param", "as_of"),
        ("list-runs", "--tenant-id", "t", "--limit", "0"),
    ],
)
def test_bad_arguments_exit_2(args):
    assert invoke(*args).exit_code == 2


def test_rollback_without_confirm_is_refused_before_anything_is_sent():
    result = invoke("rollback", "run_x", env={"ASORA_API_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.exit_code == 2
    assert "--confirm" in result.stderr


def test_an_api_command_without_a_key_says_which_variable_to_set(monkeypatch):
    monkeypatch.delenv("ASORA_API_KEY", raising=False)
    from shared.config import get_settings

    get_settings.cache_clear()
    try:
        result = invoke("list-runs", "--tenant-id", "acme")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "ASORA_API_KEY" in result.stderr


# --- the data directory -----------------------------------------------------------------------------------


def _settings(monkeypatch, **env):
    for name in ("ASORA_DATA_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_data_dir_defaults_to_the_users_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _settings(monkeypatch).data_dir == tmp_path / ".local" / "share" / "asora"
    assert _settings(monkeypatch, XDG_DATA_HOME=str(tmp_path / "xdg")).data_dir == tmp_path / "xdg" / "asora"
    # The XDG specification: a relative XDG_DATA_HOME is invalid and ignored.
    assert _settings(monkeypatch, XDG_DATA_HOME="xdg").data_dir == tmp_path / ".local" / "share" / "asora"


def test_a_relative_data_dir_is_made_absolute_once(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = _settings(monkeypatch, ASORA_DATA_DIR="state/asora")
    assert settings.data_dir == (tmp_path / "state" / "asora").resolve()
    monkeypatch.chdir("/")
    assert settings.data_dir.is_absolute()
    assert _settings(monkeypatch, ASORA_DATA_DIR="~/asora-data").data_dir == Path.home().resolve() / "asora-data"


def test_every_command_sees_the_same_data_dir_from_any_directory(tmp_path):
    """Two processes started in different directories, with nothing configured, agree on the data dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("ASORA_DATA_DIR", "XDG_DATA_HOME")}
    env["HOME"] = str(tmp_path / "home")
    seen = set()
    for cwd in (tmp_path / "a", tmp_path / "b" / "deeper"):
        cwd.mkdir(parents=True)
        probe = "from shared.config import get_settings; print(get_settings().data_dir)"
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        seen.add(out.stdout.strip())
    assert seen == {str(tmp_path / "home" / ".local" / "share" / "asora")}


# --- ports ---------------------------------------------------------------------------------------------------


def test_port_in_use_sees_a_listener_and_not_a_free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert port_in_use(listener.getsockname()[1])
    assert not port_in_use(free_port())
