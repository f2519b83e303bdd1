"""The contacts API on FastAPI + the SQLAlchemy 2 async ORM over asyncpg
(see shared/API.md)."""

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

VERSION = "0.1.0"


# --- models ---------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class ContactType(Base):
    __tablename__ = "contact_types"

    type_id: Mapped[int] = mapped_column(primary_key=True)
    type_name: Mapped[str | None] = mapped_column(String(30))


class Contact(Base):
    __tablename__ = "contacts"

    contact_id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    type_id: Mapped[int] = mapped_column(ForeignKey("contact_types.type_id"))

    contact_type: Mapped[ContactType] = relationship()
    phones: Mapped[list["ContactPhone"]] = relationship(order_by="ContactPhone.phone_id")
    emails: Mapped[list["ContactEmail"]] = relationship(order_by="ContactEmail.email_id")


class ContactPhone(Base):
    __tablename__ = "contact_phones"

    phone_id: Mapped[int] = mapped_column(primary_key=True)
    phone_number: Mapped[str | None] = mapped_column(String(30))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.contact_id"))


class ContactEmail(Base):
    __tablename__ = "contact_emails"

    email_id: Mapped[int] = mapped_column(primary_key=True)
    email_address: Mapped[str | None] = mapped_column(String(256))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.contact_id"))


# --- schemas --------------------------------------------------------------


class ContactTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    type_id: int
    type_name: str | None


class ContactOut(BaseModel):
    contact_id: int
    first_name: str
    last_name: str
    contact_type: ContactTypeOut
    phone_number: list[str]
    email: list[str]

    @classmethod
    def from_orm_contact(cls, contact: Contact) -> "ContactOut":
        return cls(
            contact_id=contact.contact_id,
            first_name=contact.first_name,
            last_name=contact.last_name,
            contact_type=ContactTypeOut.model_validate(contact.contact_type),
            phone_number=[p.phone_number for p in contact.phones if p.phone_number is not None],
            email=[e.email_address for e in contact.emails if e.email_address is not None],
        )


class Version(BaseModel):
    version: str


class Fibonacci(BaseModel):
    result: int


# --- application ----------------------------------------------------------

# Behind PgBouncer in transaction mode (BAKEOFF_POOLER=pgbouncer), successive
# transactions of one client connection may run on different server
# connections, where a named prepared statement may be missing or another
# client's. Pooled, both statement caches are off, as SQLAlchemy's asyncpg
# dialect documents: its own (prepared_statement_cache_size=0) and asyncpg's
# (statement_cache_size=0). SQLAlchemy then calls asyncpg's prepare() without
# a name for each statement, which since asyncpg 0.31 (0.32 here) is the
# unnamed statement, so no names can collide; SQLAlchemy's
# prepared_statement_name_func (uuid names, for when they do) is not needed,
# and would leave a named statement on a server connection per query.
POOLED = os.environ.get("BAKEOFF_POOLER") == "pgbouncer"

engine = create_async_engine(
    make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+asyncpg"),
    pool_size=int(os.environ.get("POOL_SIZE", "5")),
    connect_args=(
        {"prepared_statement_cache_size": 0, "statement_cache_size": 0} if POOLED else {}
    ),
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # /experiments/fibonacci_process: one process pool per worker process,
    # created after uvicorn forked the worker. Its size is the default, one
    # process per core (os.cpu_count()), as a developer would leave it.
    app.state.processes = ProcessPoolExecutor()
    yield
    app.state.processes.shutdown(cancel_futures=True)
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_session():
    async with SessionLocal() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2147483647)]
Starts = Annotated[str | None, Query(min_length=1, max_length=100)]
N = Annotated[int, Path(ge=0, le=40)]


def contacts_query():
    return select(Contact).options(
        joinedload(Contact.contact_type),
        selectinload(Contact.phones),
        selectinload(Contact.emails),
    )


def page_query(limit: int, offset: int, starts: str | None):
    query = contacts_query()
    if starts is not None:
        query = query.where(Contact.last_name.istartswith(starts, autoescape=True))
    return query.order_by(Contact.contact_id).limit(limit).offset(offset)


def fib(n: int) -> int:
    return 1 if n < 2 else fib(n - 1) + fib(n - 2)


@app.get("/version")
async def version() -> Version:
    return Version(version=VERSION)


@app.get("/types")
async def types(session: Session) -> list[ContactTypeOut]:
    result = await session.scalars(select(ContactType).order_by(ContactType.type_id))
    return [ContactTypeOut.model_validate(t) for t in result]


@app.get("/contacts/fetch")
async def contacts_fetch(
    session: Session, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[ContactOut]:
    result = await session.scalars(page_query(limit, offset, starts))
    return [ContactOut.from_orm_contact(c) for c in result]


@app.get("/contacts/for")
async def contacts_for(
    session: Session, limit: Limit = 100, offset: Offset = 0, starts: Starts = None
) -> list[ContactOut]:
    result = await session.stream_scalars(page_query(limit, offset, starts))
    return [ContactOut.from_orm_contact(c) async for c in result]


@app.get("/contacts/{contact_id}")
async def contact(
    session: Session, contact_id: Annotated[int, Path(ge=0, le=2147483647)]
) -> ContactOut:
    found = await session.scalar(contacts_query().where(Contact.contact_id == contact_id))
    if found is None:
        raise HTTPException(status_code=404, detail="Contact not found")
    return ContactOut.from_orm_contact(found)


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
