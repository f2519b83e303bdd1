//! `bakeoff`: the hand-tuned Rust reference server of the contacts API
//! (`../shared/API.md`), on hyper 1.x, tokio, tokio-postgres and bb8.
//!
//! Code map, one concern per file, in the order a request goes through them:
//! - [`startup`]: the one seam: configuration → listeners, runtimes, pools,
//!   signals; `main`, the benches and in-process tests start the server here.
//! - [`config`]: command line and environment, turned into the other
//!   modules' types.
//! - [`server`]: sockets, the accept loop, hyper's connections, shutdown.
//! - [`io`]: the socket as hyper sees it: pipelined answers coalesced, heads
//!   bounded, a write timeout.
//! - [`head`]: the scan of what a connection reads: heads counted and
//!   bounded.
//! - [`activity`]: whether a connection is answering, for shutdown.
//! - [`handlers`]: `handle` (route, dispatch, count) and one function per
//!   endpoint, with the `State` they reach.
//! - [`compute`]: `/fibonacci`'s threads, one per core, fed from one
//!   queue, with its admission limit.
//! - [`router`]: method and path to a [`router::Route`], its metrics label
//!   and template; 404 and 405.
//! - [`params`]: percent-decoding and the parameter rules; 422.
//! - [`db`]: the pools and their connections, statements prepared once per
//!   connection, fast failure during an outage; the connection string
//!   parsed (several hosts, `target_session_attrs`); sessions opened on the
//!   first of those hosts that meets the target, on a counted socket; a
//!   shared connection's statements sent under one Sync per write.
//! - [`rows`]: PostgreSQL rows to JSON, from the rows' own bytes.
//! - [`json`]: the JSON string and integer writer.
//! - [`response`], [`error`]: response building; [`error::ApiError`] and
//!   its FastAPI-shaped answers.
//! - [`metrics`]: Prometheus counters, sharded per thread, and `/metrics`;
//!   a facade over the shards, the request counters, the gauges, the
//!   per-runtime families and the memory figures, a file each.
//! - [`log`]: throttled logging and the access log.
//! - [`memory`]: gives freed memory back after a wave of connections closes.
//! - [`seed`]: `bakeoff seed`, the schema and deterministic sample data.
//!
//! Invariants a change must keep:
//! - `router`, `params`, `head`, `json` and `rows` do no I/O (they are unit-tested
//!   and fuzzed as pure functions).
//! - No request path unwraps or panics on purpose (denied below).
//! - No error's text reaches a body: `ApiError` answers with fixed texts.
//! - An answer is built whole before hyper writes it, so a database
//!   connection is back in its pool before a slow client reads a byte.
//! - No import circles: a lower module reports to a higher one through a
//!   small interface (`metrics` reads the pools through `PoolGaugeSource`).

// Invariant: no request path unwraps or panics on purpose (a bug ends one
// request, as `panic = "unwind"` and the handlers' `catch_unwind` promise,
// but nothing here should rely on that).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod activity;
pub mod compute;
pub mod config;
pub mod db;
pub mod error;
pub mod handlers;
pub mod head;
pub mod io;
pub mod json;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod params;
pub mod response;
pub mod router;
pub mod rows;
pub mod seed;
pub mod server;
pub mod startup;
