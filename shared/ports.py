"""Local TCP ports: a free one for a server we are about to start, and whether one is already taken.

The one place that answers these questions, for `asora up` (which checks its ports before starting anything),
the embedded Redis and the tests.
"""

from __future__ import annotations

import errno
import socket

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A port nobody listens on now (the kernel's choice); another process may still take it before we do."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True when a server could not bind `host:port` now, or something already answers there.

    The bind uses SO_REUSEADDR as uvicorn and Flower do, so a port left in TIME_WAIT by a stopped server
    counts as free (they would bind it); the connect catches a listener on another address of this host."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def port_holder(port: int) -> str | None:
    """Best effort: 'pid 1234 (uvicorn)' for the local process listening on `port`, when we may see it."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None
