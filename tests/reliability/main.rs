//! Reliability and security, proven against the real binary over raw
//! sockets: database faults (PostgreSQL stopped and restarted under load,
//! backends killed, queries stuck behind a lock, a query plan that must not
//! degrade with the traffic before it), hostile and broken clients
//! (malformed requests, slowloris, thousands of idle connections, a client
//! that never reads, running out of file descriptors, a `/fibonacci` flood),
//! graceful shutdown with requests in flight, SQL injection, the read-only
//! role, and what responses and logs must never show.
//!
//! Each test prints what it measured on lines starting with `[figure]`
//! (`cargo test --test reliability -- --nocapture`, or
//! `scripts/reliability.sh`): docs/RELIABILITY.md's figures come from
//! there. The tests run one at a time (see [`helpers::serial`]): several measure
//! latencies, which a neighbour's load on two cores would distort.

// Shared helpers: `serial`, figures, fallible connections, PostgreSQL and /proc probes.
mod helpers;
// A steady load of recorded requests, for the database fault tests.
mod load;
// Database faults: PostgreSQL restarted under load, backends killed, a stuck query.
mod database_faults;
// The database seen from the server: /readyz, socket keepalive, query plans.
mod database_health;
// Hostile and malformed requests: 4xx or closed, never 5xx or a hang.
mod hostile_requests;
// Slow and broken clients: slowloris, idle connections, a client that never reads.
mod slow_clients;
// Resource limits: file descriptors, backlog, a /fibonacci flood.
mod resource_limits;
// Graceful shutdown with requests in flight, the drain timeout, the shutdown delay.
mod shutdown;
// Failover: a primary and its standby in DATABASE_URL, the standby promoted.
mod failover;
// Security: SQL injection, the read-only role, no leaks, a database that stops answering.
mod security;
// To the standard of the trusted proxies: bounded heads, shutdown of idle
// connections, fast failure while the database is down, a write timeout.
mod trusted_proxies;

use testkit::Kit;

/// The kit, bound to the binary under test: the fixture every module uses.
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

const SERVICE_UNAVAILABLE: &str = r#"{"detail":"Service Unavailable"}"#;
/// A password that must never show in a response or a log line.
const SECRET: &str = "Sup3r-s3cret-pw";
