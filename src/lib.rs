//! `bakeoff`: the hand-tuned Rust reference server of the contacts API
//! (`../shared/API.md`), on hyper 1.x, tokio, tokio-postgres and bb8.
//!
//! Code map, one concern per file:
//! - [`config`]: command line and environment.
//! - [`server`]: sockets, accept loop, hyper connections, dispatch, shutdown.
//! - [`io`]: the socket wrapper that coalesces pipelined answers safely.
//! - [`router`]: method and path to a [`router::Route`]; 404 and 405.
//! - [`params`]: percent-decoding and the parameter rules; 422.
//! - [`handlers`]: one function per endpoint.
//! - [`db`]: the pool, with statements prepared once per connection.
//! - [`rows`]: PostgreSQL rows to JSON, from the rows' own bytes.
//! - [`json`]: the JSON string and integer writer.
//! - [`response`]: response building and static header values.
//! - [`error`]: [`error::ApiError`] and its FastAPI-shaped answers.
//! - [`log`]: throttled logging to stderr.
//! - [`memory`]: gives freed memory back after a wave of connections closes.
//! - [`metrics`]: Prometheus counters, sharded per thread, and `/metrics`.
//! - [`seed`]: `bakeoff seed`, the schema and deterministic sample data.

pub mod config;
pub mod db;
pub mod error;
pub mod handlers;
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
