"""The failure tests' load: an open-loop client at a fixed rate that records
every request (intended send time, status, body checked, latency), and the
bodies it expects, computed from the tables with SQL, never from a server's
output (Jepsen's habit: every acknowledged answer is checked).

Request i is due at start + i / rate whatever happened to the others (open
model: a stalled server does not slow the client down, and latency counts
from the due time, wrk2's correction). Each request has `timeout` seconds
from its due time, connection included; past that, or on a connection error,
it is `failed` (status 0). HTTP/1.1 keep-alive, at most `connections` at
once, in an asyncio loop on a thread of its own, so that the test can break
things meanwhile. Python does a few hundred requests a second this way: that
caps the rate of the tests, not the deployment.

The mix: 4 in 5 requests are /contacts/{id} for a random id of the seeded
ones, the fifth /types, both answered from the database (through every layer:
front, instance, pooler, primary).
"""

import asyncio
import csv
import dataclasses
import io
import json
import random
import subprocess
import threading
import time
import urllib.parse

from harness.tools import Fatal, need_tool


@dataclasses.dataclass
class Answer:
    """One request: times are time.monotonic() seconds."""

    intended: float
    path: str
    sent: float = 0.0
    done: float = 0.0
    status: int = 0  # 0: failed (connection error or timeout)
    ok: bool = False  # a 200 whose body is the expected one
    error: str = ""

    @property
    def latency(self):
        return self.done - self.intended


def _json(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def contact_body(contact_id, first, last, type_id, type_name, phones, emails):
    """A Contact as shared/API.md writes it: keys in this order, arrays
    always present, no whitespace, UTF-8."""
    return _json(
        {
            "contact_id": contact_id,
            "first_name": first,
            "last_name": last,
            "contact_type": {"type_id": type_id, "type_name": type_name},
            "phone_number": phones,
            "email": emails,
        }
    )


def types_body(rows):
    return _json([{"type_id": type_id, "type_name": name} for type_id, name in rows])


def _copy(url, query):
    """Rows of a query, through psql's COPY ... csv (exact text, any byte)."""
    result = subprocess.run(
        [
            need_tool("psql"),
            "-X",
            "-q",
            "-d",
            url,
            "-c",
            f"COPY ({query}) TO STDOUT WITH (FORMAT csv)",
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise Fatal(f"cannot read the expected answers: {result.stderr.decode().strip()}")
    return list(csv.reader(io.StringIO(result.stdout.decode("utf-8"), newline="")))


class Expected:
    """Every expected body of the mix, by path."""

    def __init__(self, bodies):
        self.bodies = bodies
        self.contact_paths = sorted(p for p in bodies if p.startswith("/contacts/"))

    @classmethod
    def from_database(cls, url):
        types = [
            (int(row[0]), None if row[2] == "t" else row[1])
            for row in _copy(
                url,
                "SELECT type_id, coalesce(type_name, ''), type_name IS NULL "
                "FROM contact_types ORDER BY type_id",
            )
        ]
        names = dict(types)
        phones, emails = {}, {}
        for target, table, column, key in (
            (phones, "contact_phones", "phone_number", "phone_id"),
            (emails, "contact_emails", "email_address", "email_id"),
        ):
            query = (
                f"SELECT contact_id, {column} FROM {table} WHERE {column} IS NOT NULL "
                f"ORDER BY contact_id, {key}"
            )
            for contact_id, value in _copy(url, query):
                target.setdefault(int(contact_id), []).append(value)
        bodies = {"/types": types_body(types)}
        query = (
            "SELECT contact_id, first_name, last_name, type_id FROM contacts ORDER BY contact_id"
        )
        for contact_id, first, last, type_id in _copy(url, query):
            cid, tid = int(contact_id), int(type_id)
            bodies[f"/contacts/{cid}"] = contact_body(
                cid, first, last, tid, names.get(tid), phones.get(cid, []), emails.get(cid, [])
            )
        if len(bodies) < 2:
            raise Fatal("no contacts in the database: nothing to check answers against")
        return cls(bodies)

    def pick(self, rng):
        if rng.random() < 0.2:
            return "/types"
        return rng.choice(self.contact_paths)


# Idle connections older than this are closed, not reused (HAProxy keeps an
# idle client connection for 10 s).
IDLE_LIMIT_S = 5.0


class ProtocolError(Exception):
    pass


async def read_response(reader):
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body, keep_alive
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"])), keep_alive
    return status, await reader.read(), False


class OpenLoop:
    """The client: start(), then stop() → every Answer, in due order."""

    def __init__(self, base_url, rate, expected, timeout=2.0, connections=64, seed=1):
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.rate = rate
        self.expected = expected
        self.timeout = timeout
        self.connections = connections
        self.rng = random.Random(seed)
        self.answers = []
        self.started = self.stopped = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._error = None

    def start(self):
        self._thread.start()
        while self.started is None and self._thread.is_alive():
            time.sleep(0.01)
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(self.timeout + 30)
        if self._error:
            raise self._error
        return self.answers

    async def _run(self):
        try:
            await self._loop()
        except Exception as error:  # noqa: BLE001 (reported by stop())
            self._error = error

    async def _loop(self):
        self._idle = []
        self._slots = asyncio.Semaphore(self.connections)
        tasks = set()
        self.started = time.monotonic()
        index = 0
        while not self._stop.is_set():
            due = self.started + index / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            answer = Answer(intended=due, path=self.expected.pick(self.rng))
            self.answers.append(answer)
            task = asyncio.create_task(self._one(answer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        self.stopped = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 5)
        for _, writer, _ in self._idle:
            writer.close()

    def _take_idle(self):
        """The most recently used idle connection that is not too old: a
        connection idle for longer than the front keeps it (HAProxy's
        `timeout http-keep-alive`, 10 s) may be closed while the request is
        sent on it, and its request lost (seen: a few failed requests, each
        on a connection reused 10 s after its last answer). Every HTTP client
        must keep its idle timeout below the server's."""
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < IDLE_LIMIT_S:
                return reader, writer, now - since
            writer.close()
        return None

    async def _one(self, answer):
        connection = None
        try:
            async with asyncio.timeout_at(answer.intended + self.timeout):
                async with self._slots:
                    connection = self._take_idle()
                    if connection is None:
                        connection = (*await asyncio.open_connection(self.host, self.port), None)
                    reader, writer, idle = connection
                    answer.sent = time.monotonic()
                    writer.write(
                        f"GET {answer.path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
                    )
                    status, body, keep_alive = await read_response(reader)
            answer.done = time.monotonic()
            answer.status = status
            answer.ok = status == 200 and body == self.expected.bodies[answer.path]
            if status == 200 and not answer.ok:
                answer.error = f"body {body[:200]!r}"
            if keep_alive:
                self._idle.append((reader, writer, time.monotonic()))
                connection = None
        except (
            TimeoutError,
            OSError,
            ProtocolError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as error:
            answer.done = time.monotonic()
            answer.status = 0
            answer.error = type(error).__name__
            if connection is not None and connection[2] is not None:
                answer.error += f" (on a connection reused after {connection[2]:.1f} s idle)"
        finally:
            if connection is not None:
                connection[1].close()
