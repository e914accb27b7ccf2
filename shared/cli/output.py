"""Where the CLI's output goes: tables and JSON (the results) to stdout, messages and progress to stderr, and
files to a path or, for `-`, to stdout.

Tables never shorten a cell: id columns do not wrap, and a table wider than the terminal is printed at its
own width (the terminal wraps the lines; an id stays whole and can be copied). Consoles are made per call so
they follow the current stdout, stderr and COLUMNS (the test runner swaps them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

STDOUT = "-"
__all__ = [
    "STDOUT",
    "Written",
    "err",
    "escape",
    "info",
    "is_stdout",
    "out",
    "output_file",
    "print_json",
    "print_table",
    "progress",
    "row",
    "success",
    "table",
    "warn",
    "write_bytes",
]


def out() -> Console:
    return Console(soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def info(message: str) -> None:
    err().print(escape(message))


def success(message: str) -> None:
    err().print(f"[green]{escape(message)}[/green]")


def warn(message: str) -> None:
    err().print(f"[yellow]{escape(message)}[/yellow]")


def table(title: str, columns: Iterable[str], ids: Iterable[str] = (), right: Iterable[str] = ()) -> Table:
    """A table whose `ids` columns never wrap or shorten and whose `right` columns are right-aligned."""
    id_columns, right_columns = set(ids), set(right)
    result = Table(title=escape(title))
    for name in columns:
        result.add_column(name, no_wrap=name in id_columns, justify="right" if name in right_columns else "left")
    return result


def row(values: Iterable[Any]) -> list[str]:
    """Cells as text, escaped so that data is never read as rich markup; None is an empty cell."""
    return [escape("" if value is None else str(value)) for value in values]


def print_table(result: Table) -> None:
    console = out()
    needed = Measurement.get(console, console.options.update_width(10_000), result).minimum
    if needed > console.width:
        console = Console(width=needed)
    console.print(result)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def progress(*, bytes_total: bool = False) -> Progress:
    """A transient progress display on stderr: a bar with bytes for transfers, a spinner for waiting."""
    if bytes_total:
        columns: tuple[Any, ...] = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    else:
        columns = (SpinnerColumn(), TextColumn("{task.description}"))
    console = err()
    # Off when stderr is not a terminal: a log or a pipe gets the messages, not redrawn progress lines.
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)


class Written:
    """What was written: where, how many bytes, and their sha256."""

    def __init__(self, target: str) -> None:
        self.target, self.size, self._digest = target, 0, hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._digest.update(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.target, "bytes": self.size, "sha256": self.sha256}


@contextmanager
def output_file(path: Path) -> Iterator[tuple[IO[bytes], Written]]:
    """A binary stream for `path` (`-`: stdout). A file is written beside its final name and renamed when
    complete, so a failed download never leaves half a file under the name the user asked for."""
    if str(path) == STDOUT:
        stream = typer.get_binary_stream("stdout")
        yield stream, Written("<stdout>")
        stream.flush()
        return
    target = path.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream, Written(str(target))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, content: bytes) -> Written:
    with output_file(path) as (stream, written):
        stream.write(content)
        written.update(content)
    return written


def is_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == STDOUT
