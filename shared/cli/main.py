"""`asora`: run the stack, administer tenants and keys, and drive COGS runs and exports from the command line.

This module is the index of commands; each lives with its noun. Stack and administration commands (`up`,
`demo`, `migrate`, `down`, `tenants`, `keys`, `runs reap`, `ops`, `ledger`) talk to the database directly, as
a trusted local administrator. Commands that act for a tenant (`run`, `rollback`, `list-runs`,
`journal-entry`, `export`, `items`) go through the HTTP API with ASORA_API_KEY, so they obey the same
permissions and audit as any integration. Exit codes and output streams: shared/cli/errors.py and
docs/cli.md.
"""

from __future__ import annotations

import signal
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer

from shared.cli import admin, launch, runs
from shared.cli.errors import EXIT_CODES_HELP, AsoraGroup, ExitCode
from shared.cli.exports import app as export_app
from shared.cli.integrations import app as integrations_app
from shared.cli.items import app as items_app
from shared.cli.ledger import app as ledger_app
from shared.cli.ops import app as ops_app
from shared.cli.output import info, warn
from shared.cli.valuation import app as valuation_app

app = typer.Typer(
    cls=AsoraGroup,
    help="Asora: inventory ledger and FIFO cost of goods.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
STACK, ADMIN, TENANT = "Local stack", "Administration (direct database access)", "A tenant's work (through the API)"


def _package_version() -> str:
    try:
        return version("asora")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"asora {_package_version()}")
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Asora: inventory ledger and FIFO cost of goods."""


ApiPort = Annotated[int, typer.Option("--api-port", min=1, max=65535, help="Port of the API on 127.0.0.1.")]
FlowerPort = Annotated[int, typer.Option("--flower-port", min=1, max=65535, help="Port of Flower on 127.0.0.1.")]


@app.command(rich_help_panel=STACK)
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    launch.migrate()


def _interrupt_on_sigterm() -> None:
    """During start-up SIGTERM interrupts like Ctrl-C, so what was started so far is stopped again."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@app.command(rich_help_panel=STACK)
def up(api_port: ApiPort = 8000, flower_port: FlowerPort = 5555) -> None:
    """Run everything in the foreground until Ctrl-C or SIGTERM (embedded PostgreSQL and Redis unless
    ASORA_DATABASE_URL / ASORA_REDIS_URL are set), then stop all it started."""
    _interrupt_on_sigterm()
    running = launch.start(api_port, flower_port)
    launch.announce(running)
    info("Ctrl-C or SIGTERM stops everything this command started")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    failed = False
    try:
        while not stop.wait(1):
            if dead := running.stack.dead():
                warn(f"{', '.join(dead)} exited (logs in {running.stack.log_dir}); stopping")
                failed = True
                break
    finally:
        info("stopping...")
        launch.stop(running)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


@app.command(rich_help_panel=STACK)
def demo(api_port: ApiPort = 8000, flower_port: FlowerPort = 5555) -> None:
    """Start everything, run a sample tenant end to end, print the result, stop."""
    from shared.cli.demo import run_demo

    _interrupt_on_sigterm()
    running = launch.start(api_port, flower_port)
    launch.announce(running)
    try:
        run_demo(running.api_url, running.operator_key)
        info(f"the API was at {running.api_url}, Flower at {running.flower_url} (user {running.flower_user})")
    finally:
        info("stopping everything the demo started...")
        launch.stop(running)


@app.command(rich_help_panel=STACK)
def down() -> None:
    """Stop the embedded PostgreSQL and Redis running under the data directory (left by `migrate` and others)."""
    launch.down()


# Registered after the stack commands above, so `asora --help` shows its panels in this order.
app.add_typer(admin.tenants_app, name="tenants", rich_help_panel=ADMIN)
app.add_typer(admin.keys_app, name="keys", rich_help_panel=ADMIN)
app.add_typer(admin.runs_app, name="runs", rich_help_panel=ADMIN)
app.add_typer(ops_app, name="ops", rich_help_panel=ADMIN)
app.add_typer(ledger_app, name="ledger", rich_help_panel=ADMIN)
app.add_typer(items_app, name="items", rich_help_panel=TENANT)
app.command("run", rich_help_panel=TENANT)(runs.run)
app.command("list-runs", rich_help_panel=TENANT)(runs.list_runs)
app.command("rollback", rich_help_panel=TENANT)(runs.rollback)
app.command("journal-entry", rich_help_panel=TENANT)(runs.journal_entry)
app.add_typer(export_app, name="export", rich_help_panel=TENANT)
app.add_typer(integrations_app, name="integrations", rich_help_panel=TENANT)
app.add_typer(valuation_app, name="valuation", rich_help_panel=TENANT)


if __name__ == "__main__":
    app()
