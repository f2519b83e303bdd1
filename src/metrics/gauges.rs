//! The process-wide gauges: HTTP connections open, requests waiting for the
//! database, and the pools' gauges, which the database reports through
//! [`PoolGaugeSource`] so that `metrics` never imports `db`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use super::shard::{shard, sum};

/// A connection opened (`+1`) or closed (`-1`).
#[inline]
pub fn add_open_connections(delta: i64) {
    shard().open_connections.fetch_add(delta, Ordering::Relaxed);
}

/// A request started (`+1`) or stopped (`-1`) waiting for a database
/// connection.
#[inline]
pub fn add_waiting_for_database(delta: i64) {
    shard()
        .waiting_for_database
        .fetch_add(delta, Ordering::Relaxed);
}

/// What a pool reports to `/metrics`: the database provides it through
/// [`PoolGaugeSource`], so this module never depends on the database's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Connections the pool keeps.
    pub size: u64,
    /// Connections open now.
    pub connections: u64,
    /// Open connections idle in bb8 (shared mode holds them all out).
    pub idle: u64,
    /// Checkouts that had to wait.
    pub waited: u64,
    /// Checkouts that timed out.
    pub timed_out: u64,
    /// Pools that find the database unreachable and fail fast (0 or 1 each).
    pub down: u64,
}

impl std::iter::Sum for PoolGauges {
    fn sum<I: Iterator<Item = PoolGauges>>(gauges: I) -> PoolGauges {
        gauges.fold(PoolGauges::default(), |total, pool| PoolGauges {
            size: total.size + pool.size,
            connections: total.connections + pool.connections,
            idle: total.idle + pool.idle,
            waited: total.waited + pool.waited,
            timed_out: total.timed_out + pool.timed_out,
            down: total.down + pool.down,
        })
    }
}

/// Something that can report pool gauges: the pools of one database.
pub trait PoolGaugeSource: Send + Sync {
    /// The gauges now.
    fn pool_gauges(&self) -> PoolGauges;
}

/// The process's databases: one, or one per core. Registered at start.
static POOLS: Mutex<Vec<&'static dyn PoolGaugeSource>> = Mutex::new(Vec::new());

/// Adds a source to those `/metrics` reports.
pub fn register_pool(source: &'static dyn PoolGaugeSource) {
    POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(source);
}

/// The gauges of every registered pool, summed. The lock is taken here
/// only, never on the request path.
pub(super) fn registered_pools() -> PoolGauges {
    POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|source| source.pool_gauges())
        .sum()
}

/// Every gauge, with these pool gauges and the shards' sums.
pub(super) fn render_gauges(out: &mut String, pools: PoolGauges) {
    let open: i64 = sum(|shard| shard.open_connections.load(Ordering::Relaxed));
    let waiting: i64 = sum(|shard| shard.waiting_for_database.load(Ordering::Relaxed));
    let PoolGauges {
        size,
        connections,
        idle,
        waited,
        timed_out,
        down,
    } = pools;
    for (name, kind, help, value) in [
        (
            "bakeoff_open_connections",
            "gauge",
            "HTTP connections open now.",
            open.to_string(),
        ),
        (
            "bakeoff_pool_size",
            "gauge",
            "PostgreSQL connections the pools keep.",
            size.to_string(),
        ),
        (
            "bakeoff_pool_connections",
            "gauge",
            "PostgreSQL connections open now.",
            connections.to_string(),
        ),
        (
            "bakeoff_pool_idle_connections",
            "gauge",
            "Open PostgreSQL connections idle in bb8 (shared mode holds them all out).",
            idle.to_string(),
        ),
        (
            "bakeoff_pool_down",
            "gauge",
            "Pools that find the database unreachable and answer 503 at once.",
            down.to_string(),
        ),
        (
            "bakeoff_pool_waiting_requests",
            "gauge",
            "Requests waiting for a database connection now.",
            waiting.to_string(),
        ),
        (
            "bakeoff_pool_gets_waited_total",
            "counter",
            "Checkouts that had to wait for a connection.",
            waited.to_string(),
        ),
        (
            "bakeoff_pool_gets_timed_out_total",
            "counter",
            "Checkouts that timed out (answered 503).",
            timed_out.to_string(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
