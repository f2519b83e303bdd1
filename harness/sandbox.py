"""`sandbox`: a command run beside a throwaway PostgreSQL (pg.py's, the one
every run of the harness uses), for the checks that need a database but
measure nothing: scripts/check_http.sh, check_openapi.sh and
check_docker.sh re-run themselves inside it. They start the server
themselves, since each needs flags of its own (an unreachable database, a
container)."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from harness import cpu, pg, tools
from harness.tools import ROOT, Cleanup, Fatal, Interrupted, ensure_tools

DESCRIPTION = """\
Creates a throwaway PostgreSQL cluster (initdb in a temp dir, a free port on
127.0.0.1, no durability; as the `postgres` user when run as root) with an
empty database `bakeoff`, seeds it with `BINARY seed --contacts N` when
--contacts is given, and runs COMMAND with these in its environment:

  DATABASE_URL     postgresql://postgres@127.0.0.1:PORT/bakeoff
  BAKEOFF_SANDBOX  a scratch directory for COMMAND's own files

When COMMAND exits, the cluster is stopped and both directories are removed;
the sandbox exits with COMMAND's status (128+N when signal N ended it).
Ctrl-C or SIGTERM reach COMMAND too, which is waited for before the cleanup;
then the sandbox dies of the same signal. Nothing is built: BINARY must exist
when --contacts is given.

Example:
  python3 -m harness sandbox --contacts 100 --binary target/debug/bakeoff -- \\
      sh -c 'psql "$DATABASE_URL" -c "SELECT count(*) FROM contacts"'
"""

# The checks open a pool or two; PostgreSQL's own default leaves room.
MAX_CONNECTIONS = 100


def contact_count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, not '{text}'")
    return int(text)


def add_parser(sub, _prog=None):
    """Registers `sandbox`."""
    subparser = sub.add_parser(
        "sandbox",
        help="run a command beside a throwaway PostgreSQL (the check_*.sh scripts)",
        description=DESCRIPTION,
        usage="%(prog)s [--contacts N] [--binary PATH] -- COMMAND [ARGS...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparser.add_argument(
        "--contacts",
        type=contact_count,
        metavar="N",
        help="seed the database with N contacts (default: leave it empty)",
    )
    subparser.add_argument(
        "--binary",
        default=os.path.join(ROOT, "target", "release", "bakeoff"),
        metavar="PATH",
        help="the bakeoff binary that seeds (default target/release/bakeoff)",
    )
    subparser.add_argument("command", nargs="+", metavar="COMMAND")
    subparser.set_defaults(
        func=lambda options, _argv: run(options.command, options.contacts, options.binary)
    )
    return subparser


def run(command, contacts=None, binary=None):
    """Runs command beside a fresh database; returns its exit status."""
    if contacts is not None and not os.access(binary, os.X_OK):
        raise Fatal(f"no {binary} to seed the database with: build it first, or give --binary")
    ensure_tools(
        ["initdb", "pg_ctl", "postgres", "psql"] + (["runuser"] if os.geteuid() == 0 else [])
    )
    cleanup = Cleanup()
    try:
        tmp = tempfile.mkdtemp(prefix="bakeoff-sandbox.", dir=os.environ.get("TMPDIR") or "/tmp")
        cleanup.push(lambda: shutil.rmtree(tmp, ignore_errors=True))
        # "proc" accounting starts every command as it is: nothing is measured here.
        accounting = cpu.Accounting(force_method="proc")
        db = pg.Postgres.throwaway(tmp, MAX_CONNECTIONS, "tcp", accounting, [])
        cleanup.push(db.stop)
        if contacts is not None:
            db.seed(binary, contacts)
        scratch = os.path.join(tmp, "scratch")
        os.mkdir(scratch)
        return run_command(command, dict(os.environ, DATABASE_URL=db.url, BAKEOFF_SANDBOX=scratch))
    finally:
        cleanup.run()


def run_command(command, env):
    """Runs command and waits for it; its exit status, 128+N when signal N
    ended it (as a shell reports it). A SIGINT or SIGTERM to the sandbox
    reaches it too, and it is waited for before Interrupted goes on up: it
    may have children of its own to stop before the database goes."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        process = subprocess.Popen(command, env=env)
    except OSError as error:
        raise Fatal(f"cannot run {command[0]}: {error}") from error
    try:
        status = process.wait()
    except Interrupted as interrupted:
        tools.stop_child_and_wait(process, interrupted.signum)
        raise
    return 128 - status if status < 0 else status
