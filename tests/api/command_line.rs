//! The command line (docs/CLI.md): signals, bad settings, metrics, the
//! access log.

use testkit::http;

use crate::KIT;

#[test]
fn sigterm_and_sigint_stop_the_server_with_exit_code_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let server = KIT.start_server(&KIT.fixture().database_url, &[]);
        assert_eq!(http::get(server.addr, "/version").status, 200);
        let status = server.stop_with(signal).expect("no exit within 30 s");
        assert_eq!(status.code(), Some(0), "after signal {signal}: {status}");
    }
}

#[test]
fn a_bad_setting_exits_with_code_2_and_one_line_naming_it() {
    for (var, value) in [
        ("RUNTIME", "sideways"),
        ("BIND", "not-an-address"),
        ("POOL_SIZE", "zero"),
        ("DATABASE_URL", "garbage://"),
    ] {
        KIT.assert_bad_setting_refused(var, value);
    }
}

#[test]
fn metrics_count_requests_by_route_and_status_in_prometheus_text() {
    let server = KIT.start_server(&KIT.fixture().database_url, &[]);
    for _ in 0..3 {
        assert_eq!(http::get(server.addr, "/types").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(http::get(server.addr, "/nope").status, 404);
    }
    assert_eq!(
        http::get(server.addr, "/contacts/fetch?limit=0").status,
        422
    );
    let response = http::get(server.addr, "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.body_str();
    // By default, two connections per core (one pool per core), plus one per
    // core for the `starts` pages, planned per call.
    let cores = std::thread::available_parallelism().unwrap().get();
    let pool_size = format!("bakeoff_pool_size {}", 3 * cores);
    for line in [
        "bakeoff_requests_total{route=\"/types\",status=\"200\"} 3",
        "bakeoff_requests_total{route=\"unmatched\",status=\"404\"} 2",
        "bakeoff_requests_total{route=\"/contacts/fetch\",status=\"422\"} 1",
        "bakeoff_request_duration_seconds_count{route=\"/types\"} 3",
        "bakeoff_request_duration_seconds_bucket{route=\"/types\",le=\"+Inf\"} 3",
        &pool_size,
    ] {
        assert!(
            text.lines().any(|candidate| candidate == line),
            "no line {line:?} in:\n{text}"
        );
    }
    // The scrape's own connection is open while it is answered.
    assert!(
        text.lines().any(
            |candidate| candidate.starts_with("bakeoff_open_connections ")
                && candidate != "bakeoff_open_connections 0"
        ),
        "{text}"
    );
}

/// The sum of a `bakeoff_runtime_` family over its `runtime="N"` samples,
/// and how many samples it has.
fn runtime_family(text: &str, name: &str) -> (f64, usize) {
    let prefix = format!("{name}{{runtime=\"");
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    (values.iter().sum(), values.len())
}

/// The per-runtime families: one sample per runtime (one per worker in
/// the per-core shape), counting what the requests did: connections,
/// requests, statements, and the PostgreSQL socket's reads and writes.
#[test]
fn metrics_count_the_work_of_each_runtime() {
    let server = KIT.start_server(&KIT.fixture().database_url, &[("WORKER_THREADS", "2")]);
    for _ in 0..5 {
        assert_eq!(http::get(server.addr, "/types").status, 200);
    }
    let text = http::get(server.addr, "/metrics").body_str();
    let family = |name| runtime_family(&text, name);
    // Five connections for /types, and the scrape's own.
    assert_eq!(
        family("bakeoff_runtime_connections_accepted_total"),
        (6.0, 2)
    );
    assert_eq!(family("bakeoff_runtime_requests_total"), (5.0, 2));
    assert_eq!(family("bakeoff_runtime_db_queries_total"), (5.0, 2));
    assert_eq!(family("bakeoff_runtime_open_connections").1, 2);
    for name in [
        "bakeoff_runtime_db_writes_total",
        "bakeoff_runtime_db_written_bytes_total",
        "bakeoff_runtime_db_reads_total",
        "bakeoff_runtime_db_read_bytes_total",
        "bakeoff_runtime_db_driver_polls_total",
    ] {
        let (total, samples) = family(name);
        assert_eq!(samples, 2, "{name} in:\n{text}");
        assert!(total > 0.0, "{name} counted nothing in:\n{text}");
    }
    // Each pool's sessions: two main and one planned per call, per runtime.
    // The pools open them in the background from the start, so on a busy
    // machine the last may still be connecting at the first scrape: later
    // scrapes are read for this family only (they add accepted connections).
    let mut connects = family("bakeoff_runtime_db_connects_total").0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connects < 6.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let later = http::get(server.addr, "/metrics").body_str();
        connects = runtime_family(&later, "bakeoff_runtime_db_connects_total").0;
    }
    assert!(
        connects >= 6.0,
        "{connects} connects; the first scrape:\n{text}"
    );
}

#[test]
fn the_access_log_is_off_by_default_and_one_line_per_request_when_on() {
    let quiet = KIT.start_server(&KIT.fixture().database_url, &[]);
    assert_eq!(http::get(quiet.addr, "/types").status, 200);
    let logged = KIT.start_server(&KIT.fixture().database_url, &[("ACCESS_LOG", "true")]);
    assert_eq!(http::get(logged.addr, "/types").status, 200);
    assert_eq!(http::get(logged.addr, "/contacts/0").status, 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = logged.stderr();
        if log.contains("/contacts/0") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        log.lines()
            .any(|line| line.contains("\"GET /types HTTP/1.1\" 200 ")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("\"GET /contacts/0 HTTP/1.1\" 404 30 ")),
        "{log}"
    );
    assert!(!quiet.stderr().contains("GET /types"), "{}", quiet.stderr());
}
