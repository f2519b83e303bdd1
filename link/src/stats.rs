//! What the link counts while it runs, and the one summary line it prints
//! when it stops: connections, errors, chunks, bytes, how late chunks left
//! after their due time (a histogram, to the 0.1 µs below 1 ms), and the
//! CPU it used per chunk.

use crate::sys;

/// Histogram buckets of 100 ns below 1 ms, then of 10 µs up to ~101 ms; the
/// last bucket takes anything later (the exact maximum is kept apart).
const FINE_BUCKETS: usize = 10_000;
/// See [`FINE_BUCKETS`].
const COARSE_BUCKETS: usize = 10_000;
/// Width of a fine bucket, ns.
const FINE_NS: u64 = 100;
/// Width of a coarse bucket, ns.
const COARSE_NS: u64 = 10_000;

/// A distribution of latenesses, ns.
pub struct Histogram {
    /// Counts per bucket: [`FINE_BUCKETS`] then [`COARSE_BUCKETS`].
    buckets: Vec<u64>,
    /// Samples recorded.
    count: u64,
    /// Smallest sample, ns.
    min: u64,
    /// Largest sample, ns.
    max: u64,
    /// Sum of the samples, ns (for the mean).
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: vec![0; FINE_BUCKETS + COARSE_BUCKETS],
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, ns: u64) {
        let fine_limit = FINE_BUCKETS as u64 * FINE_NS;
        let index = if ns < fine_limit {
            (ns / FINE_NS) as usize
        } else {
            FINE_BUCKETS + (((ns - fine_limit) / COARSE_NS) as usize).min(COARSE_BUCKETS - 1)
        };
        self.buckets[index] += 1;
        self.count += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
    }

    /// The upper edge of the bucket holding the `fraction` quantile (never
    /// above the maximum), ns; 0 when empty.
    pub fn quantile(&self, fraction: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((fraction * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = if index == self.buckets.len() - 1 {
                    // Open-ended: anything later than the others.
                    self.max
                } else if index < FINE_BUCKETS {
                    (index as u64 + 1) * FINE_NS
                } else {
                    FINE_BUCKETS as u64 * FINE_NS + ((index - FINE_BUCKETS) as u64 + 1) * COARSE_NS
                };
                return upper.min(self.max);
            }
        }
        self.max
    }

    /// "min A p50 B p99 C max D mean E µs (n N)".
    pub fn describe(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        let micros = |ns: u64| ns as f64 / 1000.0;
        format!(
            "min {:.1} p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} mean {:.1} µs (n {})",
            micros(self.min),
            micros(self.quantile(0.5)),
            micros(self.quantile(0.9)),
            micros(self.quantile(0.99)),
            micros(self.max),
            self.sum as f64 / self.count as f64 / 1000.0,
            self.count
        )
    }
}

/// The running counts of one link process.
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// The most open at once.
    pub peak_open: u64,
    /// Connection pairs closed by an error (a reset, a refused connect, a
    /// failed read or write), each counted once.
    pub errors: u64,
    /// Errors written to stderr so far (the first [`Stats::LOGGED_ERRORS`]).
    pub logged_errors: u64,
    /// Data chunks released after their hold.
    pub chunks: u64,
    /// Bytes read, both directions.
    pub bytes: u64,
    /// How late each chunk was released after its due time.
    pub lateness: Histogram,
    /// Process CPU time when the link started forwarding, ns.
    pub cpu_at_start_ns: u64,
}

impl Stats {
    /// Errors beyond this many are counted, not logged: a storm of resets
    /// must not flood the harness's log.
    pub const LOGGED_ERRORS: u64 = 20;

    /// Zero counts, the CPU clock read now.
    pub fn new() -> Stats {
        Stats {
            accepted: 0,
            open: 0,
            peak_open: 0,
            errors: 0,
            logged_errors: 0,
            chunks: 0,
            bytes: 0,
            lateness: Histogram::default(),
            cpu_at_start_ns: sys::process_cpu_ns(),
        }
    }

    /// The closing summary (without the program's prefix): `spun_ns` is the
    /// time spent busy-waiting, `lead_ns` the last wake-up lead.
    pub fn summary(&self, spun_ns: u64, lead_ns: u64) -> String {
        let cpu_ns = sys::process_cpu_ns().saturating_sub(self.cpu_at_start_ns);
        let per_chunk = if self.chunks > 0 {
            format!("{:.1}", cpu_ns as f64 / self.chunks as f64 / 1000.0)
        } else {
            "-".into()
        };
        format!(
            "{} connections (at most {} open), {} closed by an error; {} chunks, {} bytes; \
             released after due: {}; CPU {:.1} ms = {} µs per chunk, {:.1} ms of it spinning; \
             wake-up lead {:.1} µs",
            self.accepted,
            self.peak_open,
            self.errors,
            self.chunks,
            self.bytes,
            self.lateness.describe(),
            cpu_ns as f64 / 1e6,
            per_chunk,
            spun_ns as f64 / 1e6,
            lead_ns as f64 / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut histogram = Histogram::default();
        // 1..=1000 µs, one sample each.
        for micros in 1..=1000u64 {
            histogram.record(micros * 1000);
        }
        assert!(histogram.describe().ends_with("(n 1000)"));
        // The 500th sample is 500 µs; its bucket's upper edge is 0.1 µs above
        // in the fine range.
        assert_eq!(histogram.quantile(0.5), 500_100);
        // The 990th is 990 µs.
        assert_eq!(histogram.quantile(0.99), 990_100);
        // The top sample is 1000 µs, in the first coarse bucket; capped by max.
        assert_eq!(histogram.quantile(1.0), 1_000_000);
    }

    #[test]
    fn very_late_samples_land_in_the_last_bucket_and_keep_their_maximum() {
        let mut histogram = Histogram::default();
        histogram.record(5);
        histogram.record(10_000_000_000);
        assert_eq!(histogram.quantile(0.5), 100);
        assert_eq!(histogram.quantile(1.0), 10_000_000_000);
        assert!(histogram.describe().contains("max 10000000.0"));
    }

    #[test]
    fn an_empty_histogram_says_so() {
        assert_eq!(Histogram::default().quantile(0.5), 0);
        assert_eq!(Histogram::default().describe(), "no samples");
    }
}
