//! Requests answered, by route and status, and their latency histogram by
//! route (`bakeoff_requests_total`, `bakeoff_request_duration_seconds`):
//! counted per answer unless `--no-metrics`, rendered summed over the
//! shards.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::shard::{BUCKETS_US, STATUSES, shard, sum};
use crate::router::RouteLabel;

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

/// Both families, every route: a status only once it has answered, every
/// bucket always.
pub(super) fn render_requests(out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{PoolGauges, render};

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
