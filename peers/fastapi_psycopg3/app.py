"""The contacts API on FastAPI + psycopg 3 (async, psycopg_pool) (see shared/API.md).

psycopg 3 is the maintained successor of psycopg2, and with its async
connections and `AsyncConnectionPool` the successor of aiopg (no release
since 2022) too: this row is ../fastapi_aiopg written for it.
"""

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

VERSION = "0.1.0"

CONTACT_COLUMNS = """
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name,
       ARRAY(SELECT p.phone_number FROM contact_phones p
             WHERE p.contact_id = c.contact_id AND p.phone_number IS NOT NULL
             ORDER BY p.phone_id) AS phone_number,
       ARRAY(SELECT e.email_address FROM contact_emails e
             WHERE e.contact_id = c.contact_id AND e.email_address IS NOT NULL
             ORDER BY e.email_id) AS email
FROM contacts c
JOIN contact_types t ON t.type_id = c.type_id
"""
PAGE_SQL = CONTACT_COLUMNS + "ORDER BY c.contact_id LIMIT %(limit)s OFFSET %(offset)s"
PAGE_STARTS_SQL = (
    CONTACT_COLUMNS
    + "WHERE lower(c.last_name) LIKE lower(%(starts)s) || '%%' "
    + "ORDER BY c.contact_id LIMIT %(limit)s OFFSET %(offset)s"
)
CONTACT_SQL = CONTACT_COLUMNS + "WHERE c.contact_id = %(contact_id)s"
TYPES_SQL = "SELECT type_id, type_name FROM contact_types ORDER BY type_id"


class ContactType(BaseModel):
    type_id: int
    type_name: str | None


class Contact(BaseModel):
    contact_id: int
    first_name: str
    last_name: str
    contact_type: ContactType
    phone_number: list[str]
    email: list[str]


class Version(BaseModel):
    version: str


class Fibonacci(BaseModel):
    result: int


# psycopg 3 binds parameters on the server (the extended protocol) and, from
# the fifth execution of a query on a connection (prepare_threshold, default
# 5), prepares it as a named statement. Behind PgBouncer in transaction mode
# (BAKEOFF_POOLER=pgbouncer) a named statement made on one server connection
# may be missing, or another client's, on the next: psycopg's documentation
# ("Using prepared statements with PgBouncer") asks to turn preparation off
# with prepare_threshold=None, unless PgBouncer is 1.22 or newer with
# max_prepared_statements > 0 (and libpq 17). Each query is then parsed anew,
# in the same batch as its Bind and Execute.
POOLED = os.environ.get("BAKEOFF_POOLER") == "pgbouncer"


@asynccontextmanager
async def lifespan(app: FastAPI):
    # A fixed pool (max_size defaults to min_size) of POOL_SIZE connections
    # per worker process, as the other FastAPI rows have: 10 by default.
    # Autocommit: each query is its own transaction, as with asyncpg's and
    # aiopg's pools; otherwise psycopg opens a transaction (BEGIN) before the
    # first query and the pool commits it when the connection comes back: two
    # round trips more per request for read-only endpoints.
    pool = AsyncConnectionPool(
        os.environ["DATABASE_URL"],
        min_size=int(os.environ.get("POOL_SIZE", "10")),
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            **({"prepare_threshold": None} if POOLED else {}),
        },
        open=False,
    )
    await pool.open(wait=True)
    app.state.pool = pool
    # /experiments/fibonacci_process: one process pool per worker process,
    # created after uvicorn forked the worker. Its size is the default, one
    # process per core (os.cpu_count()), as a developer would leave it.
    app.state.processes = ProcessPoolExecutor()
    yield
    app.state.processes.shutdown(cancel_futures=True)
    await pool.close()


app = FastAPI(lifespan=lifespan)

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2147483647)]
Starts = Annotated[str | None, Query(min_length=1, max_length=100)]
N = Annotated[int, Path(ge=0, le=40)]


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_query(limit: int, offset: int, starts: str | None) -> tuple[str, dict]:
    params = {"limit": limit, "offset": offset}
    if starts is None:
        return PAGE_SQL, params
    return PAGE_STARTS_SQL, params | {"starts": escape_like(starts)}


def to_contact(row: dict) -> Contact:
    return Contact(
        contact_id=row["contact_id"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        contact_type=ContactType(type_id=row["type_id"], type_name=row["type_name"]),
        phone_number=row["phone_number"],
        email=row["email"],
    )


def fib(n: int) -> int:
    return 1 if n < 2 else fib(n - 1) + fib(n - 2)


@app.get("/version")
async def version() -> Version:
    return Version(version=VERSION)


@app.get("/types")
async def types(request: Request) -> list[ContactType]:
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(TYPES_SQL)
        rows = await cur.fetchall()
    return [ContactType(**row) for row in rows]


@app.get("/contacts/fetch")
async def contacts_fetch(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(*page_query(limit, offset, starts))
        rows = await cur.fetchall()
    return [to_contact(row) for row in rows]


@app.get("/contacts/for")
async def contacts_for(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    """The rows one by one as PostgreSQL sends them: Cursor.stream() reads the
    result in libpq's single-row mode."""
    contacts = []
    async with request.app.state.pool.connection() as conn, conn.cursor() as cur:
        async for row in cur.stream(*page_query(limit, offset, starts)):
            contacts.append(to_contact(row))
    return contacts


@app.get("/contacts/{contact_id}")
async def contact(
    request: Request, contact_id: Annotated[int, Path(ge=0, le=2147483647)]
) -> Contact:
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(CONTACT_SQL, {"contact_id": contact_id})
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="Contact not found")
    return to_contact(row)


@app.get("/fibonacci/{n}")
async def fibonacci(n: N) -> Fibonacci:
    return Fibonacci(result=fib(n))


# Experiments, not part of the contract (peers/README.md, "Computation off
# the event loop"): /fibonacci/{n}'s answer, computed where it does not hold
# the worker's event loop.


@app.get("/experiments/fibonacci_thread/{n}")
def fibonacci_thread(n: N) -> Fibonacci:
    """A plain `def` endpoint: FastAPI runs it in Starlette's thread pool
    (anyio's, 40 threads by default)."""
    return Fibonacci(result=fib(n))


@app.get("/experiments/fibonacci_process/{n}")
async def fibonacci_process(request: Request, n: N) -> Fibonacci:
    """fib(n) in the worker's process pool (lifespan above)."""
    result = await asyncio.get_running_loop().run_in_executor(request.app.state.processes, fib, n)
    return Fibonacci(result=result)
