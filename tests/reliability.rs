//! Reliability and security, proven against the real binary over raw
//! sockets: database faults (PostgreSQL stopped and restarted under load,
//! backends killed, queries stuck behind a lock, a query plan that must not
//! degrade with the traffic before it), hostile and broken clients
//! (malformed requests, slowloris, thousands of idle connections, a client
//! that never reads, running out of file descriptors, a `/fibonacci` flood),
//! graceful shutdown with requests in flight, SQL injection, the read-only
//! role, and what responses and logs must never show.
//!
//! Each test prints what it measured on lines starting with `[figure]`
//! (`cargo test --test reliability -- --nocapture`, or
//! `scripts/reliability.sh`): docs/RELIABILITY.md's figures come from
//! there. The tests run one at a time (see [`serial`]): several measure
//! latencies, which a neighbour's load on two cores would distort.

// Shared with tests/api.rs, which uses what this file does not.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::http::{self, Conn, Response};
use support::{
    Server, addr, assert_alive, assert_bad_setting_refused, assert_no_leak, fixture, pct, pg,
};

const SERVICE_UNAVAILABLE: &str = r#"{"detail":"Service Unavailable"}"#;
/// A password that must never show in a response or a log line.
const SECRET: &str = "Sup3r-s3cret-pw";

// ---------------------------------------------------------------- helpers

/// The tests of this file run one at a time: several measure latency or
/// memory, and several saturate both cores on purpose.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints a measured figure (shown with `--nocapture`).
fn figure(test: &str, text: impl std::fmt::Display) {
    eprintln!("[figure] {test}: {text}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile (0..=1) of `values`, or zero for none.
fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// p50 / p99 / max in milliseconds, for figures.
fn spread(values: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
        ms(quantile(values, 0.5)),
        ms(quantile(values, 0.99)),
        ms(quantile(values, 1.0)),
        values.len()
    )
}

/// A connection that reports errors instead of panicking, with a read
/// timeout so that a hang shows as an error.
fn try_connect(addr: SocketAddr, read_timeout: Duration) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    Ok(Conn::from_stream(stream))
}

/// One GET on a fresh connection; any failure is an `Err` with its reason.
fn try_get(addr: SocketAddr, target: &str, read_timeout: Duration) -> io::Result<Response> {
    let mut conn = try_connect(addr, read_timeout)?;
    conn.try_send(&http::request_bytes("GET", target))?;
    conn.read_response(false)
}

/// GET on a fresh connection, timed.
fn timed_get(addr: SocketAddr, target: &str) -> (Duration, io::Result<Response>) {
    let start = Instant::now();
    let r = try_get(addr, target, Duration::from_secs(10));
    (start.elapsed(), r)
}

/// Asserts the contract's 503: exact body, `Retry-After` in seconds, no leak.
#[track_caller]
fn assert_503(what: &str, r: &Response) {
    assert_eq!(r.status, 503, "{what}: {r}");
    assert_eq!(r.body_str(), SERVICE_UNAVAILABLE, "{what}: {r}");
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After: {r}"));
    assert!(
        !retry.is_empty() && retry.bytes().all(|b| b.is_ascii_digit()),
        "{what}: Retry-After {retry:?}"
    );
    assert_no_leak(what, r, &[SECRET]);
}

/// Polls `target` until it answers 200, at most `limit`; the time it took.
fn wait_for_200(addr: SocketAddr, target: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(r) = try_get(addr, target, Duration::from_secs(5))
            && r.status == 200
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{target} did not answer 200 within {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A direct connection to the test database (as `postgres`).
fn pg_client() -> postgres::Client {
    postgres::Client::connect(&fixture().cluster.conn_string("bakeoff"), postgres::NoTls)
        .expect("connect to the test database")
}

/// Opens a transaction on `client` that holds an ACCESS EXCLUSIVE lock on
/// `contacts` (every query of that table waits) until it ends.
fn lock_contacts(client: &mut postgres::Client) -> postgres::Transaction<'_> {
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    tx
}

/// `DATABASE_URL` of the shared test cluster with a password (ignored by
/// its trust authentication, so it only travels through the server's
/// configuration and logs) and an application name of the test's own, so
/// that its backends can be found in `pg_stat_activity`.
fn url_with(application_name: &str) -> String {
    format!(
        "postgresql://postgres:{SECRET}@127.0.0.1:{}/bakeoff?application_name={application_name}",
        fixture().cluster.port
    )
}

/// Backends of `application_name` (the server's pooled connections).
fn backends(client: &mut postgres::Client, application_name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .unwrap()
        .get(0)
}

/// Resident memory of a process, from /proc, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Seeds a cluster of a test's own with `bakeoff seed`.
fn seed(cluster: &pg::Cluster, contacts: u32) {
    let out = std::process::Command::new(support::server::BIN)
        .args(["seed", "--contacts", &contacts.to_string()])
        .env("DATABASE_URL", cluster.url("bakeoff"))
        .env_remove("CONTACTS")
        .output()
        .expect("run bakeoff seed");
    assert!(
        out.status.success(),
        "bakeoff seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- load

/// One request the load generator made.
struct Sample {
    start: Instant,
    end: Instant,
    target: &'static str,
    /// A database endpoint (503 while the database is down).
    db: bool,
    /// The response, or why there was none (a hang shows as a timeout).
    result: Result<Response, String>,
}

impl Sample {
    fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|r| r.status)
    }

    fn latency(&self) -> Duration {
        self.end - self.start
    }

    fn describe(&self) -> String {
        match &self.result {
            Ok(r) => format!("{} → {r}", self.target),
            Err(e) => format!("{} → no response: {e}", self.target),
        }
    }
}

/// What the load generator asks for: database endpoints and the two that
/// need no database.
const LOAD_TARGETS: &[(&str, bool)] = &[
    ("/types", true),
    ("/version", false),
    ("/contacts/7", true),
    ("/contacts/fetch?limit=5&offset=10", true),
    ("/fibonacci/12", false),
    ("/contacts/for?limit=5&starts=m", true),
    ("/readyz", true),
    ("/healthz", false),
];

/// Closed-loop clients on keep-alive connections (a new connection after
/// any error), each request timed; stopped by [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// `clients` threads; each pauses `pause` between requests. Bounded:
    /// every thread also stops after 60 s or 100,000 requests.
    fn start(addr: SocketAddr, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|index| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || load_client(addr, index, pause, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients and returns every sample, in start order.
    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples: Vec<Sample> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("a load client panicked"))
            .collect();
        samples.sort_by_key(|s| s.start);
        samples
    }
}

fn load_client(addr: SocketAddr, index: usize, pause: Duration, stop: &AtomicBool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut samples = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut next = index;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && samples.len() < 100_000 {
        let (target, db) = LOAD_TARGETS[next % LOAD_TARGETS.len()];
        next += 1;
        let start = Instant::now();
        let result = (|| {
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(try_connect(addr, Duration::from_secs(5))?),
            };
            c.try_send(&http::request_bytes("GET", target))?;
            c.read_response(false)
        })();
        let end = Instant::now();
        let close = match &result {
            Ok(r) => r
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            Err(_) => true,
        };
        if close {
            conn = None;
        }
        samples.push(Sample {
            start,
            end,
            target,
            db,
            result: result.map_err(|e| e.to_string()),
        });
        thread::sleep(pause);
    }
    samples
}

/// Samples that started in `[from, to)`.
fn between(samples: &[Sample], from: Instant, to: Instant) -> impl Iterator<Item = &Sample> {
    samples
        .iter()
        .filter(move |s| s.start >= from && s.start < to)
}

// ---------------------------------------------------------------- database faults

/// One outage of the database during the load.
struct Outage {
    name: &'static str,
    /// Just before the stop began.
    stopping: Instant,
    /// PostgreSQL has exited.
    stopped: Instant,
    /// PostgreSQL accepts connections again.
    up: Instant,
    /// End of the observation window.
    until: Instant,
}

/// Checks one outage's samples against the rules and returns its figures.
fn check_outage(mode: &str, o: &Outage, samples: &[Sample], pool_timeout: Duration) -> String {
    let label = format!("{mode}, {}", o.name);
    // Every request that ended from the moment the stop began until the
    // next outage began (a request running into the next stop is that
    // outage's).
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.end >= o.stopping && s.end < o.until)
        .collect();
    // Never a hang, never a dropped connection, never a 500.
    for s in &window {
        assert!(s.result.is_ok(), "{label}: {}", s.describe());
    }
    // The endpoints without a database keep answering 200.
    let plain: Vec<&&Sample> = window.iter().filter(|s| !s.db).collect();
    for s in &plain {
        assert_eq!(s.status(), Some(200), "{label}: {}", s.describe());
    }
    // The first 200 of a database endpoint asked for after PostgreSQL stopped.
    let first_ok = window
        .iter()
        .filter(|s| s.db && s.start >= o.stopped && s.status() == Some(200))
        .map(|s| s.end)
        .min()
        .unwrap_or_else(|| panic!("{label}: no database request succeeded after the restart"));
    // `up` is when the harness saw PostgreSQL accept a connection (it polls
    // every 25 ms), so the server may beat it by a little: that is zero.
    let recovery = first_ok.saturating_duration_since(o.up);
    assert!(
        recovery <= Duration::from_secs(1),
        "{label}: first 200 {recovery:?} after PostgreSQL accepted connections (limit 1 s)"
    );
    // While it is down: 503 with Retry-After, within the pool timeout.
    let failed: Vec<&&Sample> = window
        .iter()
        .filter(|s| s.db && s.status() != Some(200))
        .collect();
    let mut failed_latency = Vec::new();
    for s in &failed {
        assert_503(
            &format!("{label}: {}", s.target),
            s.result.as_ref().unwrap(),
        );
        assert!(
            s.latency() <= pool_timeout + Duration::from_millis(300),
            "{label}: a 503 took {:?}, more than the pool timeout {pool_timeout:?}: {}",
            s.latency(),
            s.describe()
        );
        failed_latency.push(s.latency());
        // From the first 200 on, not one failure.
        assert!(
            s.start < first_ok,
            "{label}: a failure {:?} after the first 200: {}",
            s.start - first_ok,
            s.describe()
        );
    }
    let during = window.iter().filter(|s| s.start < first_ok);
    let plain_during = during.clone().filter(|s| !s.db).count();
    let after = window.iter().filter(|s| s.start >= first_ok).count();
    format!(
        "{label}: PostgreSQL down {:.0} ms; until the first 200 again: {} requests, \
         {} database requests answered 503 + Retry-After (latency {}), \
         {plain_during} without a database all 200, 0 errors or hangs; \
         first 200 {:.0} ms after PostgreSQL accepted connections; \
         then {after} requests, 0 failed",
        ms(o.up - o.stopping),
        during.count(),
        failed.len(),
        spread(&failed_latency),
        ms(recovery),
    )
}

/// PostgreSQL stopped for two seconds, then restarted at once, both under
/// concurrent load, on a cluster of the test's own.
fn database_restart_under_load(mode: &'static str) {
    let _serial = serial();
    let test = format!("restart under load ({mode})");
    let mut cluster = pg::Cluster::start("bakeoff").expect("a second cluster");
    seed(&cluster, 200);
    let url = format!(
        "postgresql://postgres:{SECRET}@127.0.0.1:{}/bakeoff",
        cluster.port
    );
    // The default pool timeout: 503s must come within it, at most 1 s.
    let mut server = Server::start(&url, &[("POOL_MODE", mode)]);
    wait_for_200(server.addr, "/types", Duration::from_secs(10));
    let pool_timeout = Duration::from_millis(1000);

    let load = Load::start(server.addr, 6, Duration::from_millis(2));
    thread::sleep(Duration::from_millis(800));
    let mut outages = Vec::new();
    for (name, down_for) in [
        ("stopped 2 s", Duration::from_secs(2)),
        ("restarted", Duration::ZERO),
    ] {
        let stopping = Instant::now();
        cluster.stop();
        let stopped = Instant::now();
        thread::sleep(down_for);
        cluster.start_again().expect("restart PostgreSQL");
        let up = Instant::now();
        thread::sleep(Duration::from_millis(2500));
        outages.push(Outage {
            name,
            stopping,
            stopped,
            up,
            until: Instant::now(),
        });
    }
    let samples = load.finish();
    if let Some(last) = outages.last_mut() {
        last.until = Instant::now();
    }
    assert!(
        samples.len() > 500,
        "{test}: only {} requests were made",
        samples.len()
    );
    // Before the first outage: all 200.
    for s in samples.iter().filter(|s| s.end < outages[0].stopping) {
        assert_eq!(
            s.status(),
            Some(200),
            "{test}, steady: {}\nserver log:\n{}",
            s.describe(),
            server.stderr()
        );
    }
    for o in &outages {
        figure(&test, check_outage(mode, o, &samples, pool_timeout));
    }
    // The long outage really produced 503s (the test is not vacuous).
    let failures = between(&samples, outages[0].stopping, outages[0].until)
        .filter(|s| s.status() == Some(503))
        .count();
    assert!(failures > 0, "{test}: no 503 while PostgreSQL was down");
    // Statements were prepared again on the new connections: the pages
    // and contacts, which use them, answered 200 after each restart.
    for target in ["/contacts/7", "/contacts/fetch?limit=5&offset=10"] {
        let after = between(&samples, outages[1].up, outages[1].until)
            .filter(|s| s.target == target && s.status() == Some(200))
            .count();
        assert!(
            after > 0,
            "{test}: {target} never answered after the restart"
        );
    }
    assert_alive(&mut server);
    assert!(
        !server.stderr().contains(SECRET),
        "{test}: the password is in the log:\n{}",
        server.stderr()
    );
}

#[test]
fn database_stopped_and_restarted_under_load_shared_pool() {
    database_restart_under_load("shared");
}

#[test]
fn database_stopped_and_restarted_under_load_exclusive_pool() {
    database_restart_under_load("exclusive");
}

/// Backends killed while PostgreSQL stays up (an administrator's
/// `pg_terminate_backend`, a pooler restart): the broken connections are
/// noticed without a round trip and replaced, never lent to a request.
#[test]
fn killed_database_connections_are_replaced_and_never_lent() {
    let _serial = serial();
    let test = "killed connections";
    let mut client = pg_client();
    for mode in ["shared", "exclusive"] {
        let app = format!("victim_{mode}");
        let mut s = Server::start(&url_with(&app), &[("POOL_MODE", mode), ("POOL_SIZE", "2")]);
        wait_for_200(s.addr, "/types", Duration::from_secs(10));
        // Shared mode adds connections of its own for the `starts` pages.
        let size = pool_gauge(s.addr, "bakeoff_pool_size") as i64;
        assert!(size >= 2, "{mode}: pool size {size}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while backends(&mut client, &app) < size {
            assert!(
                Instant::now() < deadline,
                "{mode}: the pool never opened {size} connections"
            );
            thread::sleep(Duration::from_millis(20));
        }

        // Idle server: kill every pooled connection, then ask.
        let killed: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .unwrap()
            .get(0);
        assert_eq!(killed, size, "{mode}");
        thread::sleep(Duration::from_millis(200));
        let mut conn = Conn::connect(s.addr);
        for i in 0..40 {
            let target = [
                "/types",
                "/contacts/3",
                "/contacts/fetch?limit=3",
                "/contacts/for?limit=3&starts=m",
            ][i % 4];
            let r = conn.get(target);
            assert_eq!(
                r.status, 200,
                "{mode}: request {i} after the kill: {target}: {r}"
            );
        }

        // Under load: the requests in flight on a killed connection may
        // fail (503); everything asked for afterwards succeeds.
        let load = Load::start(s.addr, 4, Duration::from_millis(2));
        thread::sleep(Duration::from_millis(500));
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .unwrap();
        let killed_at = Instant::now();
        thread::sleep(Duration::from_millis(1500));
        let samples = load.finish();
        let mut failed = 0;
        for s in &samples {
            match s.status() {
                Some(200) => {}
                Some(503) if s.start < killed_at + Duration::from_millis(100) => failed += 1,
                _ => panic!("{mode}: {}", s.describe()),
            }
        }
        let after = between(
            &samples,
            killed_at + Duration::from_millis(100),
            Instant::now(),
        )
        .count();
        figure(
            test,
            format!(
                "{mode}: all {size} pooled connections killed under load: {failed} requests in \
                 flight on them got 503, the next {after} all 200"
            ),
        );
        assert_alive(&mut s);
    }
}

/// A query stuck behind a lock is cancelled by the statement timeout,
/// answered 503, and gives its connection back: with a pool of one, other
/// requests still get it.
#[test]
fn a_query_stuck_behind_a_lock_is_bounded_by_the_statement_timeout() {
    let _serial = serial();
    let test = "statement timeout";
    let f = fixture();
    for mode in ["exclusive", "shared"] {
        let s = Server::start(
            &url_with(&format!("locked_{mode}")),
            &[
                ("POOL_MODE", mode),
                ("POOL_SIZE", "1"),
                ("STATEMENT_TIMEOUT_MS", "500"),
            ],
        );
        wait_for_200(s.addr, "/contacts/1", Duration::from_secs(10));
        let mut locker = pg_client();
        let tx = lock_contacts(&mut locker);

        let a = s.addr;
        // One query stuck: /types, which reads contact_types (not locked),
        // waits at most for its timeout, then gets the one connection.
        let stuck = thread::spawn(move || timed_get(a, "/contacts/1"));
        thread::sleep(Duration::from_millis(50));
        let (types_latency, types) = timed_get(a, "/types");
        let types = types.expect("/types while contacts is locked");
        assert_eq!(
            types.status, 200,
            "{mode}: /types while contacts is locked: {types}"
        );
        // At most the stuck query's 500 ms, plus a margin for a loaded machine.
        assert!(
            types_latency < Duration::from_millis(1500),
            "{mode}: /types took {types_latency:?} behind one stuck query"
        );
        let (one_latency, r) = stuck.join().unwrap();
        assert_503(&format!("{mode}: /contacts/1 while locked"), &r.unwrap());
        // Ended by PostgreSQL's statement timeout: not before it, well before
        // the server's own deadline (pool timeout 1 s + statement timeout +
        // 1 s = 2.5 s; the margin is for a loaded CI machine), and PostgreSQL
        // said why.
        assert!(
            (Duration::from_millis(450)..Duration::from_millis(2000)).contains(&one_latency),
            "{mode}: the stuck query was answered after {one_latency:?}, not its 500 ms timeout"
        );
        // The log line is written before the 503, but read from the pipe by
        // another thread of this test: give it a moment.
        let logged = Instant::now();
        while !s
            .stderr()
            .contains("canceling statement due to statement timeout")
        {
            assert!(
                logged.elapsed() < Duration::from_secs(3),
                "{mode}: the server did not log PostgreSQL's statement timeout: {}",
                s.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }

        // Three at once, on the one connection: each ends in a 503, by its
        // own statement timeout or by the pool timeout while waiting.
        let stuck: Vec<_> = [
            "/contacts/1",
            "/contacts/fetch?limit=3",
            "/contacts/for?starts=m",
        ]
        .into_iter()
        .map(|target| thread::spawn(move || (target, timed_get(a, target))))
        .collect();
        let mut stuck_latency = Vec::new();
        for t in stuck {
            let (target, (latency, r)) = t.join().unwrap();
            let r = r.unwrap_or_else(|e| panic!("{mode}: {target} while locked: {e}"));
            assert_503(&format!("{mode}: {target} while locked"), &r);
            // Below the server's 2.5 s deadline: a timeout ended it.
            assert!(
                latency < Duration::from_millis(2400),
                "{mode}: {target} took {latency:?} while locked"
            );
            stuck_latency.push(latency);
        }
        // The connection was given back: with the lock still held, /types
        // answers at once, once PostgreSQL has cancelled every stuck query
        // (in shared mode they were pipelined on one connection, so their
        // timeouts ran one after the other; on a loaded machine a request
        // may reach its deadline while its query still waits its turn).
        // (Twice, apart: between two pipelined queries the count is
        // briefly 0.)
        let mut admin = pg_client();
        for _ in 0..2 {
            wait_for_lock_waiters(&mut admin, &format!("locked_{mode}"), |waiting| {
                waiting == 0
            });
            thread::sleep(Duration::from_millis(100));
        }
        let (free_latency, r) = timed_get(a, "/types");
        assert_eq!(r.unwrap().status, 200);
        // Not the 1 s pool timeout: the connection was free.
        assert!(
            free_latency < Duration::from_millis(800),
            "{mode}: /types took {free_latency:?} after the timeouts"
        );
        tx.commit().unwrap();
        let r = http::get(a, "/contacts/1");
        support::assert_body(
            "/contacts/1 after the lock",
            &r,
            &f.snapshot.contact_json(1).unwrap(),
        );
        figure(
            test,
            format!(
                "{mode}, pool of 1, statement timeout 500 ms: a query stuck behind a lock \
                 answered 503 in {:.0} ms, /types meanwhile 200 in {:.0} ms; 3 stuck at once \
                 503 in {}; then /types 200 in {:.1} ms",
                ms(one_latency),
                ms(types_latency),
                spread(&stuck_latency),
                ms(free_latency)
            ),
        );
    }
}

/// `/healthz` needs no database; `/readyz` is 503 while the database is
/// unreachable and 200 once it is back.
#[test]
fn healthz_is_always_200_and_readyz_follows_the_database() {
    let _serial = serial();
    let f = fixture();
    for mode in ["shared", "exclusive"] {
        let port = pg::free_port();
        let url = format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/bakeoff");
        let s = Server::start(&url, &[("POOL_MODE", mode), ("POOL_TIMEOUT_MS", "300")]);
        let health = http::get(s.addr, "/healthz");
        assert_eq!(health.status, 200, "{mode}: {health}");
        assert_eq!(health.body_str(), r#"{"status":"ok"}"#);
        let (latency, ready) = timed_get(s.addr, "/readyz");
        assert_503(&format!("{mode}: /readyz, database down"), &ready.unwrap());
        assert!(latency < Duration::from_millis(800), "{mode}: {latency:?}");

        let cluster: SocketAddr = ([127, 0, 0, 1], f.cluster.port).into();
        let _proxy = support::proxy::Proxy::start(port, cluster).expect("listen on the port");
        let took = wait_for_200(s.addr, "/readyz", Duration::from_secs(5));
        let ready = http::get(s.addr, "/readyz");
        assert_eq!(ready.body_str(), r#"{"status":"ready"}"#);
        assert_eq!(http::get(s.addr, "/healthz").status, 200);
        figure(
            "readyz",
            format!(
                "{mode}: /readyz 503 while down, 200 {:.0} ms after the database came back",
                ms(took)
            ),
        );
    }
}

/// The server's database sockets have TCP keepalive after 10 s and a TCP
/// user timeout, instead of the two hours a vanished host would otherwise
/// hold a connection for. Read from the server's own sockets (duplicated
/// with pidfd_getfd).
#[test]
fn database_sockets_have_keepalive_and_a_user_timeout() {
    let _serial = serial();
    let s = Server::start(&url_with("keepalive"), &[("POOL_SIZE", "2")]);
    wait_for_200(s.addr, "/types", Duration::from_secs(10));
    // tokio-postgres sets the options just after connect() returns, so a
    // socket still being opened may not have them yet: read the sockets once
    // the pools count all their connections as open (bb8 counts one only
    // when its manager has finished with it).
    let size = pool_gauge(s.addr, "bakeoff_pool_size");
    let started = Instant::now();
    while pool_gauge(s.addr, "bakeoff_pool_connections") < size {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pools did not open their {size} connections"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let port = fixture().cluster.port;
    let sockets = peer_sockets(s.pid(), port);
    assert_eq!(
        sockets.len() as u64,
        size,
        "the server's sockets leading to port {port}"
    );
    for fd in sockets {
        let get = |level, name| {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: fd is a socket we own (a duplicate); value and len are valid.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    level,
                    name,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
            value
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1, "SO_KEEPALIVE");
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            10,
            "TCP_KEEPIDLE"
        );
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            5,
            "TCP_KEEPINTVL"
        );
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3, "TCP_KEEPCNT");
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
            30_000,
            "TCP_USER_TIMEOUT"
        );
        // SAFETY: our duplicate, closed once.
        unsafe { libc::close(fd) };
    }
    figure(
        "keepalive",
        "database sockets: keepalive after 10 s idle, every 5 s, 3 probes; TCP user timeout 30 s",
    );
}

/// Scans of `index` (of table `contacts`) counted by PostgreSQL so far.
fn index_scans(client: &mut postgres::Client, index: &str) -> i64 {
    client
        .query_one(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1",
            &[&index],
        )
        .unwrap()
        .get(0)
}

/// A `starts` page is planned for its own parameters whatever came before
/// it. A prepared statement would switch to PostgreSQL's generic plan after
/// a few calls with a large offset (their custom plans cost more than the
/// generic one is estimated to) and keep it for the connection's life: a
/// scan of every contact matching the prefix through the prefix index and a
/// sort, several times slower for a common prefix than the custom plan's walk
/// along the primary key. Told apart by PostgreSQL's own index counters.
#[test]
fn starts_pages_are_planned_for_their_own_parameters_after_heavy_ones() {
    let _serial = serial();
    const HEAVY: &str = "/contacts/fetch?starts=m&limit=10&offset=100";
    const LIGHT: &str = "/contacts/fetch?starts=m&limit=10";
    const CALLS: usize = 40;
    let mut client = pg_client();
    let prefix_index = "contacts_lower_last_name";
    // Shared mode prepares the statement on connections whose sessions plan
    // per call; exclusive mode sends it unnamed.
    for mode in ["shared", "exclusive"] {
        let (prefix_before, pkey_before) = (
            index_scans(&mut client, prefix_index),
            index_scans(&mut client, "contacts_pkey"),
        );
        {
            let s = Server::start(
                &url_with("plans"),
                &[("POOL_SIZE", "1"), ("POOL_MODE", mode)],
            );
            // Fresh connections, so that both per-core pools see the mix.
            for target in [HEAVY, LIGHT] {
                for _ in 0..CALLS {
                    let r = http::get(s.addr, target);
                    assert_eq!(r.status, 200, "{mode}: {target}: {r}");
                }
            }
        } // The server stops; its backends report their counters as they exit.

        // Each page is one scan of either index: wait until all are counted.
        let started = Instant::now();
        let (prefix_scans, pkey_scans) = loop {
            let scans = (
                index_scans(&mut client, prefix_index) - prefix_before,
                index_scans(&mut client, "contacts_pkey") - pkey_before,
            );
            if scans.0 + scans.1 >= 2 * CALLS as i64 {
                break scans;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{mode}: PostgreSQL counted {scans:?} scans of ({prefix_index}, contacts_pkey) \
                 for {} pages",
                2 * CALLS
            );
            thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            prefix_scans, 0,
            "{mode}: {prefix_scans} pages went through {prefix_index} (a generic plan), \
             {pkey_scans} along contacts_pkey"
        );
    }

    // The control: the same calls through one prepared statement do switch
    // to the generic plan, so the sequence above is one that springs the
    // trap.
    let sql = include_str!("../sql/page_starts.sql");
    let prepared = client.prepare(sql).unwrap();
    for (offset, calls) in [(100_i64, CALLS), (0, CALLS)] {
        for _ in 0..calls {
            client.query(&prepared, &[&10_i64, &offset, &"m"]).unwrap();
        }
    }
    let generic: i64 = client
        .query_one(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .unwrap()
        .get(0);
    assert!(
        generic > 0,
        "the control did not switch to a generic plan: the test proves nothing"
    );
    figure(
        "plans",
        format!(
            "{CALLS} × {HEAVY} then {CALLS} × {LIGHT}: the server's pages never used \
             {prefix_index}, in shared or exclusive pool mode; one prepared statement given the same calls ran \
             {generic} of them on the generic plan"
        ),
    );
}

/// A gauge of `/metrics` (a line `name value`).
fn pool_gauge(addr: SocketAddr, name: &str) -> u64 {
    let metrics = http::get(addr, "/metrics");
    assert_eq!(metrics.status, 200, "{metrics}");
    metrics
        .body_str()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Duplicates (pidfd_getfd) every TCP socket of `pid` whose peer port is `port`.
fn peer_sockets(pid: u32, port: u16) -> Vec<libc::c_int> {
    // SAFETY: plain syscalls; the pidfd is closed below.
    let pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as libc::c_int;
    assert!(pidfd >= 0, "pidfd_open: {}", io::Error::last_os_error());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Ok(target) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        // SAFETY: duplicates the target's descriptor into this process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as libc::c_int;
        if fd < 0 {
            continue;
        }
        // SAFETY: a zeroed sockaddr_storage is valid; len says its size.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: getpeername writes at most `len` bytes into `addr`.
        let rc = unsafe {
            libc::getpeername(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        let peer_port = if rc == 0 && addr.ss_family == libc::AF_INET as libc::sa_family_t {
            // SAFETY: the family says it is a sockaddr_in.
            let v4 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(v4.sin_port))
        } else {
            None
        };
        if peer_port == Some(port) {
            found.push(fd);
        } else {
            // SAFETY: our duplicate.
            unsafe { libc::close(fd) };
        }
    }
    // SAFETY: ours.
    unsafe { libc::close(pidfd) };
    found
}

// ---------------------------------------------------------------- hostile and broken clients

/// What a hostile request may get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A response with one of these statuses.
    Status(&'static [u16]),
    /// No response: the connection is closed.
    Closed,
    /// A response with one of these statuses, or a closed connection.
    StatusOrClosed(&'static [u16]),
    /// Request smuggling: at most one response (below 500), then the
    /// connection closes; whatever was smuggled behind it is never answered.
    OneAnswerThenClosed,
    /// Exactly these responses, in this order.
    Answers(&'static [u16]),
}

/// What came back for a request: responses, then whether the server closed.
struct Outcome {
    responses: Vec<Response>,
    closed: bool,
    error: Option<String>,
}

/// Sends `bytes` (`chunks` of them, `pause` apart), optionally closes the
/// write side, and reads what comes back: the first response within
/// `first_wait`, further ones (or the close) within 300 ms each.
fn probe(
    addr: SocketAddr,
    chunks: &[&[u8]],
    pause: Duration,
    shut_write: bool,
    first_wait: Duration,
) -> Outcome {
    let mut conn = try_connect(addr, first_wait).expect("connect");
    let mut error = None;
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            thread::sleep(pause);
        }
        if let Err(e) = conn.try_send(chunk) {
            // The server may close before reading everything (e.g. a 431);
            // what it answered before is read below.
            if !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                error = Some(format!("write: {e}"));
            }
            break;
        }
    }
    if shut_write {
        let _ = conn.stream().shutdown(std::net::Shutdown::Write);
    }
    let mut responses = Vec::new();
    let mut closed = false;
    for _ in 0..4 {
        match conn.read_response(false) {
            Ok(r) => {
                responses.push(r);
                conn.stream()
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
            }
            Err(e) => {
                match e.kind() {
                    io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe => closed = true,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {}
                    _ => error = Some(e.to_string()),
                }
                break;
            }
        }
    }
    Outcome {
        responses,
        closed,
        error,
    }
}

/// The hostile requests, each with what it must get.
fn hostile_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let req = |line: &str| format!("{line}\r\nHost: x\r\n\r\n").into_bytes();
    let with_headers =
        |headers: &str| format!("GET /types HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    let smuggled = "GET /contacts/1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        // Request lines.
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), Status(&[400])),
        ("request line of spaces", b"   \r\n\r\n".to_vec(), Status(&[400])),
        ("two spaces in the request line", req("GET  /types HTTP/1.1"), Status(&[400])),
        ("a fourth field in the request line", req("GET /types HTTP/1.1 x"), Status(&[400])),
        ("HTTP/0.9 request", b"GET /types\r\n\r\n".to_vec(), Status(&[400])),
        ("HTTP/1.2", req("GET /types HTTP/1.2"), Status(&[400])),
        ("HTTP/2.0 request line", req("GET /types HTTP/2.0"), StatusOrClosed(&[400, 505])),
        (
            "HTTP/2 connection preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec(),
            Closed,
        ),
        // Methods.
        ("unknown method", req("BREW /types HTTP/1.1"), Status(&[405])),
        ("lower-case method", req("get /types HTTP/1.1"), Status(&[405])),
        ("WebDAV method", req("PROPFIND /contacts/1 HTTP/1.1"), Status(&[405])),
        ("unknown method, unknown path", req("BREW /nope HTTP/1.1"), Status(&[404])),
        ("method with a separator", req("G(T /types HTTP/1.1"), Status(&[400])),
        ("1,000-byte method", req(&format!("{} /types HTTP/1.1", "A".repeat(1000))), Status(&[400, 405])),
        ("CONNECT", req("CONNECT example.com:443 HTTP/1.1"), StatusOrClosed(&[400, 404, 405])),
        ("OPTIONS *", req("OPTIONS * HTTP/1.1"), Status(&[404])),
        // Headers.
        ("header without a colon", with_headers("X-Broken header\r\n"), Status(&[400])),
        ("space in a header name", with_headers("Bad Name: x\r\n"), Status(&[400])),
        ("obsolete line folding", with_headers("X-A: b\r\n c\r\n"), Status(&[400])),
        ("NUL in a header value", with_headers("X-A: a\0b\r\n"), Status(&[400])),
        ("bare CR in a header value", with_headers("X-A: a\rb\r\n"), Status(&[400])),
        // Paths.
        ("NUL in the path", req("GET /ty\0pes HTTP/1.1"), Status(&[400])),
        ("CR in the path", req("GET /ty\rpes HTTP/1.1"), Status(&[400])),
        ("LF in the path", req("GET /ty\npes HTTP/1.1"), Status(&[400])),
        ("space in the path", req("GET /ty pes HTTP/1.1"), Status(&[400])),
        ("tab in the path", req("GET /ty\tpes HTTP/1.1"), Status(&[400])),
        ("DEL in the path", req("GET /ty\x7fpes HTTP/1.1"), Status(&[400])),
        ("bad percent-encoding in a path parameter", req("GET /contacts/%zz HTTP/1.1"), Status(&[422])),
        ("bad percent-encoding in a route name", req("GET /%zz HTTP/1.1"), Status(&[404])),
        ("truncated percent-encoding", req("GET /contacts/fetch?starts=% HTTP/1.1"), Status(&[422])),
        ("non-hex percent-encoding", req("GET /contacts/fetch?limit=%G1 HTTP/1.1"), Status(&[422])),
        ("overlong UTF-8 slash", req("GET /contacts/%C0%AF HTTP/1.1"), Status(&[422])),
        ("UTF-16 surrogate in UTF-8", req("GET /contacts/fetch?starts=%ED%A0%80 HTTP/1.1"), Status(&[422])),
        ("percent-encoded NUL in a path parameter", req("GET /fibonacci/%00 HTTP/1.1"), Status(&[422])),
        ("dot segments", req("GET /contacts/../types HTTP/1.1"), Status(&[404, 422])),
        ("absolute-form target", req("GET http://example.com/version HTTP/1.1"), Status(&[200])),
        // Sizes.
        ("70,000-byte URI", req(&format!("GET /{} HTTP/1.1", "a".repeat(70_000))), Status(&[414])),
        ("1,000,000-byte header", with_headers(&format!("X-Big: {}\r\n", "b".repeat(1_000_000))), StatusOrClosed(&[431])),
        ("150 headers", with_headers(&many_headers), Status(&[431])),
        // Bodies and smuggling.
        (
            "Content-Length with Transfer-Encoding",
            format!(
                "GET /types HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )
            .into_bytes(),
            OneAnswerThenClosed,
        ),
        (
            "Transfer-Encoding with Content-Length",
            format!(
                "GET /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n{smuggled}"
            )
            .into_bytes(),
            OneAnswerThenClosed,
        ),
        (
            "two different Content-Lengths",
            format!("GET /types HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n{smuggled}").into_bytes(),
            Status(&[400]),
        ),
        ("Transfer-Encoding in HTTP/1.0", b"GET /types HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), Status(&[400])),
        ("Transfer-Encoding: identity", with_headers("Transfer-Encoding: identity\r\n"), Status(&[400])),
        ("Transfer-Encoding: chunked, identity", with_headers("Transfer-Encoding: chunked, identity\r\n"), Status(&[400])),
        ("Content-Length: -1", with_headers("Content-Length: -1\r\n"), Status(&[400])),
        ("Content-Length: +4", with_headers("Content-Length: +4\r\n"), Status(&[400])),
        ("Content-Length too large", with_headers("Content-Length: 99999999999999999999999\r\n"), Status(&[400])),
        (
            "chunked garbage",
            b"POST /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /contacts/1 HTTP/1.1\r\n\r\n".to_vec(),
            OneAnswerThenClosed,
        ),
        (
            "chunk size overflow",
            b"POST /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffffff\r\n".to_vec(),
            OneAnswerThenClosed,
        ),
        (
            "a complete request, then half of a pipelined one",
            b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /ver".to_vec(),
            Status(&[200]),
        ),
        (
            "a complete request, then garbage",
            b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n".to_vec(),
            Answers(&[200, 400]),
        ),
        (
            "a body on GET that never comes",
            with_headers("Content-Length: 1000000\r\n"),
            OneAnswerThenClosed,
        ),
    ]
}

/// Malformed and hostile requests over raw sockets: each gets a 4xx or a
/// closed connection, never a 5xx, never a hang, and a normal request on a
/// new connection succeeds right after each.
#[test]
fn hostile_requests_get_a_4xx_or_a_closed_connection_never_a_5xx_or_a_hang() {
    let _serial = serial();
    let test = "hostile requests";
    let f = fixture();
    let mut s = Server::start(&url_with("hostile"), &[("HEADER_READ_TIMEOUT_S", "2")]);
    let types = f.snapshot.types_json();
    let mut tried = 0;
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (name, bytes, expect) in hostile_cases() {
        let started = Instant::now();
        let o = probe(
            s.addr,
            &[&bytes],
            Duration::ZERO,
            false,
            Duration::from_secs(5),
        );
        let took = started.elapsed();
        let got = o
            .responses
            .iter()
            .map(|r| r.status.to_string())
            .collect::<Vec<_>>()
            .join("+");
        let summary = format!(
            "{name}: responses [{got}], closed {}, error {:?}, {took:?}",
            o.closed, o.error
        );
        let mut problems = Vec::new();
        if let Some(e) = &o.error {
            problems.push(format!("error {e}"));
        }
        for r in &o.responses {
            if r.status >= 500 {
                problems.push(format!("a server error: {r}"));
            }
            assert_no_leak(name, r, &[SECRET]);
        }
        if o.responses.is_empty() && !o.closed {
            problems.push("neither an answer nor a close (a hang)".into());
        }
        let first = o.responses.first().map(|r| r.status);
        let as_expected = match expect {
            Expect::Status(allowed) => first.is_some_and(|s| allowed.contains(&s)),
            Expect::Closed => first.is_none() && o.closed,
            Expect::StatusOrClosed(allowed) => match first {
                Some(s) => allowed.contains(&s),
                None => o.closed,
            },
            // The smuggled request is never answered, and the connection closes.
            Expect::OneAnswerThenClosed => o.responses.len() <= 1 && o.closed,
            Expect::Answers(statuses) => o
                .responses
                .iter()
                .map(|r| r.status)
                .eq(statuses.iter().copied()),
        };
        if !as_expected {
            problems.push(format!("expected {expect:?}"));
        }
        if !problems.is_empty() {
            wrong.push(format!("{summary}: {}", problems.join("; ")));
        }
        eprintln!(
            "  {name}: {} in {:.0} ms",
            if got.is_empty() {
                "closed".to_string()
            } else {
                got.clone()
            },
            ms(took)
        );
        *tally
            .entry(if got.is_empty() { "closed".into() } else { got })
            .or_default() += 1;
        tried += 1;
        // A normal request on a new connection succeeds right after.
        let r = http::get(s.addr, "/types");
        support::assert_body(&format!("/types after {name}"), &r, &types);
    }

    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );

    // A valid request dribbled one byte per write is served.
    let request = b"GET /contacts/fetch?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n";
    let bytes: Vec<&[u8]> = request.chunks(1).collect();
    let o = probe(
        s.addr,
        &bytes,
        Duration::from_millis(2),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(
        o.responses.first().map(|r| r.status),
        Some(200),
        "dribbled request: {:?}",
        o.error
    );
    tried += 1;

    // A request cut off, then the write side closed: no answer needed, no hang.
    let o = probe(
        s.addr,
        &[b"GET /types HTT"],
        Duration::ZERO,
        true,
        Duration::from_secs(5),
    );
    assert!(o.closed || o.responses.first().is_some_and(|r| r.status == 400));
    tried += 1;

    assert_alive(&mut s);
    figure(
        test,
        format!(
            "{tried} malformed or hostile requests, none answered 5xx, none hung; outcomes {tally:?}"
        ),
    );
}

/// Latencies of `target`, asked `count` times on one keep-alive connection,
/// `pause` apart; panics on anything but 200.
fn latencies(addr: SocketAddr, target: &str, count: usize, pause: Duration) -> Vec<Duration> {
    let mut conn = Conn::connect(addr);
    (0..count)
        .map(|_| {
            let start = Instant::now();
            let r = conn.get(target);
            assert_eq!(r.status, 200, "{target}: {r}");
            thread::sleep(pause);
            start.elapsed() - pause
        })
        .collect()
}

/// Asks for `target` on fresh connections every `pause` until `stop`; the
/// latencies, and any failure.
fn prober(
    addr: SocketAddr,
    target: &'static str,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(Vec<Duration>, Vec<String>)> {
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut times, mut failures) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let (took, r) = timed_get(addr, target);
            match r {
                Ok(r) if r.status == 200 => times.push(took),
                Ok(r) => failures.push(format!("{target}: {r}")),
                Err(e) => failures.push(format!("{target}: {e}")),
            }
            thread::sleep(pause);
        }
        (times, failures)
    })
}

/// Whether the server has closed `stream` (EOF or reset), without blocking.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Slowloris: hundreds of connections sending a header line every half
/// second are closed after the header-read timeout, and normal requests keep
/// their latency meanwhile.
#[test]
fn slowloris_connections_are_closed_after_the_header_read_timeout() {
    let _serial = serial();
    let test = "slowloris";
    let s = Server::start(&url_with("slowloris"), &[("HEADER_READ_TIMEOUT_S", "2")]);
    let a = s.addr;
    let timeout = Duration::from_secs(2);
    let baseline = latencies(a, "/types", 50, Duration::from_millis(10));

    const HELD: usize = 300;
    let opened = Instant::now();
    let mut held: Vec<(TcpStream, Option<Duration>)> = (0..HELD)
        .map(|_| {
            let mut stream = TcpStream::connect(a).expect("connect");
            stream
                .write_all(b"GET /types HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            (stream, None)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(a, "/types", Duration::from_millis(20), Arc::clone(&stop));
    let mut last_line = Instant::now();
    let mut line = 0;
    while held.iter().any(|(_, closed)| closed.is_none())
        && opened.elapsed() < Duration::from_secs(8)
    {
        let send = last_line.elapsed() >= Duration::from_millis(500);
        if send {
            last_line = Instant::now();
            line += 1;
        }
        for (stream, closed) in held.iter_mut().filter(|(_, c)| c.is_none()) {
            let gone = closed_by_peer(stream)
                || (send
                    && stream
                        .write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
                        .is_err());
            if gone {
                *closed = Some(opened.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let (during, failures) = probe.join().unwrap();
    assert!(failures.is_empty(), "normal requests failed: {failures:?}");
    let closed: Vec<Duration> = held.iter().filter_map(|(_, c)| *c).collect();
    assert_eq!(
        closed.len(),
        HELD,
        "{} slowloris connections still open after {:?}",
        HELD - closed.len(),
        opened.elapsed()
    );
    let last = closed.iter().max().unwrap();
    let first = closed.iter().min().unwrap();
    assert!(
        *last <= timeout + Duration::from_millis(1500),
        "the last slowloris connection was closed after {last:?} (timeout {timeout:?})"
    );
    assert!(
        *first >= timeout - Duration::from_millis(600),
        "a slowloris connection was closed after {first:?}, before the timeout"
    );
    let (p99_before, p99_during) = (quantile(&baseline, 0.99), quantile(&during, 0.99));
    assert!(
        during.len() >= 20 && p99_during <= (p99_before * 5).max(Duration::from_millis(60)),
        "/types p99 {p99_during:?} while slowloris held, {p99_before:?} before"
    );
    figure(
        test,
        format!(
            "{HELD} connections sending a header line every 500 ms, header-read timeout 2 s: \
             all closed {:.0}–{:.0} ms after opening; /types on new connections meanwhile {} \
             (before: {})",
            ms(*first),
            ms(*last),
            spread(&during),
            spread(&baseline)
        ),
    );
}

/// Thousands of idle keep-alive connections: at most MAX_CONNECTIONS are
/// served, the rest wait in the backlog until one closes (backpressure at
/// accept); idle ones are closed after the timeout, and memory returns near
/// where it was.
#[test]
fn idle_keep_alive_connections_are_bounded_time_out_and_give_memory_back() {
    let _serial = serial();
    let test = "idle connections";
    const LIMIT: usize = 2000;
    const EXTRA: usize = 200;
    let idle_timeout = Duration::from_secs(6);
    let s = Server::start(
        &url_with("idle"),
        &[("MAX_CONNECTIONS", "2000"), ("HEADER_READ_TIMEOUT_S", "6")],
    );
    let (a, pid) = (s.addr, s.pid());
    latencies(a, "/types", 200, Duration::ZERO);
    thread::sleep(Duration::from_millis(300));
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));

    let opening = Instant::now();
    let mut held: Vec<Conn> = (0..LIMIT)
        .map(|i| {
            let mut conn = Conn::connect(a);
            let r = conn.get("/version");
            assert_eq!(r.status, 200, "connection {i}: {r}");
            conn
        })
        .collect();
    let opened = opening.elapsed();
    assert!(
        opened < idle_timeout - Duration::from_secs(2),
        "opening {LIMIT} connections took {opened:?}"
    );
    let (rss_held, fds_held) = (rss_kib(pid), open_fds(pid));
    assert!(
        fds_held >= fds_before + LIMIT,
        "{fds_held} descriptors open with {LIMIT} connections held"
    );

    // Past the limit: the connection is made (the kernel's backlog) but not
    // accepted, so its request waits.
    let mut extra: Vec<Conn> = (0..EXTRA)
        .map(|_| {
            let mut conn = try_connect(a, Duration::from_secs(15)).expect("connect past the limit");
            conn.send(&http::request_bytes("GET", "/version"));
            conn
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    for conn in &extra {
        let stream = conn.stream();
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let waiting =
            matches!((&*stream).read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        assert!(waiting, "a connection past MAX_CONNECTIONS was answered");
    }
    let fds_past = open_fds(pid);
    assert!(
        fds_past <= fds_held + 2,
        "the server accepted past its limit: {fds_past} descriptors, {fds_held} at the limit"
    );

    // One held connection closes: a waiting one is served. Which one is up
    // to the kernel: each per-core accept loop has its own listener
    // (SO_REUSEPORT), so the backlog is not one FIFO queue.
    let freed = Instant::now();
    drop(held.remove(0));
    let served = loop {
        let answered = extra.iter().position(|conn| {
            let stream = conn.stream();
            stream.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let ready = matches!(stream.peek(&mut byte), Ok(1));
            stream.set_nonblocking(false).unwrap();
            ready
        });
        if let Some(index) = answered {
            break index;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(1),
            "no waiting connection was served within 1 s of a slot freeing"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let served_after = freed.elapsed();
    let r = extra[served]
        .read_response(false)
        .expect("the waiting connection that was served");
    assert_eq!(r.status, 200);

    // Idle connections are closed by the server after the timeout.
    let mut closed_after = Vec::new();
    for conn in &mut held {
        conn.stream()
            .set_read_timeout(Some(idle_timeout + Duration::from_secs(4)))
            .unwrap();
        let mut byte = [0u8; 1];
        let n = conn.stream().read(&mut byte);
        assert!(
            matches!(n, Ok(0))
                || matches!(&n, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "an idle connection was not closed: {n:?}"
        );
        closed_after.push(opening.elapsed());
    }
    let last_closed = *closed_after.iter().max().unwrap();
    assert!(
        last_closed <= opened + idle_timeout + Duration::from_secs(2),
        "{last_closed:?}"
    );
    // The waiting ones were served as slots freed up.
    for (i, conn) in extra.iter_mut().enumerate() {
        if i == served {
            continue;
        }
        let r = conn
            .read_response(false)
            .unwrap_or_else(|e| panic!("waiting connection {i}: {e}"));
        assert_eq!(r.status, 200);
    }
    drop(held);
    drop(extra);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > fds_before + 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let fds_after = open_fds(pid);
    assert!(
        fds_after <= fds_before + 2,
        "{fds_after} descriptors still open ({fds_before} before)"
    );
    let rss_after = rss_kib(pid);
    let per_connection = rss_held.saturating_sub(rss_before) / LIMIT as u64;
    assert!(
        per_connection <= 64,
        "{per_connection} KiB per idle connection ({rss_before} KiB → {rss_held} KiB)"
    );

    // Memory goes back near its earlier level once they have closed: when a
    // thread's last connection of a large wave ends, the server returns the
    // allocator's free pages (src/memory.rs). Within a quarter of what the
    // wave took.
    let grown = rss_held.saturating_sub(rss_before);
    assert!(
        rss_after <= rss_before + grown / 4,
        "RSS did not come back after the connections closed: {rss_before} KiB before, \
         {rss_held} KiB held, {rss_after} KiB after"
    );

    // And the memory of closed connections is not leaked: two more waves as
    // large fit in about what the first one took (a leak would add its
    // whole size each time).
    let mut waves = Vec::new();
    for _ in 0..2 {
        let wave: Vec<Conn> = (0..LIMIT)
            .map(|_| {
                let mut conn = Conn::connect(a);
                assert_eq!(conn.get("/version").status, 200);
                conn
            })
            .collect();
        waves.push(rss_kib(pid));
        drop(wave);
    }
    let rss_again = *waves.iter().max().unwrap();
    assert!(
        rss_again <= rss_held.max(rss_after) + grown * 3 / 4,
        "more waves of {LIMIT} connections grew RSS: {rss_held} KiB for the first, {waves:?} KiB \
         for the next"
    );
    assert_eq!(http::get(a, "/types").status, 200);
    figure(
        test,
        format!(
            "{LIMIT} idle keep-alive connections held (MAX_CONNECTIONS {LIMIT}), {EXTRA} more \
             kept waiting in the backlog and served as slots freed ({:.0} ms after one closed); \
             all idle ones closed by the {idle_timeout:?} idle timeout; descriptors \
             {fds_before} → {fds_held} → {fds_after}; RSS {rss_before} KiB before, {rss_held} KiB \
             held ({per_connection} KiB per connection), {rss_after} KiB after they closed, \
             {waves:?} KiB for two more waves of {LIMIT} (memory reused, not leaked)",
            ms(served_after),
        ),
    );
}

/// A client that pipelines megabytes of pages and never reads them does not
/// hold a database connection: bodies are built whole, the connection is
/// back in the pool before the body is written. With a pool of one, others
/// still get database answers while it is stuck.
#[test]
fn a_client_that_never_reads_does_not_hold_a_database_connection() {
    let _serial = serial();
    let test = "client that never reads";
    let f = fixture();
    for mode in ["exclusive", "shared"] {
        let s = Server::start(
            &url_with(&format!("stuck_reader_{mode}")),
            &[("POOL_MODE", mode), ("POOL_SIZE", "1")],
        );
        let a = s.addr;
        wait_for_200(a, "/types", Duration::from_secs(10));
        const PIPELINED: usize = 600;
        let target = "/contacts/for?limit=200";
        let one_page = http::get(a, target).body.len();
        let rss_before = rss_kib(s.pid());
        let mut stuck = Conn::connect(a);
        // A small receive window, so the server's writes block sooner.
        let small: libc::c_int = 16 * 1024;
        // SAFETY: setsockopt on our own socket with a valid int.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                stuck.stream().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let batch: Vec<u8> = (0..PIPELINED)
            .flat_map(|_| http::request_bytes("GET", target))
            .collect();
        stuck.send(&batch);
        // Stuck: the bytes waiting for it stop growing, as the server can
        // write no more.
        let mut waiting = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while waiting.1 < 5 {
            thread::sleep(Duration::from_millis(100));
            let now = unread_bytes(stuck.stream());
            waiting = if now == waiting.0 {
                (now, waiting.1 + 1)
            } else {
                (now, 0)
            };
            assert!(
                Instant::now() < deadline,
                "{mode}: the server never stopped writing"
            );
        }
        // And it holds little of what is still to be written: the answers
        // are made only as fast as the client reads them (20 MB were asked
        // for).
        let rss_stuck = rss_kib(s.pid());
        assert!(
            rss_stuck < rss_before + 8 * 1024,
            "{mode}: RSS {rss_before} KiB → {rss_stuck} KiB for a client that does not read"
        );

        let mut others = Vec::new();
        let mut conn = Conn::connect(a);
        for i in 0..30 {
            let target = ["/types", "/contacts/1", "/contacts/fetch?limit=200"][i % 3];
            let start = Instant::now();
            let r = conn.get(target);
            assert_eq!(
                r.status, 200,
                "{mode}: {target} while a client is stuck: {r}"
            );
            others.push(start.elapsed());
        }
        assert_eq!(
            conn.get("/contacts/1").body,
            f.snapshot.contact_json(1).unwrap()
        );
        let worst = quantile(&others, 1.0);
        assert!(worst < Duration::from_millis(900), "{mode}: {worst:?}");

        // It really was stuck: everything it asked for is still to be read.
        let mut got = 0;
        for i in 0..PIPELINED {
            let r = stuck
                .read_response(false)
                .unwrap_or_else(|e| panic!("{mode}: pipelined answer {i}: {e}"));
            assert_eq!(r.status, 200, "{mode}: pipelined answer {i}: {r}");
            got += r.body.len();
        }
        figure(
            test,
            format!(
                "{mode}, pool of 1: a client pipelined {PIPELINED} pages ({:.1} MB of answers) \
                 without reading, the server stuck writing to it ({} KB unread in its socket, \
                 server RSS {rss_before} → {rss_stuck} KiB); meanwhile 30 database requests on \
                 another connection all 200 ({})",
                (PIPELINED * one_page) as f64 / 1e6,
                waiting.0 / 1000,
                spread(&others)
            ),
        );
        assert_eq!(got, PIPELINED * one_page);
    }
}

/// Bytes received on `stream` and not read yet.
fn unread_bytes(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n as usize
}

/// setrlimit(RLIMIT_NOFILE) in the child, before exec.
fn with_nofile(cmd: &mut std::process::Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `Max open files` (soft, hard) of a process.
fn nofile_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

/// Running out of file descriptors makes accept fail: the server backs off,
/// logs it (at most once a second), keeps serving the connections it has,
/// and accepts again once descriptors are free.
#[test]
fn running_out_of_file_descriptors_does_not_end_the_server() {
    let _serial = serial();
    let test = "out of file descriptors";
    let mut s = Server::try_start_with(
        &url_with("nofile"),
        &[("HEADER_READ_TIMEOUT_S", "30"), ("POOL_SIZE", "2")],
        |cmd| with_nofile(cmd, 64, 64),
    )
    .unwrap();
    let (a, pid) = (s.addr, s.pid());
    assert_eq!(nofile_limits(pid), ("64".into(), "64".into()));
    wait_for_200(a, "/types", Duration::from_secs(10));
    let mut kept = Conn::connect(a);
    assert_eq!(kept.get("/contacts/1").status, 200);

    let flooding = Instant::now();
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(a).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(1500));
    // Every descriptor number below the limit is taken (the test process
    // may have passed the server a few of its own above it).
    let taken = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok_and(|fd| fd < 64)
        })
        .count();
    assert_eq!(taken, 64, "descriptors 0..64 in use under a limit of 64");
    // No descriptor is left: a new connection waits in the backlog.
    let mut waiting = try_connect(a, Duration::from_millis(700)).unwrap();
    waiting.send(&http::request_bytes("GET", "/version"));
    assert!(
        waiting.read_response(false).is_err(),
        "a connection was served with every descriptor in use"
    );
    // The connections it has are still served, database included.
    assert_eq!(kept.get("/contacts/2").status, 200);
    let stderr = s.stderr();
    assert!(
        stderr.contains("accept failed"),
        "no accept error logged:\n{stderr}"
    );
    let logged = stderr.matches("accept failed").count();
    let seconds = flooding.elapsed().as_secs() as usize;
    assert!(
        logged <= seconds + 2,
        "{logged} accept errors logged in {seconds} s: not rate-limited"
    );
    assert_alive(&mut s);

    drop(flood);
    drop(waiting);
    let recovered = wait_for_200(a, "/contacts/3", Duration::from_secs(10));
    assert_eq!(http::get(a, "/types").status, 200);
    assert_alive(&mut s);
    figure(
        test,
        format!(
            "RLIMIT_NOFILE 64, 150 connections opened: accept failed with EMFILE ({logged} log \
             lines in {seconds} s), kept connections still served, server alive; served new \
             connections {:.0} ms after the flood closed",
            ms(recovered)
        ),
    );
}

/// At start the server lifts its soft open-file limit to the hard one, and
/// listens with a backlog sized for thousands of connections.
#[test]
fn the_open_file_limit_is_raised_and_the_backlog_is_sized_for_thousands() {
    let _serial = serial();
    let s = Server::try_start_with(&url_with("limits"), &[], |cmd| with_nofile(cmd, 256, 8192))
        .unwrap();
    assert_eq!(nofile_limits(s.pid()), ("8192".into(), "8192".into()));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", s.addr.port())])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    // State Recv-Q Send-Q Local Peer: Send-Q is the backlog of a listener.
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the backlog from ss: {text:?}"));
    assert_eq!(backlog, 4096.min(somaxconn), "{text}");
    figure(
        "limits",
        format!(
            "soft open-file limit raised 256 → 8192 (the hard limit); listen backlog {backlog}"
        ),
    );
}

/// CPU-bound `/fibonacci` runs on a small pool with a bounded queue: a flood
/// gets quick 503s for the excess and never starves the database endpoints.
#[test]
fn a_fibonacci_flood_is_bounded_and_does_not_starve_the_database_endpoints() {
    let _serial = serial();
    let test = "fibonacci flood";
    let s = Server::start(&url_with("fib_flood"), &[("FIB_QUEUE", "8")]);
    let a = s.addr;
    wait_for_200(a, "/types", Duration::from_secs(10));
    let baseline = latencies(a, "/types", 50, Duration::from_millis(10));

    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(
        a,
        "/contacts/1",
        Duration::from_millis(20),
        Arc::clone(&stop),
    );
    let flood_until = Instant::now() + Duration::from_secs(4);
    let flooders: Vec<_> = (0..24)
        .map(|_| {
            thread::spawn(move || {
                let mut conn = Conn::connect(a);
                let mut out = Vec::new();
                while Instant::now() < flood_until && out.len() < 10_000 {
                    let start = Instant::now();
                    let r = conn.get("/fibonacci/35");
                    let busy = r.status == 503;
                    out.push((start.elapsed(), r));
                    if busy {
                        // Ask again soon (sooner than Retry-After), without
                        // spinning on the test's own cores.
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                out
            })
        })
        .collect();
    let during = latencies(a, "/types", 100, Duration::from_millis(20));
    let results: Vec<(Duration, Response)> = flooders
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (contact_latency, failures) = probe.join().unwrap();
    assert!(failures.is_empty(), "{failures:?}");

    let (mut ok, mut busy) = (Vec::new(), Vec::new());
    for (took, r) in &results {
        match r.status {
            200 => {
                assert_eq!(r.body_str(), r#"{"result":14930352}"#);
                ok.push(*took);
            }
            503 => {
                assert_503("/fibonacci/35 in a flood", r);
                busy.push(*took);
            }
            _ => panic!("/fibonacci/35 in a flood: {r}"),
        }
    }
    assert!(
        !ok.is_empty() && !busy.is_empty(),
        "{} 200s, {} 503s",
        ok.len(),
        busy.len()
    );
    // Both cores run fib(35) flat out (and, on this machine, whatever else
    // runs), so scheduling delays show in the tails; the medians show the
    // design: the excess is turned away at once, not queued, and the
    // database endpoints are not stuck behind the computations (fib(35)
    // alone takes about 250 ms in a debug build).
    assert!(
        quantile(&busy, 0.5) < Duration::from_millis(10)
            && quantile(&busy, 0.99) < Duration::from_millis(250),
        "the excess waited for its 503: {}",
        spread(&busy)
    );
    assert!(
        quantile(&during, 0.5) < Duration::from_millis(25)
            && quantile(&during, 0.99) < Duration::from_millis(250),
        "/types during the flood: {}",
        spread(&during)
    );
    figure(
        test,
        format!(
            "24 clients looping /fibonacci/35 for 4 s, queue limit 8 on 2 workers: {} computed \
             ({}), {} turned away with 503 ({}); meanwhile /types {} (before: {}), \
             /contacts/1 on new connections {}",
            ok.len(),
            spread(&ok),
            busy.len(),
            spread(&busy),
            spread(&during),
            spread(&baseline),
            spread(&contact_latency),
        ),
    );
}

// ---------------------------------------------------------------- shutdown

/// Waits until a backend of `application_name` waits on a lock.
fn wait_for_lock_wait(client: &mut postgres::Client, application_name: &str) {
    wait_for_lock_waiters(client, application_name, |waiting| waiting > 0);
}

/// Polls (10 s at most) until the number of `application_name`'s queries
/// waiting on a lock satisfies `done`.
fn wait_for_lock_waiters(
    client: &mut postgres::Client,
    application_name: &str,
    done: impl Fn(i64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&application_name],
            )
            .unwrap()
            .get(0);
        if done(waiting) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{application_name}: {waiting} queries wait on the lock"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM (and SIGINT): no new connections, every request in flight
/// finishes with its 200 (a slow /fibonacci/40, a query held by a lock),
/// idle connections are closed, the pool's connections end, exit code 0.
#[test]
fn sigterm_and_sigint_let_requests_in_flight_finish_then_exit_0() {
    let _serial = serial();
    let test = "graceful shutdown";
    let f = fixture();
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let app = format!("shutdown_{name}");
        let mut s = Server::start(
            &url_with(&app),
            &[("STATEMENT_TIMEOUT_MS", "20000"), ("POOL_SIZE", "2")],
        );
        let a = s.addr;
        wait_for_200(a, "/contacts/1", Duration::from_secs(10));
        let mut admin = pg_client();
        let mut locker = pg_client();
        let tx = lock_contacts(&mut locker);

        let fib = thread::spawn(move || {
            let answer = timed_get(a, "/fibonacci/40");
            (Instant::now(), answer)
        });
        let contact = thread::spawn(move || timed_get(a, "/contacts/1"));
        let mut idle = Conn::connect(a);
        assert_eq!(idle.get("/version").status, 200);
        wait_for_lock_wait(&mut admin, &app);
        thread::sleep(Duration::from_millis(100));

        s.signal(signal);
        let signalled = Instant::now();
        // It stops accepting.
        thread::sleep(Duration::from_millis(200));
        let refused = TcpStream::connect(a);
        assert!(
            refused.is_err(),
            "{name}: a connection was accepted after the signal"
        );
        // An idle keep-alive connection is closed.
        idle.stream()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(idle.stream().read(&mut byte), Ok(0)),
            "{name}: the idle connection was not closed"
        );
        // The held query finishes once the lock is released.
        thread::sleep(Duration::from_millis(500));
        tx.commit().unwrap();
        let (fib_done, (fib_took, fib_r)) = fib.join().unwrap();
        let fib_r = fib_r.unwrap_or_else(|e| panic!("{name}: /fibonacci/40 in flight: {e}"));
        assert!(
            fib_done > signalled,
            "{name}: /fibonacci/40 ended before the signal"
        );
        assert_eq!(
            fib_r.body_str(),
            r#"{"result":165580141}"#,
            "{name}: {fib_r}"
        );
        let (contact_took, contact_r) = contact.join().unwrap();
        let contact_r = contact_r.unwrap_or_else(|e| panic!("{name}: /contacts/1 in flight: {e}"));
        support::assert_body(
            "/contacts/1 in flight",
            &contact_r,
            &f.snapshot.contact_json(1).unwrap(),
        );

        let status = s
            .wait_exit(Duration::from_secs(10))
            .expect("no exit within 10 s");
        let exited = signalled.elapsed();
        assert_eq!(status.code(), Some(0), "{name}: {status}");
        // Its database connections are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while backends(&mut admin, &app) > 0 {
            assert!(
                Instant::now() < deadline,
                "{name}: the pool's connections outlive the server"
            );
            thread::sleep(Duration::from_millis(20));
        }
        figure(
            test,
            format!(
                "{name}: 2 requests in flight (/fibonacci/40, {:.0} ms; a query held by a lock \
                 released 700 ms after the signal, {:.0} ms) both answered 200; new connections \
                 refused, idle ones closed; exit 0 {:.0} ms after the signal; no database \
                 connection left",
                ms(fib_took),
                ms(contact_took),
                ms(exited)
            ),
        );
    }
}

/// A request that outlasts the drain timeout does not keep the server up.
#[test]
fn the_drain_timeout_bounds_the_shutdown() {
    let _serial = serial();
    let app = "drain_timeout";
    let mut s = Server::start(
        &url_with(app),
        &[("STATEMENT_TIMEOUT_MS", "30000"), ("DRAIN_TIMEOUT_S", "1")],
    );
    let a = s.addr;
    wait_for_200(a, "/contacts/1", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let tx = lock_contacts(&mut locker);
    let held = thread::spawn(move || timed_get(a, "/contacts/1"));
    wait_for_lock_wait(&mut admin, app);
    s.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s");
    let exited = signalled.elapsed();
    tx.rollback().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        exited < Duration::from_millis(2500),
        "exit {exited:?} after SIGTERM with a 1 s drain timeout"
    );
    let (_, r) = held.join().unwrap();
    assert!(
        r.is_err(),
        "the held request was answered: {:?}",
        r.map(|r| r.status)
    );
    figure(
        "drain timeout",
        format!(
            "a request held past the 1 s drain timeout: exit 0 {:.0} ms after SIGTERM",
            ms(exited)
        ),
    );
}

// ---------------------------------------------------------------- security

/// Contact ids of a page body.
fn page_ids(r: &Response) -> Vec<i64> {
    r.json()
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {r}"))
        .iter()
        .map(|c| c["contact_id"].as_i64().unwrap())
        .collect()
}

/// Row counts of the four tables.
fn table_counts(client: &mut postgres::Client) -> Vec<i64> {
    [
        "contact_types",
        "contacts",
        "contact_phones",
        "contact_emails",
    ]
    .iter()
    .map(|t| {
        client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0)
    })
    .collect()
}

/// SQL injection payloads in `starts` (the one free-text parameter) are
/// matched literally as a name prefix: they find exactly the contacts whose
/// names begin with them, run nothing, and change nothing. Integers that
/// carry SQL are 422.
#[test]
fn sql_injection_payloads_are_matched_literally() {
    let _serial = serial();
    let test = "SQL injection";
    let mut admin = pg_client();
    // Two contacts whose names are payloads, so that a literal match is
    // visible (and not just an empty page).
    admin
        .batch_execute(
            "DELETE FROM contacts WHERE contact_id IN (990001, 990002);
             INSERT INTO contacts (contact_id, first_name, last_name, type_id) VALUES
               (990001, 'Bobby', $$'; DROP TABLE contacts; --$$, 1),
               (990002, 'Eve', $$' OR '1'='1$$, 2);",
        )
        .unwrap();
    let before = table_counts(&mut admin);
    let s = Server::start(&url_with("injection"), &[]);
    let a = s.addr;
    let payloads = [
        "'; DROP TABLE contacts; --",
        "' OR '1'='1",
        "' OR 1=1 --",
        "%' OR '%'='",
        "'); DELETE FROM contacts; --",
        "\\'; TRUNCATE contact_types CASCADE; --",
        "' UNION SELECT 1,'a','b',1,'c',ARRAY['d'],ARRAY['e'] --",
        "'||pg_sleep(3)||'",
        "x' AND (SELECT pg_sleep(3)) IS NULL --",
        "$1",
        "$3::text); DROP TABLE contacts; --",
        "'; COPY contacts TO '/tmp/leak'; --",
        "\"; DROP TABLE contacts; --",
        "' AND 1=CAST((SELECT version()) AS int) --",
        "'; SELECT pg_terminate_backend(pg_backend_pid()); --",
        "_%",
        "\\",
        "\u{0}' OR 1=1 --",
    ];
    let mut conn = Conn::connect(a);
    let mut slowest = Duration::ZERO;
    for payload in payloads {
        let expected: Vec<i64> = admin
            .query(
                "SELECT contact_id::int8 FROM contacts \
                 WHERE starts_with(lower(last_name), lower($1)) ORDER BY contact_id LIMIT 200",
                &[&payload.replace('\0', "")],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let expected = if payload.contains('\0') {
            Vec::new()
        } else {
            expected
        };
        for page in ["/contacts/fetch", "/contacts/for"] {
            let target = format!("{page}?limit=200&starts={}", pct(payload));
            let start = Instant::now();
            let r = conn.get(&target);
            slowest = slowest.max(start.elapsed());
            assert_eq!(r.status, 200, "{payload:?}: {r}");
            assert_eq!(page_ids(&r), expected, "{page} starts={payload:?}");
        }
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a payload ran for {slowest:?}: did pg_sleep run?"
    );
    // The literal matches are there: the payload finds its own contact.
    let r = conn.get(&format!(
        "/contacts/fetch?starts={}",
        pct("'; DROP TABLE contacts; --")
    ));
    assert_eq!(page_ids(&r), [990001]);
    let r = conn.get(&format!("/contacts/for?starts={}", pct("' OR '1'='1")));
    assert_eq!(page_ids(&r), [990002]);
    // SQL in an integer parameter is a 422.
    for target in [
        "/contacts/1%20OR%201=1",
        "/contacts/1;DROP%20TABLE%20contacts",
        "/contacts/1'--",
        "/fibonacci/1%20OR%201=1",
        "/contacts/fetch?limit=1;DELETE%20FROM%20contacts",
        "/contacts/for?offset=0%20OR%201=1",
    ] {
        let r = conn.get(target);
        assert_eq!(r.status, 422, "{target}: {r}");
        assert_no_leak(target, &r, &[]);
    }
    // Nothing changed.
    assert_eq!(table_counts(&mut admin), before, "a table changed");
    admin
        .batch_execute("DELETE FROM contacts WHERE contact_id IN (990001, 990002)")
        .unwrap();

    // And by construction: the request-serving code builds no SQL text.
    // Every statement is a file of sql/, embedded whole (include_str!),
    // every value a bound parameter ($1, $2, $3).
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut files = vec![src.to_path_buf()];
    let mut sources = Vec::new();
    while let Some(path) = files.pop() {
        match std::fs::read_dir(&path) {
            Ok(entries) => files.extend(entries.flatten().map(|entry| entry.path())),
            Err(_) => sources.push(path),
        }
    }
    assert!(sources.len() > 10, "{sources:?}");
    for file in sources {
        let name = file.strip_prefix(src).unwrap().display().to_string();
        // `bakeoff seed` runs sql/schema.sql and sql/seed.sql, no request data.
        if name == "seed.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let builds = ["format!(", "push_str(", "concat!(", "+ \"", "write!("]
                .iter()
                .any(|b| line.contains(b));
            let sql = [
                "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WHERE ", "DROP ", " FROM ",
            ]
            .iter()
            .any(|k| line.contains(k));
            assert!(
                !(builds && sql),
                "src/{name}:{}: SQL built from text: {line}",
                number + 1
            );
        }
    }
    let statements =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/statements.rs"))
            .unwrap();
    for statement in ["types", "contact", "page", "page_starts"] {
        assert!(
            statements.contains(&format!("include_str!(\"../../sql/{statement}.sql\")")),
            "src/db/statements.rs does not embed sql/{statement}.sql"
        );
    }
    figure(
        test,
        format!(
            "{} payloads × 2 endpoints matched literally (the right contacts, nothing run: \
             slowest {:.0} ms), 6 SQL-carrying integers → 422, tables unchanged",
            payloads.len(),
            ms(slowest)
        ),
    );
}

/// sql/roles.sql: a role that can log in and read the four tables, and
/// nothing else. The server runs as it; the role cannot write.
#[test]
fn the_read_only_role_serves_the_api_and_cannot_write() {
    let _serial = serial();
    let f = fixture();
    let mut admin = pg_client();
    let roles = include_str!("../sql/roles.sql");
    // Idempotent: twice.
    admin.batch_execute(roles).expect("sql/roles.sql");
    admin
        .batch_execute(roles)
        .expect("sql/roles.sql, a second time");
    let before = table_counts(&mut admin);

    let url = format!(
        "postgresql://bakeoff_reader:{SECRET}@127.0.0.1:{}/bakeoff",
        f.cluster.port
    );
    for mode in ["shared", "exclusive"] {
        let s = Server::start(&url, &[("POOL_MODE", mode)]);
        let a = s.addr;
        wait_for_200(a, "/readyz", Duration::from_secs(10));
        let mut conn = Conn::connect(a);
        support::assert_body("/types", &conn.get("/types"), &f.snapshot.types_json());
        support::assert_body(
            "/contacts/1",
            &conn.get("/contacts/1"),
            &f.snapshot.contact_json(1).unwrap(),
        );
        for target in ["/contacts/fetch?starts=m&limit=5", "/contacts/for?limit=3"] {
            assert_eq!(
                conn.get(target).status,
                200,
                "{mode}: {target} as bakeoff_reader"
            );
        }
        assert!(!s.stderr().contains(SECRET));
    }

    let mut reader = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=bakeoff_reader dbname=bakeoff",
            f.cluster.port
        ),
        postgres::NoTls,
    )
    .expect("connect as bakeoff_reader");
    let show = |client: &mut postgres::Client, name: &str| -> String {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(show(&mut reader, "default_transaction_read_only"), "on");
    assert_eq!(show(&mut reader, "statement_timeout"), "5s");
    let contacts: i64 = reader
        .query_one("SELECT count(*) FROM contacts", &[])
        .unwrap()
        .get(0);
    assert_eq!(contacts, before[1]);
    // Refused by privilege, not only by the read-only default: switch that off first.
    reader
        .batch_execute("SET default_transaction_read_only = off")
        .unwrap();
    let writes = [
        "INSERT INTO contacts (first_name, last_name, type_id) VALUES ('x', 'y', 1)",
        "INSERT INTO contact_types (type_id, type_name) VALUES (99, 'x')",
        "UPDATE contacts SET last_name = 'x' WHERE contact_id = 1",
        "DELETE FROM contact_emails",
        "TRUNCATE contact_phones",
        "DROP TABLE contacts",
        "ALTER TABLE contacts ADD COLUMN x int",
        "CREATE TABLE public.intruder (i int)",
        "CREATE TEMP TABLE intruder (i int)",
        "CREATE SCHEMA intruder",
        "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "SELECT nextval('contacts_contact_id_seq')",
        "SELECT setval('contact_types_type_id_seq', 1)",
        "CREATE INDEX intruder ON contacts (first_name)",
        "BEGIN; LOCK TABLE contacts IN SHARE MODE",
        "ALTER ROLE bakeoff_reader SUPERUSER",
        "CREATE ROLE intruder",
    ];
    for sql in writes {
        let error = reader
            .batch_execute(sql)
            .expect_err(&format!("bakeoff_reader could run: {sql}"));
        let code = error.code().map(|c| c.code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {error}");
        reader.batch_execute("ROLLBACK").unwrap();
    }
    // What the catalog says it holds: SELECT on the four tables, USAGE on
    // schema public, no attribute but LOGIN, no membership.
    let attributes: (bool, bool, bool, bool, bool, bool, bool) = {
        let r = admin
            .query_one(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, \
                 rolbypassrls, rolinherit FROM pg_roles WHERE rolname = 'bakeoff_reader'",
                &[],
            )
            .unwrap();
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        )
    };
    assert_eq!(attributes, (true, false, false, false, false, false, false));
    let memberships: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_auth_members WHERE member = 'bakeoff_reader'::regrole",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(memberships, 0);
    let grants: Vec<(String, String)> = admin
        .query(
            "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
             WHERE grantee = 'bakeoff_reader' ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        "contact_emails",
        "contact_phones",
        "contact_types",
        "contacts",
    ]
    .iter()
    .map(|t| (t.to_string(), "SELECT".to_string()))
    .collect();
    assert_eq!(grants, expected);
    let schema: (bool, bool) = {
        let r = admin
            .query_one(
                "SELECT has_schema_privilege('bakeoff_reader', 'public', 'USAGE'), \
                        has_schema_privilege('bakeoff_reader', 'public', 'CREATE')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(schema, (true, false));
    assert_eq!(table_counts(&mut admin), before, "a table changed");
    figure(
        "read-only role",
        format!(
            "the server runs as bakeoff_reader (both pool modes); {} kinds of write refused \
             with 42501 insufficient_privilege; grants: SELECT on the 4 tables, USAGE on public",
            writes.len()
        ),
    );
}

/// No response ever shows an error's text, SQL, a file path or the
/// connection string, and no log line the password: faults of every kind
/// are provoked with a password in DATABASE_URL.
#[test]
fn no_response_or_log_line_shows_secrets_sql_or_internals() {
    let _serial = serial();
    let f = fixture();
    let extra = [
        SECRET,
        "bakeoff_reader",
        "/work",
        "/src/",
        "sql/",
        "sqlstate",
        "fatal",
        "error:",
    ];
    let mut checked = 0;
    let mut check = |what: &str, r: &Response| {
        assert_no_leak(what, r, &extra);
        checked += 1;
    };

    // The database unreachable (connection refused), then a statement
    // timeout, then a killed connection, then bad requests.
    let port = pg::free_port();
    let down = Server::start(
        &format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/bakeoff"),
        &[("POOL_TIMEOUT_MS", "200")],
    );
    for target in [
        "/types",
        "/contacts/1",
        "/contacts/fetch?starts=x",
        "/readyz",
    ] {
        check(target, &http::get(down.addr, target));
    }
    let app = "leaks";
    let up = Server::start(
        &url_with(app),
        &[("STATEMENT_TIMEOUT_MS", "200"), ("POOL_SIZE", "1")],
    );
    wait_for_200(up.addr, "/types", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let tx = lock_contacts(&mut locker);
    let r = http::get(up.addr, "/contacts/1");
    assert_eq!(r.status, 503);
    check("statement timeout", &r);
    tx.rollback().unwrap();
    // A connection killed while a query runs on it.
    let tx = lock_contacts(&mut locker);
    let a = up.addr;
    let held = thread::spawn(move || http::get(a, "/contacts/2"));
    wait_for_lock_wait(&mut admin, app);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap();
    let r = held.join().unwrap();
    assert_eq!(r.status, 503, "{r}");
    check("killed connection", &r);
    tx.rollback().unwrap();
    for (name, bytes, _) in hostile_cases() {
        let o = probe(
            up.addr,
            &[&bytes],
            Duration::ZERO,
            false,
            Duration::from_secs(5),
        );
        for r in &o.responses {
            check(name, r);
        }
    }
    let stderr = format!("{}{}", down.stderr(), up.stderr());
    assert!(
        stderr.contains("bakeoff: database:"),
        "no database error was logged:\n{stderr}"
    );
    assert!(
        !stderr.contains(SECRET),
        "a log line shows the password:\n{stderr}"
    );

    // Start-up errors and --help do not echo it either.
    for (url, args) in [
        (
            format!("postgresql://postgres:{SECRET}@127.0.0.1:notaport/bakeoff"),
            vec!["serve"],
        ),
        (
            format!("postgresql://postgres:{SECRET}@[::1/bakeoff"),
            vec!["serve"],
        ),
        (
            format!("host=127.0.0.1 password={SECRET} sslmode=bogus"),
            vec!["serve"],
        ),
        (
            f.database_url
                .replace("postgres@", &format!("postgres:{SECRET}@")),
            vec!["serve", "--help"],
        ),
        (
            f.database_url
                .replace("postgres@", &format!("postgres:{SECRET}@")),
            vec!["serve", "--pool-size", "0"],
        ),
    ] {
        let out = std::process::Command::new(support::server::BIN)
            .args(&args)
            .env("DATABASE_URL", &url)
            .env("BIND", "127.0.0.1:0")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(SECRET), "{args:?} with {url}: {text}");
        if args.len() == 1 || args.contains(&"0") {
            assert_eq!(out.status.code(), Some(2), "{args:?} with {url}: {text}");
        }
    }
    figure(
        "leaks",
        format!(
            "{checked} error responses (database down, statement timeout, killed connection, \
             hostile requests) free of error text, SQL, paths and secrets; no log line or \
             start-up error shows the password"
        ),
    );
}

/// The new settings are validated like the others.
#[test]
fn max_connections_and_fib_queue_are_validated() {
    for (var, value) in [
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "many"),
        ("FIB_QUEUE", "0"),
        ("FIB_QUEUE", "-1"),
    ] {
        support::assert_bad_setting_refused(var, value);
    }
}

/// A database that stops answering without closing its sockets (a frozen
/// proxy, a host gone behind a live load balancer): no statement timeout
/// reaches it and TCP keepalive sees a live peer, so only the server's own
/// deadline (pool timeout + statement timeout + 1 s) bounds the request.
#[test]
fn a_database_that_stops_answering_gets_503_at_the_deadline_not_a_hang() {
    let _serial = serial();
    let f = fixture();
    let port = pg::free_port();
    let cluster: SocketAddr = ([127, 0, 0, 1], f.cluster.port).into();
    let proxy = support::proxy::Proxy::start(port, cluster).expect("listen");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/bakeoff");
    for mode in ["shared", "exclusive"] {
        let s = Server::start(
            &url,
            &[
                ("POOL_MODE", mode),
                ("POOL_TIMEOUT_MS", "200"),
                ("STATEMENT_TIMEOUT_MS", "300"),
            ],
        );
        assert_eq!(
            http::get(s.addr, "/types").status,
            200,
            "{mode}: before the freeze"
        );
        proxy.set_frozen(true);
        for target in ["/types", "/contacts/1", "/readyz"] {
            let started = Instant::now();
            let r = try_get(s.addr, target, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{mode} {target}: no answer: {e}"));
            let waited = started.elapsed();
            figure(
                "frozen database",
                format!("{mode} {target}: {} after {:.0} ms", r.status, ms(waited)),
            );
            assert_eq!(r.status, 503, "{mode} {target}: {r}");
            assert!(r.header("retry-after").is_some(), "{mode} {target}: {r}");
            // Deadline 0.2 + 0.3 + 1 s = 1.5 s.
            assert!(
                waited < Duration::from_secs(3),
                "{mode} {target}: took {waited:?}"
            );
        }
        assert_eq!(http::get(s.addr, "/version").status, 200);
        proxy.set_frozen(false);
    }
}

// ---------------------------------------------------------------- to the standard of the trusted proxies

/// Reads until the server closes the connection (end of stream or a reset),
/// at most `limit`; false when it is still open then.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut scratch = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sends `head` (ignoring a reset: the server may refuse before it has it
/// all) and returns the status of the answer, and whether the server then
/// closed the connection.
fn refused_head(addr: SocketAddr, head: &[u8]) -> (Option<u16>, bool) {
    let mut conn = Conn::connect(addr);
    let _ = conn.try_send(head);
    let status = conn
        .read_response(false)
        .ok()
        .map(|response| response.status);
    let mut stream = conn.stream().try_clone().unwrap();
    (status, closed_within(&mut stream, Duration::from_secs(3)))
}

/// Request heads are bounded (16 KB by default): one long header, many
/// headers or a long request line are refused (431, or 414 for the target)
/// and the connection closed, so an open connection cannot pin more.
#[test]
fn request_heads_over_the_bound_are_refused_and_the_connection_closed() {
    let _serial = serial();
    let test = "bounded request heads";
    let address = addr();
    let long_header = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..90)
            .map(|index| format!("X-Header-{index}: {}\r\n", "b".repeat(200)))
            .collect::<String>()
    );
    let long_target = format!(
        "GET /version?padding={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "c".repeat(20 * 1024)
    );
    for (case, head, expected) in [
        ("a 100 KB header value", long_header, 431),
        ("90 headers of 200 bytes", many_headers, 431),
        ("a 20 KB request target", long_target, 414),
    ] {
        let (status, closed) = refused_head(address, head.as_bytes());
        assert_eq!(status, Some(expected), "{test}: {case}");
        assert!(closed, "{test}: {case}: the connection stayed open");
    }
    // A head just under the bound is served, on a connection kept alive.
    let mut conn = Conn::connect(address);
    let near = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Near: {}\r\n\r\n",
        "d".repeat(15 * 1024)
    );
    conn.send(near.as_bytes());
    let response = conn.read_response(false).unwrap();
    assert_eq!(response.status, 200, "{test}: a 15 KB head: {response}");
    assert_eq!(conn.get("/version").status, 200);
    // The bound is a setting.
    let server = Server::start(&fixture().database_url, &[("MAX_HEAD_BYTES", "65536")]);
    let (status, _) = refused_head(
        server.addr,
        format!(
            "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
            "e".repeat(40 * 1024)
        )
        .as_bytes(),
    );
    assert_eq!(
        status,
        Some(200),
        "{test}: a 40 KB head with MAX_HEAD_BYTES=65536"
    );
    assert_bad_setting_refused("MAX_HEAD_BYTES", "4096");
    figure(
        test,
        "a 100 KB header value and 90 × 200-byte headers → 431, a 20 KB target → 414, \
         each connection closed; a 15 KB head → 200 and kept alive; MAX_HEAD_BYTES=65536 \
         serves a 40 KB head",
    );
}

/// SIGTERM with slow requests in flight and clients that never finish their
/// heads or sit idle: those connections close at once, the requests finish,
/// and the process exits as soon as the last one is answered.
#[test]
fn shutdown_closes_idle_and_half_sent_connections_at_once_and_exits_after_the_last_answer() {
    let _serial = serial();
    let test = "shutdown waits only for work";
    let app = "shutdown_idle";
    let mut server = Server::start(
        &url_with(app),
        &[
            ("STATEMENT_TIMEOUT_MS", "20000"),
            ("POOL_SIZE", "2"),
            ("DRAIN_TIMEOUT_S", "10"),
        ],
    );
    let address = server.addr;
    wait_for_200(address, "/contacts/1", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let lock = lock_contacts(&mut locker);
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let answer = timed_get(address, "/contacts/1");
                (Instant::now(), answer)
            })
        })
        .collect();
    let mut half_sent: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut conn = Conn::connect(address);
            assert_eq!(conn.get("/version").status, 200);
            conn.stream().try_clone().unwrap()
        })
        .collect();
    wait_for_lock_waiters(&mut admin, app, |waiting| waiting >= 1);
    thread::sleep(Duration::from_millis(100));

    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    for stream in half_sent.iter_mut().chain(idle.iter_mut()) {
        assert!(
            closed_within(stream, Duration::from_secs(1)),
            "{test}: a connection with no request in flight was still open 1 s after SIGTERM"
        );
    }
    let idle_closed = signalled.elapsed();
    thread::sleep(Duration::from_millis(1500).saturating_sub(signalled.elapsed()));
    lock.commit().unwrap();
    let mut last_answer = signalled;
    for request in in_flight {
        let (answered, (_, response)) = request.join().unwrap();
        let response = response.unwrap_or_else(|error| panic!("{test}: in flight: {error}"));
        assert_eq!(response.status, 200, "{test}: {response}");
        last_answer = last_answer.max(answered);
    }
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s");
    let exited = Instant::now();
    assert_eq!(status.code(), Some(0), "{test}: {status}");
    let after_last = exited.saturating_duration_since(last_answer);
    assert!(
        after_last < Duration::from_secs(1),
        "{test}: exit {after_last:?} after the last in-flight answer (drain timeout 10 s)"
    );
    figure(
        test,
        format!(
            "SIGTERM with 3 requests held by a lock, 3 half-sent heads and 2 idle keep-alive \
             connections: the 5 closed within {:.0} ms; the 3 answered 200 once the lock was \
             released ({:.0} ms after the signal); exit 0 {:.0} ms after the last answer",
            ms(idle_closed),
            ms(last_answer - signalled),
            ms(after_last)
        ),
    );
}

/// While PostgreSQL is down, database requests answer 503 at once instead of
/// each waiting the pool timeout; `/readyz` too; the first 200 comes within
/// a second of PostgreSQL accepting connections again, and none fails after.
fn outage_fails_fast(mode: &'static str) {
    let _serial = serial();
    let test = format!("fast failure during an outage ({mode})");
    let mut cluster = pg::Cluster::start("bakeoff").expect("a second cluster");
    seed(&cluster, 100);
    let url = cluster.url("bakeoff");
    // A long pool timeout, so that waiting it out cannot pass for failing fast.
    let mut server = Server::start(&url, &[("POOL_MODE", mode), ("POOL_TIMEOUT_MS", "3000")]);
    let address = server.addr;
    wait_for_200(address, "/types", Duration::from_secs(10));
    let mut conn = Conn::connect(address);
    assert_eq!(conn.get("/types").status, 200);

    cluster.stop();
    let mut latencies = Vec::new();
    for index in 0..60 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let started = Instant::now();
        let response = conn.get(target);
        latencies.push(started.elapsed());
        assert_503(&format!("{test}: {target}"), &response);
    }
    // The first request or two find out that the database is gone.
    let settled = &latencies[2..];
    let (median, worst) = (quantile(settled, 0.5), quantile(settled, 1.0));
    assert!(
        median <= Duration::from_millis(50),
        "{test}: 503s took {} (p50 / p99 / max) with the database known to be down",
        spread(settled)
    );
    assert!(
        worst < Duration::from_millis(1000),
        "{test}: a 503 took {worst:?} with the database known to be down"
    );
    assert_eq!(conn.get("/version").status, 200);

    cluster.start_again().expect("restart PostgreSQL");
    let up = Instant::now();
    let recovery = wait_for_200(address, "/types", Duration::from_secs(5));
    assert!(
        recovery <= Duration::from_secs(1),
        "{test}: first 200 {recovery:?} after PostgreSQL accepted connections"
    );
    let mut conn = Conn::connect(address);
    for index in 0..200 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let response = conn.get(target);
        assert_eq!(
            response.status, 200,
            "{test}: after recovery, {target}: {response}"
        );
    }
    assert_alive(&mut server);
    figure(
        &test,
        format!(
            "pool timeout 3 s; database down: 60 requests (incl. /readyz) all 503 + Retry-After, \
             latency {} (first two: {:.1} / {:.1} ms); first 200 {:.0} ms after PostgreSQL \
             accepted connections (polling), then 200 requests all 200",
            spread(settled),
            ms(latencies[0]),
            ms(latencies[1]),
            ms(up.elapsed().min(recovery)),
        ),
    );
}

#[test]
fn while_the_database_is_down_requests_fail_fast_shared_pool() {
    outage_fails_fast("shared");
}

#[test]
fn while_the_database_is_down_requests_fail_fast_exclusive_pool() {
    outage_fails_fast("exclusive");
}

/// A client that stops reading is cut off after the write timeout, freeing
/// what its connection held; a slow reader that keeps reading is not.
#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let _serial = serial();
    let test = "write timeout";
    let server = Server::start(&fixture().database_url, &[("WRITE_TIMEOUT_S", "1")]);
    let address = server.addr;
    wait_for_200(address, "/types", Duration::from_secs(10));
    let target = "/contacts/for?limit=200";
    let page = http::get(address, target).body.len();
    let open = || pool_gauge(address, "bakeoff_open_connections");
    let baseline = open();
    // Enough answers to fill both sockets' buffers many times over.
    let batch = |count: usize| -> Vec<u8> {
        (0..count)
            .flat_map(|_| http::request_bytes("GET", target))
            .collect()
    };
    let mut stuck = Conn::connect(address);
    stuck.send(&batch(300));
    let mut slow = Conn::connect(address);
    const SLOW_PAGES: usize = 60;
    slow.send(&batch(SLOW_PAGES));
    let slow_reader = thread::spawn(move || {
        let mut pages = 0;
        while pages < SLOW_PAGES {
            // A page every 100 ms: slower than the server writes, but never
            // a second without taking bytes.
            let response = slow
                .read_response(false)
                .expect("the slow reader was cut off");
            assert_eq!(response.status, 200);
            pages += 1;
            thread::sleep(Duration::from_millis(100));
        }
        pages
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = Instant::now();
    while open() > baseline + 1 {
        assert!(
            Instant::now() < deadline,
            "{test}: the connection that stopped reading is still open after 10 s \
             (write timeout 1 s)"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let cut_off = started.elapsed();
    let mut stream = stuck.stream().try_clone().unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)),
        "{test}: the stuck client's socket was not closed"
    );
    assert_eq!(slow_reader.join().unwrap(), SLOW_PAGES);
    figure(
        test,
        format!(
            "WRITE_TIMEOUT_S=1: a client that pipelined 300 pages ({:.1} MB) and never read \
             was cut off {:.1} s after it sent them; a reader taking a page every 100 ms got all \
             {SLOW_PAGES} pages",
            (300 * page) as f64 / 1e6,
            cut_off.as_secs_f64()
        ),
    );
}
