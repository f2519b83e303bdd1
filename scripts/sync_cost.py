#!/usr/bin/env python3
"""What a Sync per statement costs PostgreSQL: one backend's CPU per statement
for batches of `sql/types.sql`, sent as Bind/Execute/Sync each (what
tokio-postgres sends) or as Bind/Execute each with one Sync per batch (what
`src/db/sync_batching.rs` sends), at several batch sizes.

The client is this script, on one connection over a Unix socket, with trust
authentication (a throwaway cluster); the backend's CPU is read from
/proc/<pid>/stat, so the client's own cost does not count. One batch is in
flight at a time, so small batches also pay the backend's wake-up.

    scripts/sync_cost.py --host /tmp/pg --port 5432 --dbname bakeoff
"""

import argparse
import os
import pathlib
import socket
import struct
import time

SQL = pathlib.Path(__file__).resolve().parent.parent / "sql" / "types.sql"


def message(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


class Session:
    """One connection, speaking just enough of the protocol."""

    def __init__(self, host: str, port: int, user: str, dbname: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.path.join(host, f".s.PGSQL.{port}"))
        self.buffer = b""
        self.pid = 0
        body = struct.pack("!i", 196608) + cstr("user") + cstr(user)
        body += cstr("database") + cstr(dbname) + b"\0"
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        self.read_until_ready(1)

    def read_until_ready(self, count: int) -> int:
        """Reads up to the `count`th ReadyForQuery; returns the rows seen."""
        ready = rows = 0
        while True:
            while len(self.buffer) >= 5:
                tag = self.buffer[:1]
                length = struct.unpack("!i", self.buffer[1:5])[0]
                if len(self.buffer) < 1 + length:
                    break
                payload, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
                if tag == b"E":
                    raise SystemExit(f"PostgreSQL: {payload!r}")
                if tag == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                    raise SystemExit("this script speaks trust authentication only")
                if tag == b"K":
                    self.pid = struct.unpack("!i", payload[:4])[0]
                if tag == b"D":
                    rows += 1
                if tag == b"Z":
                    ready += 1
                    if ready == count:
                        return rows
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("PostgreSQL closed the connection")
            self.buffer += chunk

    def backend_cpu(self) -> float:
        """The backend's user + system CPU seconds so far."""
        fields = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(session: Session, depth: int, one_sync: bool, statements: int) -> tuple[float, float]:
    """CPU µs per statement and statements per second for one shape."""
    bind = message(b"B", cstr("") + cstr("types") + struct.pack("!hhhh", 0, 0, 1, 1))
    execute = message(b"E", cstr("") + struct.pack("!i", 0))
    sync = message(b"S", b"")
    batch = (bind + execute) * depth + sync if one_sync else (bind + execute + sync) * depth
    readies = 1 if one_sync else depth
    batches = max(1, statements // depth)
    cpu, began = session.backend_cpu(), time.monotonic()
    for _ in range(batches):
        session.sock.sendall(batch)
        session.read_until_ready(readies)
    cpu, elapsed = session.backend_cpu() - cpu, time.monotonic() - began
    return 1e6 * cpu / (batches * depth), batches * depth / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="the Unix socket directory")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--dbname", default="bakeoff")
    parser.add_argument("--depths", default="1,4,16,64,256", help="batch sizes")
    parser.add_argument("--statements", type=int, default=200_000, help="per shape")
    args = parser.parse_args()
    session = Session(args.host, args.port, args.user, args.dbname)
    sql = "\n".join(line for line in SQL.read_text().splitlines() if not line.startswith("--"))
    session.sock.sendall(
        message(b"P", cstr("types") + cstr(sql) + struct.pack("!h", 0)) + message(b"S", b"")
    )
    session.read_until_ready(1)
    print("depth  Sync each: µs/stmt  stmt/s   one Sync: µs/stmt  stmt/s")
    for depth in (int(word) for word in args.depths.split(",")):
        each = measure(session, depth, False, args.statements)
        one = measure(session, depth, True, args.statements)
        print(f"{depth:5}  {each[0]:17.2f}  {each[1]:7.0f}  {one[0]:17.2f}  {one[1]:7.0f}")


if __name__ == "__main__":
    main()
