//! Prometheus metrics: requests and latency per route and status, pool and
//! connection gauges, allocator statistics, and counters per runtime
//! (`bakeoff_runtime_*{runtime="N"}`: connections, requests, and the
//! PostgreSQL side: queries, socket reads and writes, wake-ups of the
//! connection tasks); rendered at `/metrics`.
//!
//! The hot path only adds to counters of its own thread's shard: relaxed
//! atomic adds on a cache line no other thread writes, so two cores never
//! fight over one counter and there is no lock. Rendering sums the shards.
//! A serving thread labels its shard with its runtime's number
//! ([`enter_runtime`]); the per-runtime families sum the shards by label.
//!
//! This file is the facade the rest of the crate calls; by concern:
//! - `shard`: the per-thread shards and the per-runtime [`Counter`]s they
//!   hold.
//! - `requests`: requests by route and status, and their latency
//!   histogram; the `--no-metrics` switch.
//! - `gauges`: connections open, requests waiting, and the pools' gauges
//!   through [`PoolGaugeSource`].
//! - `runtime`: the per-runtime families.
//! - `memory`: resident bytes and the allocator's statistics.

mod gauges;
mod memory;
mod requests;
mod runtime;
mod shard;

pub use gauges::{
    PoolGaugeSource, PoolGauges, add_open_connections, add_waiting_for_database, register_pool,
};
pub use requests::{disable, enabled, record_request};
pub use runtime::{
    count, database_connected, database_driver_polled, database_query, database_read,
    database_written, enter_runtime,
};
pub use shard::Counter;

/// The Prometheus text exposition of every metric, for every registered
/// pool. The pools' lock is taken when rendering only, never on the request
/// path.
pub fn render_all() -> String {
    render(gauges::registered_pools())
}

/// The Prometheus text exposition of every metric, with these pool gauges.
pub fn render(pools: PoolGauges) -> String {
    let mut out = String::with_capacity(16 * 1024);
    requests::render_requests(&mut out);
    gauges::render_gauges(&mut out, pools);
    runtime::render_runtimes(&mut out);
    memory::render_memory(&mut out);
    out
}
