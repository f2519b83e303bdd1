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

/// Shards, given out round-robin to the threads that count: enough for one
/// per serving thread on any machine this runs on (past that, threads share
/// a shard, and per-core runtimes that share one are counted together).
const SHARDS: usize = 64;

/// A shard's runtime label before a serving thread claims it.
const NO_RUNTIME: usize = usize::MAX;

/// One thread's counters, alone on its cache lines.
#[repr(align(128))]
struct Shard {
    requests: [[AtomicU64; STATUSES.len()]; RouteLabel::ALL.len()],
    /// Per route: counts per bucket (not cumulative), then +Inf.
    latency_buckets: [[AtomicU64; BUCKETS_US.len() + 1]; RouteLabel::ALL.len()],
    latency_sum_us: [AtomicU64; RouteLabel::ALL.len()],
    open_connections: AtomicI64,
    waiting_for_database: AtomicI64,
    /// The runtime whose thread counts here, or [`NO_RUNTIME`].
    runtime: AtomicUsize,
    /// The PostgreSQL side and the accept loop, per runtime (see [`Counter`]).
    counters: [AtomicU64; Counter::ALL.len()],
}

/// The per-runtime counters that are not derived from the request counters
/// or the open-connection gauge: each becomes
/// `bakeoff_runtime_<name>_total{runtime="N"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// HTTP connections accepted.
    ConnectionsAccepted,
    /// Statements sent to PostgreSQL by the handlers (each an Execute of a
    /// prepared or unnamed statement; connection set-up not included).
    DbQueries,
    /// Writes to a PostgreSQL socket that moved bytes (one system call each).
    DbWrites,
    /// Bytes written to PostgreSQL sockets.
    DbWrittenBytes,
    /// Reads from a PostgreSQL socket that moved bytes (one system call each).
    DbReads,
    /// Bytes read from PostgreSQL sockets.
    DbReadBytes,
    /// Polls of the PostgreSQL connection tasks: each a wake-up of the
    /// runtime for the database (a request queued, or the socket ready).
    DbDriverPolls,
    /// PostgreSQL sessions opened (one per host tried that accepted).
    DbConnects,
}

impl Counter {
    /// Every counter, in the order of the shard's array.
    pub const ALL: [Counter; 8] = [
        Counter::ConnectionsAccepted,
        Counter::DbQueries,
        Counter::DbWrites,
        Counter::DbWrittenBytes,
        Counter::DbReads,
        Counter::DbReadBytes,
        Counter::DbDriverPolls,
        Counter::DbConnects,
    ];

    /// The metric's name and help.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Counter::ConnectionsAccepted => (
                "bakeoff_runtime_connections_accepted_total",
                "HTTP connections accepted by the runtime.",
            ),
            Counter::DbQueries => (
                "bakeoff_runtime_db_queries_total",
                "Statements the runtime's requests sent to PostgreSQL.",
            ),
            Counter::DbWrites => (
                "bakeoff_runtime_db_writes_total",
                "Socket writes to PostgreSQL that moved bytes (system calls).",
            ),
            Counter::DbWrittenBytes => (
                "bakeoff_runtime_db_written_bytes_total",
                "Bytes written to PostgreSQL.",
            ),
            Counter::DbReads => (
                "bakeoff_runtime_db_reads_total",
                "Socket reads from PostgreSQL that moved bytes (system calls).",
            ),
            Counter::DbReadBytes => (
                "bakeoff_runtime_db_read_bytes_total",
                "Bytes read from PostgreSQL.",
            ),
            Counter::DbDriverPolls => (
                "bakeoff_runtime_db_driver_polls_total",
                "Polls of the PostgreSQL connection tasks (wake-ups for the database).",
            ),
            Counter::DbConnects => (
                "bakeoff_runtime_db_connects_total",
                "PostgreSQL sessions opened by the runtime's pools.",
            ),
        }
    }
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
            runtime: AtomicUsize::new(NO_RUNTIME),
            counters: [const { AtomicU64::new(0) }; Counter::ALL.len()],
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

/// This thread serves runtime `runtime` (the per-core runtimes are numbered
/// from 0; the `multi` runtime is 0): its shard is labelled so.
pub fn enter_runtime(runtime: usize) {
    shard().runtime.store(runtime, Ordering::Relaxed);
}

/// Adds `amount` to one of this thread's per-runtime counters.
#[inline]
pub fn count(counter: Counter, amount: u64) {
    shard().counters[counter as usize].fetch_add(amount, Ordering::Relaxed);
}

/// A statement sent to PostgreSQL.
#[inline]
pub fn database_query() {
    count(Counter::DbQueries, 1);
}

/// A write of `bytes` to a PostgreSQL socket.
#[inline]
pub fn database_written(bytes: usize) {
    let shard = shard();
    shard.counters[Counter::DbWrites as usize].fetch_add(1, Ordering::Relaxed);
    shard.counters[Counter::DbWrittenBytes as usize].fetch_add(bytes as u64, Ordering::Relaxed);
}

/// A read of `bytes` from a PostgreSQL socket (0: the end, not counted).
#[inline]
pub fn database_read(bytes: usize) {
    if bytes == 0 {
        return;
    }
    let shard = shard();
    shard.counters[Counter::DbReads as usize].fetch_add(1, Ordering::Relaxed);
    shard.counters[Counter::DbReadBytes as usize].fetch_add(bytes as u64, Ordering::Relaxed);
}

/// A PostgreSQL connection task was polled.
#[inline]
pub fn database_driver_polled() {
    count(Counter::DbDriverPolls, 1);
}

/// A PostgreSQL session opened.
pub fn database_connected() {
    count(Counter::DbConnects, 1);
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
    render_runtimes(&mut out);
    render_memory(&mut out);
    out
}

/// The per-runtime families, one sample per labelled runtime: the
/// connections accepted and open, the requests answered, and the
/// PostgreSQL side. A harness takes per-window deltas of every
/// `bakeoff_runtime_` family alike.
fn render_runtimes(out: &mut String) {
    let mut runtimes: Vec<usize> = SHARD_TABLE
        .iter()
        .map(|shard| shard.runtime.load(Ordering::Relaxed))
        .filter(|runtime| *runtime != NO_RUNTIME)
        .collect();
    runtimes.sort_unstable();
    runtimes.dedup();
    let of = |runtime: usize| {
        SHARD_TABLE
            .iter()
            .filter(move |shard| shard.runtime.load(Ordering::Relaxed) == runtime)
    };
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(usize) -> i128| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for runtime in &runtimes {
            let _ = writeln!(out, "{name}{{runtime=\"{runtime}\"}} {}", value(*runtime));
        }
    };
    family(
        "bakeoff_runtime_open_connections",
        "gauge",
        "HTTP connections open on the runtime now.",
        &|runtime| {
            of(runtime)
                .map(|shard| i128::from(shard.open_connections.load(Ordering::Relaxed)))
                .sum()
        },
    );
    family(
        "bakeoff_runtime_requests_total",
        "counter",
        "Requests the runtime answered (any route and status; not counted with --no-metrics).",
        &|runtime| {
            of(runtime)
                .flat_map(|shard| shard.requests.iter().flatten())
                .map(|count| i128::from(count.load(Ordering::Relaxed)))
                .sum()
        },
    );
    for counter in Counter::ALL {
        let (name, help) = counter.describe();
        family(name, "counter", help, &|runtime| {
            of(runtime)
                .map(|shard| i128::from(shard.counters[counter as usize].load(Ordering::Relaxed)))
                .sum()
        });
    }
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

    #[test]
    fn runtime_counters_are_rendered_per_labelled_runtime() {
        // A thread of its own, so that its shard is not another test's.
        std::thread::spawn(|| {
            enter_runtime(7);
            count(Counter::ConnectionsAccepted, 2);
            database_query();
            database_written(100);
            database_read(0);
            database_read(40);
            add_open_connections(1);
            record_request(RouteLabel::Version, 200, Duration::from_micros(10));
        })
        .join()
        .unwrap();
        let text = render(PoolGauges::default());
        for expected in [
            "bakeoff_runtime_connections_accepted_total{runtime=\"7\"} 2",
            "bakeoff_runtime_db_queries_total{runtime=\"7\"} 1",
            "bakeoff_runtime_db_writes_total{runtime=\"7\"} 1",
            "bakeoff_runtime_db_written_bytes_total{runtime=\"7\"} 100",
            "bakeoff_runtime_db_reads_total{runtime=\"7\"} 1",
            "bakeoff_runtime_db_read_bytes_total{runtime=\"7\"} 40",
            "bakeoff_runtime_open_connections{runtime=\"7\"} 1",
            "bakeoff_runtime_requests_total{runtime=\"7\"} 1",
            "# TYPE bakeoff_runtime_db_driver_polls_total counter",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}
