//! The link's integration tests: one binary (so the helpers are shared
//! without dead code, and the tests can run one at a time), one file per
//! concern. Every test drives the real `bakeoff-link` binary over loopback.

// The link as a child process, upstream servers on threads, timing helpers.
mod support;

// Order, loss, round trips, pipelining, half-close, resets, zero delay, a
// thousand connections, signals and bad arguments.
mod forwarding;

// The acceptance test of issue #19: pgbench --rate through 1 ms and 2 ms
// round trips against a throwaway PostgreSQL.
mod pgbench;
