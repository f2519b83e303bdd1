//! Prometheus metrics: requests and latency per route and status, pool and
//! connection gauges, allocator statistics; rendered at `/metrics`.
//!
//! The hot path only adds to counters of its own thread's shard: relaxed
//! atomic adds on a cache line no other thread writes, so two cores never
//! fight over one counter and there is no lock. Rendering sums the shards.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::router::RouteLabel;

/// The statuses the server answers with; anything else is counted as "other".
const STATUSES: [u16; 8] = [200, 400, 404, 405, 422, 500, 503, 0];

/// Upper bounds of the latency buckets, in microseconds (`le` in seconds).
const BUCKETS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

const SHARDS: usize = 16;

/// One thread's counters, alone on its cache lines.
#[repr(align(128))]
struct Shard {
    requests: [[AtomicU64; STATUSES.len()]; RouteLabel::ALL.len()],
    /// Per route: counts per bucket (not cumulative), then +Inf.
    latency_buckets: [[AtomicU64; BUCKETS_US.len() + 1]; RouteLabel::ALL.len()],
    latency_sum_us: [AtomicU64; RouteLabel::ALL.len()],
    open_connections: AtomicI64,
    waiting_for_database: AtomicI64,
}

impl Shard {
    const fn new() -> Shard {
        Shard {
            requests: [const { [const { AtomicU64::new(0) }; STATUSES.len()] };
                RouteLabel::ALL.len()],
            latency_buckets: [const { [const { AtomicU64::new(0) }; BUCKETS_US.len() + 1] };
                RouteLabel::ALL.len()],
            latency_sum_us: [const { AtomicU64::new(0) }; RouteLabel::ALL.len()],
            open_connections: AtomicI64::new(0),
            waiting_for_database: AtomicI64::new(0),
        }
    }
}

static SHARD_TABLE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard, given out round-robin on first use.
#[inline]
fn shard() -> &'static Shard {
    let index = MY_SHARD.with(|mine| {
        let mut index = mine.get();
        if index == usize::MAX {
            index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            mine.set(index);
        }
        index
    });
    &SHARD_TABLE[index]
}

/// Whether requests are counted; on unless `--no-metrics`, which exists to
/// measure what counting costs (docs/PERFORMANCE.md).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns request counting off (`--no-metrics`).
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// Whether requests are counted, so the caller can skip timing them too.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counts one answered request.
#[inline]
pub fn record_request(route: RouteLabel, status: u16, elapsed: Duration) {
    let shard = shard();
    let route = route as usize;
    let status = STATUSES
        .iter()
        .position(|known| *known == status)
        .unwrap_or(STATUSES.len() - 1);
    shard.requests[route][status].fetch_add(1, Ordering::Relaxed);
    let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
    let bucket = BUCKETS_US.partition_point(|bound| *bound < micros);
    shard.latency_buckets[route][bucket].fetch_add(1, Ordering::Relaxed);
    shard.latency_sum_us[route].fetch_add(micros, Ordering::Relaxed);
}

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

/// The Prometheus text exposition of every metric, for every registered
/// pool. The lock is taken here only, never on the request path.
pub fn render_all() -> String {
    let pools: PoolGauges = POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|source| source.pool_gauges())
        .sum();
    render(pools)
}

/// The Prometheus text exposition of every metric, with these pool gauges.
pub fn render(pools: PoolGauges) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_requests(&mut out);
    render_gauges(&mut out, pools);
    render_memory(&mut out);
    out
}

fn sum<T>(read: impl Fn(&Shard) -> T) -> T
where
    T: std::iter::Sum<T>,
{
    SHARD_TABLE.iter().map(read).sum()
}

fn render_requests(out: &mut String) {
    out.push_str("# HELP bakeoff_requests_total Requests answered, by route and status.\n");
    out.push_str("# TYPE bakeoff_requests_total counter\n");
    for (route_index, label) in RouteLabel::ALL.iter().enumerate() {
        let route = label.template();
        for (status_index, status) in STATUSES.iter().enumerate() {
            let count: u64 =
                sum(|shard| shard.requests[route_index][status_index].load(Ordering::Relaxed));
            if count == 0 {
                continue;
            }
            let status = match status {
                0 => "other".to_owned(),
                status => status.to_string(),
            };
            let _ = writeln!(
                out,
                "bakeoff_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
    }

    out.push_str(
        "# HELP bakeoff_request_duration_seconds Time from request head to response, by route.\n",
    );
    out.push_str("# TYPE bakeoff_request_duration_seconds histogram\n");
    for (route_index, label) in RouteLabel::ALL.iter().enumerate() {
        let route = label.template();
        let mut cumulative = 0;
        for bucket in 0..=BUCKETS_US.len() {
            cumulative +=
                sum(|shard| shard.latency_buckets[route_index][bucket].load(Ordering::Relaxed));
            let bound = match BUCKETS_US.get(bucket) {
                Some(micros) => format!("{}", *micros as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "bakeoff_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum_us: u64 = sum(|shard| shard.latency_sum_us[route_index].load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "bakeoff_request_duration_seconds_sum{{route=\"{route}\"}} {}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "bakeoff_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
        );
    }
}

fn render_gauges(out: &mut String, pools: PoolGauges) {
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

fn render_memory(out: &mut String) {
    if let Some(resident) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP bakeoff_resident_bytes Resident memory of the process.\n# TYPE bakeoff_resident_bytes gauge\nbakeoff_resident_bytes {resident}"
        );
    }
    for (name, help, value) in allocator_statistics() {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok()?)
}

/// jemalloc's own view of its heap, when it is the allocator.
#[cfg(feature = "jemalloc")]
fn allocator_statistics() -> Vec<(&'static str, &'static str, u64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    if epoch::advance().is_err() {
        return Vec::new();
    }
    let mut statistics = Vec::new();
    if let Ok(allocated) = stats::allocated::read() {
        statistics.push((
            "bakeoff_allocator_allocated_bytes",
            "Bytes the application has allocated (jemalloc).",
            allocated as u64,
        ));
    }
    if let Ok(resident) = stats::resident::read() {
        statistics.push((
            "bakeoff_allocator_resident_bytes",
            "Bytes in physically resident pages mapped by the allocator (jemalloc).",
            resident as u64,
        ));
    }
    statistics
}

/// mimalloc and the system allocator keep no statistics we can read
/// cheaply; the process's resident bytes stand for them.
#[cfg(not(feature = "jemalloc"))]
fn allocator_statistics() -> Vec<(&'static str, &'static str, u64)> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_shows_recorded_requests_and_cumulative_buckets() {
        record_request(RouteLabel::Healthz, 200, Duration::from_micros(300));
        record_request(RouteLabel::Healthz, 200, Duration::from_millis(3));
        let text = render(PoolGauges::default());
        assert!(
            text.contains("bakeoff_requests_total{route=\"/healthz\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "bakeoff_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1"
        ));
        assert!(
            text.contains(
                "bakeoff_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 2"
            )
        );
        assert!(text.contains("bakeoff_request_duration_seconds_count{route=\"/healthz\"} 2"));
        assert!(text.contains("# TYPE bakeoff_open_connections gauge"));
    }
}
