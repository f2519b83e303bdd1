"""The contacts API on FastAPI + asyncpg (see shared/API.md)."""

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import FastAPI, HTTPException, Path, Query, Request
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
PAGE_SQL = CONTACT_COLUMNS + "ORDER BY c.contact_id LIMIT $1 OFFSET $2"
PAGE_STARTS_SQL = (
    CONTACT_COLUMNS
    + "WHERE lower(c.last_name) LIKE lower($3) || '%' "
    + "ORDER BY c.contact_id LIMIT $1 OFFSET $2"
)
CONTACT_SQL = CONTACT_COLUMNS + "WHERE c.contact_id = $1"
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


# Behind PgBouncer in transaction mode (BAKEOFF_POOLER=pgbouncer), successive
# transactions of one client connection may run on different server
# connections, so a named prepared statement made on one may be missing (or
# another client's) on the next. Pooled, the statement cache is off: asyncpg
# then prepares every query anew as the unnamed statement, parsed again in the
# same message batch as its Bind and Execute (asyncpg's FAQ for PgBouncer).
POOLED = os.environ.get("BAKEOFF_POOLER") == "pgbouncer"


@asynccontextmanager
async def lifespan(app: FastAPI):
    pool_size = int(os.environ.get("POOL_SIZE", "10"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"],
        min_size=pool_size,
        max_size=pool_size,
        **({"statement_cache_size": 0} if POOLED else {}),
    )
    # /experiments/fibonacci_process: one process pool per worker process,
    # created after uvicorn forked the worker. Its size is the default, one
    # process per core (os.cpu_count()), as a developer would leave it.
    app.state.processes = ProcessPoolExecutor()
    yield
    app.state.processes.shutdown(cancel_futures=True)
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2147483647)]
Starts = Annotated[str | None, Query(min_length=1, max_length=100)]
N = Annotated[int, Path(ge=0, le=40)]


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_query(limit: int, offset: int, starts: str | None) -> tuple:
    if starts is None:
        return PAGE_SQL, limit, offset
    return PAGE_STARTS_SQL, limit, offset, escape_like(starts)


async def cursor(connection: asyncpg.Connection, query: str, *args, prefetch=None):
    """connection.cursor(query, *args); pooled, over the unnamed statement.

    Connection.cursor() prepares a named statement even with the statement
    cache off, and closes it only when the connection next prepares one, in
    another transaction, so behind PgBouncer on another server connection:
    the statement stays where it was made. Since asyncpg 0.31 a statement
    from Connection.prepare() is the unnamed one when the cache is off.
    """
    if POOLED:
        statement = await connection.prepare(query)
        return statement.cursor(*args, prefetch=prefetch)
    return connection.cursor(query, *args, prefetch=prefetch)


def to_contact(row: asyncpg.Record) -> Contact:
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
    rows = await request.app.state.pool.fetch(TYPES_SQL)
    return [ContactType(**row) for row in rows]


@app.get("/contacts/fetch")
async def contacts_fetch(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(*page_query(limit, offset, starts))
    return [to_contact(row) for row in rows]


@app.get("/contacts/for")
async def contacts_for(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    contacts = []
    async with request.app.state.pool.acquire() as connection:
        async with connection.transaction():
            async for row in await cursor(connection, *page_query(limit, offset, starts)):
                contacts.append(to_contact(row))
    return contacts


# Experiments, not part of the contract (peers/README.md, "asyncpg's
# /contacts/for, split"): the same page, the same bytes as /contacts/for, each
# one step from it and from /contacts/fetch.


@app.get("/experiments/fetch_in_tx")
async def experiments_fetch_in_tx(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    """/contacts/fetch's `fetch` inside /contacts/for's transaction."""
    async with request.app.state.pool.acquire() as connection:
        async with connection.transaction():
            rows = await connection.fetch(*page_query(limit, offset, starts))
    return [to_contact(row) for row in rows]


@app.get("/experiments/cursor_prefetch")
async def experiments_cursor_prefetch(
    request: Request, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[Contact]:
    """/contacts/for's cursor, fetching the whole page with its first Execute.

    prefetch is limit + 1, not limit: PostgreSQL ends a portal (CommandComplete)
    only when an Execute returns fewer rows than it asked for; a full page
    fetched with prefetch=limit leaves the portal suspended, and asyncpg sends
    a second Execute, which returns no row, to learn that it is exhausted.
    """
    contacts = []
    async with request.app.state.pool.acquire() as connection:
        async with connection.transaction():
            page = await cursor(connection, *page_query(limit, offset, starts), prefetch=limit + 1)
            async for row in page:
                contacts.append(to_contact(row))
    return contacts


@app.get("/contacts/{contact_id}")
async def contact(
    request: Request, contact_id: Annotated[int, Path(ge=0, le=2147483647)]
) -> Contact:
    row = await request.app.state.pool.fetchrow(CONTACT_SQL, contact_id)
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
