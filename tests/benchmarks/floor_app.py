"""The floor `bench_http_floor` measures our API against: the same server (uvicorn, httptools, uvloop), the same
FastAPI, SQLAlchemy and psycopg, and no code of ours. Each route does what a tenant-scoped read does at its core
(set a transaction-local setting, read one row, commit), in one of the ways the stack allows. The database is
`ASORA_FLOOR_DATABASE_URL` (libpq form); connections are opened on first use."""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import psycopg
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

URL = os.environ.get("ASORA_FLOOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# As our API runs: 8 threads per process (ASORA_API_THREADS), a connection for each; three pools of them (one
# per way of talking to the database) per process stay well inside PostgreSQL's default 100 connections.
CONNECTIONS = 8
engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=CONNECTIONS, max_overflow=0)
Sessions = sessionmaker(engine)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = CONNECTIONS
    yield


app = FastAPI(lifespan=lifespan)
_SCOPE = "SELECT set_config('asora.floor', 'x', true)"
_pool: queue.SimpleQueue[psycopg.Connection[Any]] | None = None
_async_pool: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None


@app.get("/async")
async def no_database_async() -> dict[str, int]:
    return {"ok": 1}


@app.get("/sync")
def no_database_sync() -> dict[str, int]:
    return {"ok": 1}


@app.get("/orm-session")
def orm_session() -> dict[str, int]:
    with Sessions() as session:
        session.execute(text(_SCOPE))
        value = session.execute(text("SELECT 1")).scalar_one()
        session.commit()
    return {"ok": value}


@app.get("/core-connection")
def core_connection() -> dict[str, int]:
    with engine.connect() as connection:
        connection.exec_driver_sql(_SCOPE)
        value = connection.exec_driver_sql("SELECT 1").scalar_one()
        connection.commit()
    return {"ok": value}


@app.get("/psycopg")
def plain_psycopg() -> dict[str, int]:
    global _pool
    if _pool is None:
        _pool = queue.SimpleQueue()
        for _ in range(CONNECTIONS):
            _pool.put(psycopg.connect(URL))
    connection = _pool.get()
    try:
        connection.execute(_SCOPE)
        row = connection.execute("SELECT 1").fetchone()
        connection.commit()
    finally:
        _pool.put(connection)
    return {"ok": row[0] if row else 0}


@app.get("/psycopg-async")
async def async_psycopg() -> dict[str, int]:
    global _async_pool
    if _async_pool is None:
        made: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for _ in range(CONNECTIONS):
            made.put_nowait(await psycopg.AsyncConnection.connect(URL))
        _async_pool = made
    connection = await _async_pool.get()
    try:
        await connection.execute(_SCOPE)
        row = await (await connection.execute("SELECT 1")).fetchone()
        await connection.commit()
    finally:
        _async_pool.put_nowait(connection)
    return {"ok": row[0] if row else 0}
