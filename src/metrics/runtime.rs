//! The per-runtime families (`bakeoff_runtime_*{runtime="N"}`): a serving
//! thread labels its shard with its runtime's number ([`enter_runtime`]),
//! the accept loop and the PostgreSQL side add to their [`Counter`]s, and
//! rendering sums the shards by label.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::shard::{Counter, NO_RUNTIME, SHARD_TABLE, shard};

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

/// The per-runtime families, one sample per labelled runtime: the
/// connections accepted and open, the requests answered, and the
/// PostgreSQL side. A harness takes per-window deltas of every
/// `bakeoff_runtime_` family alike.
pub(super) fn render_runtimes(out: &mut String) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{PoolGauges, add_open_connections, record_request, render};
    use crate::router::RouteLabel;

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
