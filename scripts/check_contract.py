#!/usr/bin/env python3
"""Checks a running server against the contract in shared/API.md (the
HTTP/1.1 suites are tests/conformance.rs's, not this).

    scripts/check_contract.py URL [--name NAME] [--json OUT] [--slow]

URL is the server's base, e.g. http://127.0.0.1:8000. Each rule of the
contract is one row: the checker sends its requests over raw sockets (so that
the exact bytes of a request target, HEAD, keep-alive and pipelining are under
its control) and prints a table of rule -> PASS/FAIL with the first reasons
of a failure. It exits 1 if any rule fails, 2 on a usage error or an unreachable URL.

It cannot read the database, so for data it checks shapes and
cross-consistency (fetch == for, byte for byte; a contact by id equals the
element of a page; a `starts` page only holds matching names; limit and offset
slice the same ordering), and exact bodies only where the contract fixes them
(version, types, errors, fibonacci). It expects the seeded sample data
(`bakeoff seed`), whose names include O'Brien and Müller.

The 503 while the database is down cannot be provoked through the URL, so it
is not checked here. fib(40) takes seconds to minutes in an interpreter (about
10 s on CPython 3.11 here), so the upper bound of n is only exercised with
--slow (the row is SKIP otherwise).

Python standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

EXPECTED_TYPES = (
    b'[{"type_id":1,"type_name":"Relatives"},{"type_id":2,"type_name":"Friends"},'
    b'{"type_id":3,"type_name":"Colleagues"}]'
)
CONTACT_KEYS = ["contact_id", "first_name", "last_name", "contact_type", "phone_number", "email"]
INT32_MAX = 2147483647
NOT_FOUND = b'{"detail":"Not Found"}'
CONTACT_NOT_FOUND = b'{"detail":"Contact not found"}'
METHOD_NOT_ALLOWED = b'{"detail":"Method Not Allowed"}'
# Strings that betray a stack trace, SQL text or a connection string.
LEAKS = [
    b"Traceback",
    b"traceback",
    b"SELECT",
    b"select ",
    b"postgres",
    b"psycopg",
    b"asyncpg",
    b"panic",
    b"goroutine",
    b"Exception",
    b'File "',
]
# Integers that break the rule `-?[0-9]+`, percent-encoded for a request target.
BAD_INTEGERS = [
    "+1",
    "%2B1",
    "%201",
    "1%20",
    "1.0",
    "1e1",
    "1_0",
    "abc",
    "0x1",
    "%EF%BC%91",
    "1-",
    "--1",
]  # %EF%BC%91: fullwidth digit one
FIB = {0: 1, 1: 1, 2: 2, 3: 3, 10: 89, 20: 10946, 25: 121393}
ENDPOINTS = [
    "/version",
    "/types",
    "/contacts/fetch",
    "/contacts/for",
    "/contacts/1",
    "/fibonacci/10",
]
PAGES = ["/contacts/fetch", "/contacts/for"]


# --- HTTP over a raw socket ---------------------------------------------------


class HTTPError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def brief(self) -> str:
        body = self.body if len(self.body) <= 160 else self.body[:160] + b"..."
        return f"{self.status} {body!r}"


class Connection:
    """One HTTP/1.1 connection; responses are read in order from a buffer."""

    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise HTTPError("connection closed before a complete response")
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise HTTPError("connection closed in the middle of a body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head: bool = False) -> Response:
        lines = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not match:
            raise HTTPError(f"bad status line {lines[0]!r}")
        status = int(match.group(1))
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        resp = Response(status, headers, b"")
        if head or status in (204, 304) or 100 <= status < 200:
            return resp
        if (resp.header("Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")  # no trailers expected
                    break
                body += self._read_exact(size)
                self._read_exact(2)
            resp.body = body
        elif resp.header("Content-Length") is not None:
            resp.body = self._read_exact(int(resp.header("Content-Length")))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp


def request_bytes(method: str, target: str, host: str, extra: str = "") -> bytes:
    body = "Content-Length: 0\r\n" if method in ("POST", "PUT", "PATCH") else ""
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{body}{extra}\r\n".encode("latin-1")


# --- the checker ------------------------------------------------------------


class RuleFailed(Exception):
    pass


@dataclass
class Result:
    rule: str
    text: str
    status: str  # PASS, FAIL or SKIP
    detail: str = ""


@dataclass
class Checker:
    host: str
    port: int
    timeout: float
    slow: bool
    failures: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, timeout: float | None = None) -> Connection:
        return Connection(self.host, self.port, timeout or self.timeout)

    def request(self, target: str, method: str = "GET", timeout: float | None = None) -> Response:
        conn = self.connect(timeout)
        try:
            conn.send(request_bytes(method, target, self.authority))
            return conn.read_response(head=method == "HEAD")
        except (OSError, HTTPError) as exc:
            raise RuleFailed(f"{method} {target}: {exc}") from exc
        finally:
            conn.close()

    def get(self, target: str, **kw) -> Response:
        return self.request(target, **kw)

    # Failures are collected, so that a row shows all it found (the first few).
    def fail(self, message: str):
        self.failures.append(message)

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.fail(message)
        return ok

    def expect_body(self, target: str, status: int, body: bytes, method: str = "GET") -> Response:
        resp = self.request(target, method)
        self.check(
            resp.status == status and resp.body == body,
            f"{method} {target}: expected {status} {body!r}, got {resp.brief()}",
        )
        return resp

    def expect_422(self, target: str, *locs: tuple[str, str]) -> Response:
        """The target answers 422 with one detail item per loc, shaped as FastAPI shapes it."""
        resp = self.request(target)
        problem = problem_422(resp, locs)
        self.check(problem is None, f"GET {target}: {problem}")
        return resp

    def page(self, target: str) -> list:
        """A page of contacts (cached), checked to be a JSON array."""
        if target not in self.cache:
            resp = self.get(target)
            if resp.status != 200:
                raise RuleFailed(f"GET {target}: expected 200, got {resp.brief()}")
            try:
                data = resp.json()
            except ValueError as exc:
                raise RuleFailed(f"GET {target}: body is not JSON: {resp.brief()}") from exc
            if not isinstance(data, list):
                raise RuleFailed(f"GET {target}: expected an array, got {resp.brief()}")
            self.cache[target] = (resp.body, data)
        return self.cache[target][1]

    def page_bytes(self, target: str) -> bytes:
        self.page(target)
        return self.cache[target][0]


def problem_422(resp: Response, locs) -> str | None:
    if resp.status != 422:
        return f"expected 422 for {[list(loc) for loc in locs]}, got {resp.brief()}"
    if media_type(resp) != "application/json":
        return f"422 with Content-Type {resp.header('Content-Type')!r}"
    try:
        detail = resp.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return f'422 body is not {{"detail":[...]}}: {resp.brief()}'
    if not isinstance(detail, list):
        return f"422 detail is not a list: {resp.brief()}"
    for item in detail:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("loc"), list)
            and isinstance(item.get("msg"), str)
            and isinstance(item.get("type"), str)
        ):
            return f"422 item is not {{loc,msg,type}}: {item!r}"
    got = sorted(tuple(item["loc"]) for item in detail)
    if got != sorted(locs):
        return f"422 locs {[list(loc) for loc in got]}, expected {[list(loc) for loc in locs]}"
    return None


def media_type(resp: Response) -> str:
    return (resp.header("Content-Type") or "").split(";")[0].strip().lower()


def charset_ok(resp: Response) -> bool:
    params = (resp.header("Content-Type") or "").split(";")[1:]
    return all(p.strip().lower() in ("charset=utf-8", 'charset="utf-8"') for p in params)


def compact(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def pct(text: str) -> str:
    return quote(text, safe="")


def not_starting_with(contacts: list, prefix: str) -> list:
    """Contacts whose lower-cased last name does not begin with prefix."""
    return [
        c["contact_id"]
        for c in contacts
        if not str(c.get("last_name", "")).lower().startswith(prefix.lower())
    ]


def shape_problem(contact) -> str | None:
    if not isinstance(contact, dict):
        return f"not an object: {contact!r}"
    if list(contact) != CONTACT_KEYS:
        return f"keys {list(contact)} (expected {CONTACT_KEYS}, in that order)"
    if not (isinstance(contact["contact_id"], int) and not isinstance(contact["contact_id"], bool)):
        return f"contact_id {contact['contact_id']!r}"
    for key in ("first_name", "last_name"):
        if not isinstance(contact[key], str):
            return f"{key} {contact[key]!r}"
    ctype = contact["contact_type"]
    if not (
        isinstance(ctype, dict)
        and list(ctype) == ["type_id", "type_name"]
        and isinstance(ctype["type_id"], int)
        and (ctype["type_name"] is None or isinstance(ctype["type_name"], str))
    ):
        return f"contact_type {ctype!r}"
    for key in ("phone_number", "email"):
        if not (isinstance(contact[key], list) and all(isinstance(v, str) for v in contact[key])):
            return f"{key} {contact[key]!r} (an array of strings, no null)"
    return None


# --- the rules ----------------------------------------------------------------

RULES: list[tuple[str, str, Callable[[Checker], str | None]]] = []


def rule(name: str, text: str):
    def register(fn):
        RULES.append((name, text, fn))
        return fn

    return register


@rule("version", '/version answers 200 {"version":"X.Y.Z"}')
def _(c: Checker):
    resp = c.get("/version")
    c.check(
        resp.status == 200 and re.fullmatch(rb'\{"version":"\d+\.\d+\.\d+"\}', resp.body),
        f"GET /version: {resp.brief()}",
    )
    return resp.body.decode("utf-8", "replace")


@rule("types", "/types answers the three contact types, in type_id order, byte for byte")
def _(c: Checker):
    c.expect_body("/types", 200, EXPECTED_TYPES)


@rule("content-type", "every 200 is Content-Type: application/json (UTF-8)")
def _(c: Checker):
    for target in ENDPOINTS + ["/contacts/fetch?limit=3&starts=m"]:
        resp = c.get(target)
        c.check(
            resp.status == 200 and media_type(resp) == "application/json" and charset_ok(resp),
            f"GET {target}: {resp.status} Content-Type {resp.header('Content-Type')!r}",
        )


@rule("json-compact", "bodies have no insignificant whitespace and non-ASCII is not escaped")
def _(c: Checker):
    for target in ENDPOINTS + ["/contacts/fetch?starts=m%C3%BC&limit=5", "/contacts/0", "/nope"]:
        resp = c.get(target)
        try:
            canonical = compact(resp.json())
        except ValueError:
            continue  # not JSON at all: the rows of each endpoint and errors-json say so
        c.check(
            resp.body == canonical, f"GET {target}: {resp.body[:120]!r} is not {canonical[:120]!r}"
        )
    body = c.page_bytes("/contacts/fetch?limit=200")
    c.check(
        b"\\u" not in body and any(b >= 0x80 for b in body),
        "a page of names such as Müller is not UTF-8 without \\u escapes",
    )


@rule(
    "contact-shape",
    "a Contact has contact_id, first_name, last_name, contact_type, "
    "phone_number[], email[] (in that order; no null in the arrays)",
)
def _(c: Checker):
    types = {t["type_id"]: t for t in json.loads(EXPECTED_TYPES)}
    for target in ("/contacts/fetch?limit=200", "/contacts/for?limit=200"):
        for contact in c.page(target):
            problem = shape_problem(contact)
            if problem is None and contact["contact_type"] != types.get(
                contact["contact_type"]["type_id"]
            ):
                problem = f"contact_type {contact['contact_type']} is not one of /types"
            if problem:
                c.fail(f"GET {target}: contact {contact.get('contact_id', '?')}: {problem}")
                break


@rule("page-order", "a page is ordered by contact_id, ascending, without duplicates")
def _(c: Checker):
    for target in (
        "/contacts/fetch?limit=200",
        "/contacts/for?limit=200",
        "/contacts/fetch?starts=m&limit=200",
    ):
        ids = [x["contact_id"] for x in c.page(target)]
        c.check(
            all(a < b for a, b in zip(ids, ids[1:])),
            f"GET {target}: ids {ids[:10]}... not ascending",
        )


@rule("page-default-limit", "without limit a page holds 100 contacts (the first 100 of limit=200)")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        page = c.page(path)
        c.check(
            page == big[:100],
            f"GET {path}: {len(page)} contacts, expected the first "
            f"{min(100, len(big))} of limit=200",
        )
    if len(big) < 100:
        c.fail(f"only {len(big)} contacts in the database: seed it with at least 200")


@rule("fetch-equals-for", "/contacts/for answers the same bytes as /contacts/fetch")
def _(c: Checker):
    for query in (
        "",
        "?limit=200",
        "?limit=7&offset=3",
        "?starts=m",
        "?starts=O%27Brien&limit=200",
        "?starts=m%C3%BC",
        "?offset=9990&limit=200",
        f"?offset={INT32_MAX}",
        "?starts=%25",
    ):
        fetch = c.get("/contacts/fetch" + query)
        for_ = c.get("/contacts/for" + query)
        c.check(
            fetch.status == for_.status == 200 and fetch.body == for_.body,
            f"{query or '(no query)'}: fetch {fetch.brief()} != for {for_.brief()}",
        )


@rule("limit", "limit=N answers the first N of the ordering (1, 37, 200)")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        for n in (1, 37, 200):
            page = c.page(f"{path}?limit={n}")
            c.check(
                page == big[:n], f"GET {path}?limit={n}: {len(page)} contacts, not the first {n}"
            )
    c.check(len(big) == 200, f"limit=200 gave {len(big)} contacts (seed at least 200)")


@rule("offset", "offset=K skips K (offset 0, 5, 150; offset 2147483647 answers [])")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        for k, n in ((0, 10), (5, 10), (150, 50)):
            page = c.page(f"{path}?offset={k}&limit={n}")
            c.check(
                page == big[k : k + n], f"GET {path}?offset={k}&limit={n}: not big[{k}:{k + n}]"
            )
        c.check(
            c.page(f"{path}?offset={INT32_MAX}") == [], f"GET {path}?offset={INT32_MAX}: not []"
        )


@rule("limit-bounds", "limit 0, 201, -1 -> 422 [query,limit]; 1 and 200 accepted")
def _(c: Checker):
    for path in PAGES:
        for value in ("0", "201", "-1", "99999999999999999999"):
            c.expect_422(f"{path}?limit={value}", ("query", "limit"))
        for value in ("1", "200"):
            c.check(
                c.get(f"{path}?limit={value}").status == 200, f"GET {path}?limit={value}: not 200"
            )


@rule("offset-bounds", "offset -1, 2147483648 -> 422 [query,offset]; 0 and 2147483647 accepted")
def _(c: Checker):
    for path in PAGES:
        for value in ("-1", str(INT32_MAX + 1), "99999999999999999999"):
            c.expect_422(f"{path}?offset={value}", ("query", "offset"))
        for value in ("0", str(INT32_MAX)):
            c.check(
                c.get(f"{path}?offset={value}").status == 200, f"GET {path}?offset={value}: not 200"
            )


@rule(
    "integer-form-query",
    "limit/offset must be -?[0-9]+: +1, ' 1', 1.0, 1e1, 1_0, 0x1, "
    "fullwidth 1, empty... -> 422; 010 and -0 are fine",
)
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        for value in BAD_INTEGERS + [""]:
            c.expect_422(f"{path}?limit={value}", ("query", "limit"))
            c.expect_422(f"{path}?offset={value}&limit=1", ("query", "offset"))
        c.check(c.page(f"{path}?limit=010") == big[:10], f"GET {path}?limit=010: not 10 contacts")
        c.check(
            c.page(f"{path}?offset=-0&limit=3") == big[:3], f"GET {path}?offset=-0: not offset 0"
        )


@rule("multiple-errors", "one 422 item per broken parameter (limit=0&offset=-1&starts=)")
def _(c: Checker):
    for path in PAGES:
        c.expect_422(
            f"{path}?limit=0&offset=-1&starts=",
            ("query", "limit"),
            ("query", "offset"),
            ("query", "starts"),
        )


@rule("percent-decoding", "query values and names are percent-decoded (limit=%32, %6Cimit=2)")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        c.check(c.page(f"{path}?limit=%32") == big[:2], f"GET {path}?limit=%32: not 2 contacts")
        c.check(c.page(f"{path}?%6Cimit=2") == big[:2], f"GET {path}?%6Cimit=2: not 2 contacts")
        c.check(
            c.page_bytes(f"{path}?starts=%6D") == c.page_bytes(f"{path}?starts=m"),
            f"GET {path}?starts=%6D differs from starts=m",
        )


@rule(
    "bad-percent",
    "a bad %-escape or non-UTF-8 bytes -> 422 for that parameter "
    "(limit=%zz, limit=1%, starts=%zz, starts=%C3, starts=%FF)",
)
def _(c: Checker):
    for path in PAGES:
        for value in ("%zz", "1%", "%2", "%G1"):
            c.expect_422(f"{path}?limit={value}", ("query", "limit"))
        for value in ("%zz", "ab%", "%C3", "%FF", "%C3%28", "%ED%A0%80"):
            c.expect_422(f"{path}?starts={value}", ("query", "starts"))


@rule("repeated-param", "a repeated parameter: the last one wins")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        c.check(
            c.page(f"{path}?limit=5&limit=2") == big[:2],
            f"GET {path}?limit=5&limit=2: not 2 contacts",
        )
        c.check(
            c.page_bytes(f"{path}?starts=zzzz&starts=m") == c.page_bytes(f"{path}?starts=m"),
            f"GET {path}?starts=zzzz&starts=m: not the page of starts=m",
        )


@rule("unknown-param", "unknown query parameters are ignored (foo=bar, a bare x)")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        for query in ("?foo=bar&limit=3", "?x&limit=3", "?limit=3&Limit=7"):
            c.check(c.page(path + query) == big[:3], f"GET {path}{query}: not 3 contacts")


@rule("starts-prefix", "starts=m: a non-empty page, every lower(last_name) begins with m")
def _(c: Checker):
    for path in PAGES:
        page = c.page(f"{path}?starts=m&limit=200")
        c.check(page, f"GET {path}?starts=m: empty (is the database seeded?)")
        bad = not_starting_with(page, "m")
        c.check(not bad, f"GET {path}?starts=m: contacts {bad[:5]} do not begin with m")


@rule("starts-case", "starts is case-insensitive, non-ASCII too (M = m, MÜ = mü = Mü)")
def _(c: Checker):
    for path in PAGES:
        lower = c.page_bytes(f"{path}?starts=m")
        c.check(
            lower == c.page_bytes(f"{path}?starts=M"), f"GET {path}: starts=M differs from starts=m"
        )
        mu = c.page_bytes(f"{path}?starts={pct('mü')}")
        c.check(json.loads(mu), f"GET {path}?starts=mü: empty (the seed has Müller)")
        for variant in ("MÜ", "Mü", "mÜ"):
            c.check(
                mu == c.page_bytes(f"{path}?starts={pct(variant)}"),
                f"GET {path}: starts={variant} differs from starts=mü",
            )


@rule("starts-finds", "starts=<a known name's first letters> finds that contact; paging applies")
def _(c: Checker):
    big = c.page("/contacts/fetch?limit=200")
    for path in PAGES:
        for contact in big[:100:9]:
            prefix = contact["last_name"][:3]
            page = c.page(f"{path}?starts={pct(prefix)}&limit=200")
            c.check(
                contact in page,
                f"GET {path}?starts={prefix}: contact {contact['contact_id']} missing",
            )
            bad = not_starting_with(page, prefix)
            c.check(not bad, f"GET {path}?starts={prefix}: {bad[:5]} do not begin with it")
        whole = c.page(f"{path}?starts=m&limit=200")
        c.check(
            c.page(f"{path}?starts=m&limit=5&offset=3") == whole[3:8],
            f"GET {path}?starts=m&limit=5&offset=3: not [3:8] of starts=m",
        )


@rule("starts-literal", "%, _ and \\ in starts match themselves, never as wildcards")
def _(c: Checker):
    for path in PAGES:
        obrien = c.page(f"{path}?starts=o%27&limit=200")
        c.check(obrien, f"GET {path}?starts=o': empty (the seed has O'Brien)")
        for prefix in ("%", "_", "\\", "o_", "o%", "m%", "%m", "_m", "m_ller", "\\%", "%%", "o\\'"):
            page = c.page(f"{path}?starts={pct(prefix)}&limit=200")
            bad = not_starting_with(page, prefix)
            c.check(
                not bad,
                f"GET {path}?starts={prefix}: {len(bad)} contacts (e.g. "
                f"{[x['last_name'] for x in page[:3]]}) do not begin with {prefix!r}",
            )


@rule("starts-quote", "starts=O'Brien (a quote) works like any other character")
def _(c: Checker):
    for path in PAGES:
        page = c.page(f"{path}?starts={pct(chr(39).join(['O', 'Brien']))}&limit=200")
        c.check(
            page and not not_starting_with(page, "o'brien"),
            f"GET {path}?starts=O'Brien: {len(page)} contacts",
        )
        page = c.page(f"{path}?starts={pct(chr(39) + '; select 1 --')}")
        c.check(page == [], f"GET {path}?starts=';...: not []")


@rule(
    "starts-length",
    "starts holds 1 to 100 code points after decoding: 100 (ASCII, ü, emoji) ok; "
    "0 and 101 -> 422 [query,starts]",
)
def _(c: Checker):
    for path in PAGES:
        for char in ("a", "ü", "\U0001f600"):
            target = f"{path}?starts={pct(char * 100)}"
            resp = c.get(target)
            c.check(
                resp.status == 200 and resp.body == b"[]",
                f"GET {path}?starts={char}*100: {resp.brief()}",
            )
            c.expect_422(f"{path}?starts={pct(char * 101)}", ("query", "starts"))
        c.expect_422(f"{path}?starts=", ("query", "starts"))
        resp = c.get(f"{path}?starts={pct('ü')}")
        c.check(resp.status == 200, f"GET {path}?starts=ü: {resp.brief()}")


@rule("starts-nul", "starts=%00 is one valid code point: 200 [] (no name begins with NUL)")
def _(c: Checker):
    for path in PAGES:
        c.expect_body(f"{path}?starts=%00", 200, b"[]")


@rule("contact-by-id", "/contacts/{id} answers the same Contact as the page, byte for byte")
def _(c: Checker):
    for contact in c.page("/contacts/fetch?limit=200")[::7]:
        target = f"/contacts/{contact['contact_id']}"
        resp = c.get(target)
        c.check(
            resp.status == 200 and resp.body == compact(contact),
            f"GET {target}: {resp.brief()} is not the page's {compact(contact)[:80]!r}",
        )


@rule(
    "contact-not-found",
    '/contacts/0 and /contacts/2147483647 -> 404 {"detail":"Contact not found"}',
)
def _(c: Checker):
    for target in ("/contacts/0", f"/contacts/{INT32_MAX}", "/contacts/-0"):
        c.expect_body(target, 404, CONTACT_NOT_FOUND)


@rule("contact-id-bounds", "contact_id -1, 2147483648 -> 422 [path,contact_id]")
def _(c: Checker):
    for value in ("-1", str(INT32_MAX + 1), "99999999999999999999"):
        c.expect_422(f"/contacts/{value}", ("path", "contact_id"))


@rule(
    "integer-form-path",
    "path integers must be -?[0-9]+ (+1, ' 1', 1.0, 1e1, 1_0, %zz -> 422); 01 and %31 are 1",
)
def _(c: Checker):
    for value in BAD_INTEGERS + ["%zz", "%"]:
        c.expect_422(f"/contacts/{value}", ("path", "contact_id"))
        c.expect_422(f"/fibonacci/{value}", ("path", "n"))
    one = c.get("/contacts/1")
    for alias in ("01", "%31"):
        resp = c.get(f"/contacts/{alias}")
        c.check(
            resp.status == 200 and resp.body == one.body, f"GET /contacts/{alias}: {resp.brief()}"
        )
    c.expect_body("/fibonacci/010", 200, b'{"result":89}')


@rule("fibonacci", '/fibonacci/{n} answers {"result":fib(n)}, fib(0) = fib(1) = 1 (n = 0..25)')
def _(c: Checker):
    for n, value in FIB.items():
        c.expect_body(f"/fibonacci/{n}", 200, compact({"result": value}))


@rule("fibonacci-bounds", "n = -1, 41 -> 422 [path,n]")
def _(c: Checker):
    for value in ("-1", "41", "99999999999999999999"):
        c.expect_422(f"/fibonacci/{value}", ("path", "n"))


@rule("fibonacci-40", 'n = 40 is accepted: {"result":165580141} (--slow)')
def _(c: Checker):
    if not c.slow:
        return "SKIP"
    resp = c.get("/fibonacci/40", timeout=600)
    c.check(
        resp.status == 200 and resp.body == b'{"result":165580141}',
        f"GET /fibonacci/40: {resp.brief()}",
    )


@rule("not-found", 'an unknown path -> 404 {"detail":"Not Found"}')
def _(c: Checker):
    for target in (
        "/",
        "/nope",
        "/contacts",
        "/contacts/1/2",
        "/contacts/fetch/x",
        "/version/x",
        "/fibonacci",
        "/Types",
        "/types.json",
        "/%zz",
    ):
        c.expect_body(target, 404, NOT_FOUND)
    # Read as /contacts and /fibonacci with a trailing slash these are unknown
    # paths; read as an empty {contact_id} or {n} they break the integer rule.
    # The contract allows either reading.
    for target, loc in (("/contacts/", ("path", "contact_id")), ("/fibonacci/", ("path", "n"))):
        resp = c.get(target)
        c.check(
            resp.body == NOT_FOUND and resp.status == 404 or problem_422(resp, [loc]) is None,
            f"GET {target}: {resp.brief()}",
        )


@rule("trailing-slash", "a trailing slash answers the same as without, no redirect")
def _(c: Checker):
    for target in ENDPOINTS + ["/contacts/fetch?limit=3", "/contacts/0", "/fibonacci/41"]:
        path, _, query = target.partition("?")
        slashed = path + "/" + ("?" + query if query else "")
        plain, resp = c.get(target), c.get(slashed)
        location = f" -> {resp.header('Location')}" if resp.header("Location") else ""
        c.check(
            (resp.status, resp.body) == (plain.status, plain.body),
            f"GET {slashed}: {resp.brief()}{location} (without the slash: {plain.status})",
        )


@rule(
    "method-not-allowed",
    'POST/PUT/DELETE/PATCH/OPTIONS on a known path -> 405 {"detail":"Method Not Allowed"}',
)
def _(c: Checker):
    for target in ENDPOINTS:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            c.expect_body(target, 405, METHOD_NOT_ALLOWED, method=method)


@rule("allow-header", "a 405 carries Allow: GET, HEAD")
def _(c: Checker):
    for target in ENDPOINTS:
        resp = c.request(target, "POST")
        c.check(
            resp.header("Allow") == "GET, HEAD", f"POST {target}: Allow {resp.header('Allow')!r}"
        )


@rule("head", "HEAD answers like GET: same status, Content-Type and Content-Length, no body")
def _(c: Checker):
    for target in ENDPOINTS + [
        "/contacts/fetch?limit=3",
        "/contacts/0",
        "/nope",
        "/contacts/fetch?limit=0",
    ]:
        got = c.get(target)
        conn = c.connect(5)
        try:
            # HEAD then GET on one connection: a body after HEAD would garble the second response.
            conn.send(
                request_bytes("HEAD", target, c.authority)
                + request_bytes("GET", "/version", c.authority)
            )
            head = conn.read_response(head=True)
            after = conn.read_response()
        except (OSError, HTTPError) as exc:
            c.fail(f"HEAD {target}: {exc}")
            continue
        finally:
            conn.close()
        c.check(head.status == got.status, f"HEAD {target}: {head.status}, GET: {got.status}")
        for name in ("Content-Type", "Content-Length"):
            c.check(
                head.header(name) == got.header(name),
                f"HEAD {target}: {name} {head.header(name)!r}, GET: {got.header(name)!r}",
            )
        c.check(
            after.status == 200 and after.body.startswith(b'{"version"'),
            f"HEAD {target} sent a body (the next response read as {after.brief()})",
        )


@rule("errors-json", "404, 405 and 422 bodies are JSON with Content-Type: application/json")
def _(c: Checker):
    for method, target in (
        ("GET", "/nope"),
        ("GET", "/contacts/0"),
        ("POST", "/types"),
        ("GET", "/contacts/fetch?limit=0"),
        ("GET", "/fibonacci/41"),
        ("GET", "/contacts/-1"),
    ):
        resp = c.request(target, method)
        try:
            ok = isinstance(resp.json(), dict) and "detail" in resp.json()
        except ValueError:
            ok = False
        c.check(
            ok and media_type(resp) == "application/json" and charset_ok(resp),
            f"{method} {target}: {resp.status} {resp.header('Content-Type')!r} {resp.body[:60]!r}",
        )


@rule("keep-alive", "one connection serves requests one after another")
def _(c: Checker):
    conn = c.connect(5)
    try:
        for target in (
            "/version",
            "/types",
            "/contacts/fetch?limit=2",
            "/contacts/1",
            "/nope",
            "/contacts/fetch?limit=0",
            "/version",
        ):
            conn.send(request_bytes("GET", target, c.authority))
            resp = conn.read_response()
            if (resp.header("Connection") or "").lower() == "close":
                c.fail(f"GET {target}: Connection: close")
                break
    except (OSError, HTTPError) as exc:
        c.fail(f"keep-alive: {exc}")
    finally:
        conn.close()


@rule("pipelining", "3 requests in one write get 3 responses, in order")
def _(c: Checker):
    for batch in (
        ["/version", "/types", "/fibonacci/5"],
        ["/contacts/fetch?limit=3", "/contacts/1", "/types"],
    ):
        expected = [c.get(target).body for target in batch]
        conn = c.connect(5)
        try:
            conn.send(b"".join(request_bytes("GET", target, c.authority) for target in batch))
            for target, body in zip(batch, expected):
                resp = conn.read_response()
                c.check(
                    resp.status == 200 and resp.body == body,
                    f"pipelined GET {target}: {resp.brief()}",
                )
        except (OSError, HTTPError) as exc:
            c.fail(f"pipelining {batch}: {exc}")
        finally:
            conn.close()


@rule(
    "robust", "malformed requests crash nothing and no body leaks a trace, SQL or connection string"
)
def _(c: Checker):
    raw = [
        b"GARBAGE\r\n\r\n",
        b"GET /version HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /contacts/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /contacts/fetch?starts=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    ]
    for data in raw:
        conn = c.connect(5)
        try:
            conn.send(data)
            resp = conn.read_response()
            leak = [word for word in LEAKS if word in resp.body]
            c.check(not leak, f"{data[:40]!r}: {resp.status} body shows {leak}")
        except (OSError, HTTPError):
            pass  # closing the connection on garbage is fine
        finally:
            conn.close()
    for target in (
        "/contacts/fetch?starts=%00",
        "/contacts/fetch?limit=0&offset=x",
        f"/contacts/fetch?starts={pct(chr(39) * 50)}",
        "/contacts/" + "9" * 400,
    ):
        resp = c.get(target)
        leak = [word for word in LEAKS if word in resp.body]
        c.check(not leak, f"GET {target[:60]}: {resp.status} body shows {leak}")
    resp = c.get("/version")
    c.check(resp.status == 200, f"GET /version after the garbage: {resp.brief()}")


# --- main -------------------------------------------------------------------


def run(checker: Checker) -> list[Result]:
    results = []
    for name, text, fn in RULES:
        checker.failures = []
        try:
            note = fn(checker)
        except RuleFailed as exc:
            checker.failures.append(str(exc))
            note = None
        except (OSError, HTTPError) as exc:
            checker.failures.append(f"{type(exc).__name__}: {exc}")
            note = None
        if note == "SKIP":
            results.append(Result(name, text, "SKIP", "needs --slow"))
        elif checker.failures:
            more = f" (+{len(checker.failures) - 3} more)" if len(checker.failures) > 3 else ""
            results.append(Result(name, text, "FAIL", "; ".join(checker.failures[:3]) + more))
        else:
            results.append(Result(name, text, "PASS", note or ""))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--name", help="name of the implementation in the report")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    parser.add_argument(
        "--slow", action="store_true", help="also check fib(40) (a minute in CPython)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30, help="seconds per request (default 30)"
    )
    parser.add_argument("--only", help="comma-separated rule names to run")
    args = parser.parse_args()

    url = urlsplit(args.url)
    if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
        parser.error(f"URL must be http://HOST:PORT, got {args.url!r}")
    checker = Checker(url.hostname, url.port or 80, args.timeout, args.slow)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {name for name, _, _ in RULES}
        if unknown:
            parser.error(f"unknown rules: {', '.join(sorted(unknown))}")
        RULES[:] = [r for r in RULES if r[0] in wanted]

    name = args.name or args.url
    try:
        checker.connect(5).close()
    except OSError as exc:
        print(f"check_contract.py: cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = run(checker)
    elapsed = time.monotonic() - started

    width = max(len(r.rule) for r in results)
    print(f"{name} ({args.url}) against the contract, shared/API.md")
    print(f"{'rule':<{width}}  result  detail")
    for r in results:
        print(f"{r.rule:<{width}}  {r.status:<6}  {r.detail if r.status != 'PASS' else r.text}")
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    summary = f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
    print(f"{summary} ({elapsed:.1f} s)")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "name": name,
                    "url": args.url,
                    "passed": counts["PASS"],
                    "failed": counts["FAIL"],
                    "skipped": counts["SKIP"],
                    "rules": [r.__dict__ for r in results],
                },
                out,
                ensure_ascii=False,
                indent=2,
            )
            out.write("\n")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
