"""The workload table: each workload's request, wrk script, ceiling, and the
SQL its pgbench ceiling runs (generated from sql/, so it cannot drift from
what the server runs)."""

import os
import re
from dataclasses import dataclass, field

from harness.tools import ROOT

# Requests per write in version_pipelined (scripts/wrk/pipeline.lua).
PIPELINE_DEPTH = 16


@dataclass(frozen=True)
class Workload:
    """One row of the table."""

    # The name used in --only, the table and the JSON.
    name: str
    # Appended to the server's base URL (contact_random: the id is appended per request).
    path: str
    # What bounds it: "nginx" (the same /version body from memory), "pgbench"
    # (the same SQL) or "none" (fib25 is pure CPU in the server).
    ceiling: str
    # The sql/ file the server runs for it, and the values of $1 $2 $3 exactly
    # as the server passes them for this URL; "random" is an id drawn from
    # 1..contacts per transaction, as random_contact.lua draws one per request.
    sql_file: str = ""
    sql_params: tuple = ()
    # Session settings of the server's connections for this statement
    # (src/db.rs), so that pgbench plans it the same way: the `starts` page
    # is planned for its parameters on every call.
    pgoptions: str = ""
    # wrk's Lua script in scripts/wrk/ and its arguments after `--`.
    wrk_script: str = "report.lua"
    wrk_args: tuple = field(default=())
    # run.sh measures it at fixed offered rates too (oha; and its ceiling at
    # the same rates: pgbench --rate, or nginx for /version).
    rated: bool = False

    @property
    def uses_database(self):
        return self.ceiling == "pgbench"


# In the order they run.
WORKLOADS = (
    Workload("version", "/version", "nginx", rated=True),
    Workload("types", "/types", "pgbench", "types.sql", rated=True),
    Workload(
        "fetch100", "/contacts/fetch?limit=100", "pgbench", "page.sql", ("100", "0"), rated=True
    ),
    Workload("for100", "/contacts/for?limit=100", "pgbench", "page.sql", ("100", "0"), rated=True),
    Workload(
        "fetch_starts",
        "/contacts/fetch?limit=10&starts=m",
        "pgbench",
        "page_starts.sql",
        ("10", "0", "m"),
        pgoptions="-c plan_cache_mode=force_custom_plan",
        rated=True,
    ),
    Workload(
        "contact_random",
        "/contacts/",
        "pgbench",
        "contact.sql",
        ("random",),
        wrk_script="random_contact.lua",
        wrk_args=("CONTACTS",),
        rated=True,
    ),
    Workload("fib25", "/fibonacci/25", "none"),
    Workload(
        "version_pipelined",
        "/version",
        "nginx",
        wrk_script="pipeline.lua",
        wrk_args=(str(PIPELINE_DEPTH),),
    ),
)

BY_NAME = {workload.name: workload for workload in WORKLOADS}

# The study measures these again at other connection counts (--concurrency).
CONCURRENCY_WORKLOADS = ("types", "fetch100")

# fastapi_asyncpg's /contacts/for split into its parts (the study's extra
# windows): the route, and what it isolates; at each page size.
SPLIT_SYSTEM = "fastapi_asyncpg"
SPLIT_ROUTES = (
    ("fetch", "/contacts/fetch", "fetch, no transaction"),
    ("fetch_in_tx", "/experiments/fetch_in_tx", "fetch inside a transaction"),
    (
        "cursor_prefetch",
        "/experiments/cursor_prefetch",
        "cursor, prefetch = page size + 1: one Execute",
    ),
    ("for", "/contacts/for", "cursor inside a transaction (the study's /contacts/for)"),
)
SPLIT_LIMITS = (10, 100, 200)


def select(only):
    """The workloads named in a comma-separated --only, in the table's order
    whatever order they were given in; all of them for an empty one."""
    if not only:
        return list(WORKLOADS)
    wanted = [workload for workload in only.split(",") if workload]
    for name in wanted:
        if name not in BY_NAME:
            raise ValueError(
                f"unknown workload '{name}'; the workloads are: "
                f"{' '.join(workload.name for workload in WORKLOADS)}"
            )
    return [workload for workload in WORKLOADS if workload.name in wanted]


def wrk_arguments(workload, contacts):
    """The words after `--` on wrk's command line."""
    return [str(contacts) if arg == "CONTACTS" else arg for arg in workload.wrk_args]


def sql_to_pgbench(sql_text):
    """A statement of sql/ as a pgbench script line: whole-line comments
    dropped (pgbench would scan them for :variables), $N turned into the
    pgbench variable :pN, and a closing semicolon."""
    lines = [line for line in sql_text.splitlines() if not re.match(r"^\s*--", line)]
    body = re.sub(r"\$([0-9]+)", r":p\1", "\n".join(lines)).rstrip()
    return body + "\n;\n"


def pgbench_script(workload, contacts, pipeline_depth=0):
    """The pgbench script of a database workload. With pipeline_depth > 0,
    that many statements between \\startpipeline and \\endpipeline: one
    transaction is then `depth` queries in flight on one connection."""
    with open(os.path.join(ROOT, "sql", workload.sql_file), encoding="utf-8") as file:
        statement = sql_to_pgbench(file.read())
    random_id = workload.sql_params[:1] == ("random",)
    head = f"\\set p1 random(1, {contacts})\n" if random_id else ""
    if pipeline_depth <= 0:
        return head + statement
    # Each statement of a pipeline draws its own id, like separate requests.
    parts = ["\\startpipeline\n"]
    for _ in range(pipeline_depth):
        parts.append(head + statement)
    parts.append("\\endpipeline\n")
    return "".join(parts)


def pgbench_variables(workload):
    """The -D NAME=VALUE definitions of a workload's fixed parameters."""
    return [
        f"p{index}={value}"
        for index, value in enumerate(workload.sql_params, start=1)
        if value != "random"
    ]
