//! The per-thread shards every counter lives in, and the per-runtime
//! counters they hold: the hot path adds to its own thread's shard only,
//! rendering sums them.
//!
//! A shard is one thread's block of relaxed atomics on cache lines no other
//! thread writes, so two cores never fight over one counter and there is no
//! lock.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::router::RouteLabel;

/// The statuses the server answers with; anything else is counted as "other".
pub(super) const STATUSES: [u16; 8] = [200, 400, 404, 405, 422, 500, 503, 0];

/// Upper bounds of the latency buckets, in microseconds (`le` in seconds).
pub(super) const BUCKETS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Shards, given out round-robin to the threads that count: enough for one
/// per serving thread on any machine this runs on (past that, threads share
/// a shard, and per-core runtimes that share one are counted together).
const SHARDS: usize = 64;

/// A shard's runtime label before a serving thread claims it.
pub(super) const NO_RUNTIME: usize = usize::MAX;

/// One thread's counters, alone on its cache lines.
#[repr(align(128))]
pub(super) struct Shard {
    /// Per route and status (in [`STATUSES`]' order): requests answered.
    pub(super) requests: [[AtomicU64; STATUSES.len()]; RouteLabel::ALL.len()],
    /// Per route: counts per bucket (not cumulative), then +Inf.
    pub(super) latency_buckets: [[AtomicU64; BUCKETS_US.len() + 1]; RouteLabel::ALL.len()],
    /// Per route: the sum of the latencies, in microseconds.
    pub(super) latency_sum_us: [AtomicU64; RouteLabel::ALL.len()],
    /// HTTP connections opened minus closed by this thread.
    pub(super) open_connections: AtomicI64,
    /// Requests of this thread waiting for a database connection.
    pub(super) waiting_for_database: AtomicI64,
    /// The runtime whose thread counts here, or [`NO_RUNTIME`].
    pub(super) runtime: AtomicUsize,
    /// The PostgreSQL side and the accept loop, per runtime (see [`Counter`]).
    pub(super) counters: [AtomicU64; Counter::ALL.len()],
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
    pub(super) fn describe(self) -> (&'static str, &'static str) {
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

/// Every shard; rendering reads them all.
pub(super) static SHARD_TABLE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard, given out round-robin on first use.
#[inline]
pub(super) fn shard() -> &'static Shard {
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

/// One value summed over every shard.
pub(super) fn sum<T>(read: impl Fn(&Shard) -> T) -> T
where
    T: std::iter::Sum<T>,
{
    SHARD_TABLE.iter().map(read).sum()
}
