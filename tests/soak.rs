//! A soak under faults: a mixed keep-alive load on every endpoint for a
//! fixed time while PostgreSQL is restarted and the server's connections are
//! killed, alternately, at intervals scaled to the duration; then checks
//! what the clients saw and what the server's process did.
//!
//! The checks: (a) every answer is 200, 404 or 503 (and the status the
//! target deserves, with the expected body, computed here from the tables),
//! with no transport error except on a connection the server closed during a
//! fault; (b) no 503 for a request started more than 1 s after the database
//! was back; (c) resident memory flat over the second half; (d) the open
//! file descriptors back to their count at the start once the load is gone.
//!
//! A second test makes certain what (d) met by chance before the pools swept
//! for closed connections: a pool that no request asks for after a restart.
//!
//! Its length is `SOAK_SECONDS` (default [`DEFAULT_SECONDS`]);
//! `scripts/soak.sh` runs it longer against a release build. It prints what
//! it measured on `[figure]` lines (`--nocapture`).

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};
use testkit::model::{self, Snapshot};
use testkit::{Kit, assert_alive, pg};

/// The kit, bound to the binary under test.
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

/// The default length of the soak. Long enough for six faults, each
/// followed by seconds of observed recovery, and for a second half of some
/// ten thousand requests to watch the memory over; short enough that every
/// `cargo test` (a debug build, on two cores) can afford it.
const DEFAULT_SECONDS: u64 = 24;
/// Below this there is no room for one restart and one kill, each with
/// recovery to observe.
const MIN_SECONDS: u64 = 12;
/// Concurrent keep-alive clients.
const CLIENTS: usize = 4;
/// Each client's pause between requests: keeps the load well below what two
/// shared cores can give (other work runs beside `cargo test`) while still
/// making thousands of requests.
const PAUSE: Duration = Duration::from_millis(2);
/// A request that hangs longer than this is a transport error (the server's
/// own bounds are the 1 s pool timeout and the 5 s statement timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon after the database is back a 503 is still allowed.
const RECOVERY: Duration = Duration::from_secs(1);
/// Quiet time after a fault before the next may begin, so that every
/// fault's recovery is observed on its own.
const MIN_QUIET: Duration = Duration::from_millis(1500);
/// How often the sampler reads the server's RSS and open fds.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The least the second-half RSS bound may be: the allocator keeps freed
/// pages in per-thread caches and returns them lazily, and every restart
/// opens a pool's worth of new connections with fresh buffers; a few MiB of
/// noise is not a leak.
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// How long the fds may take to return to their count at the start once
/// the clients have closed their connections (and the pool has refilled).
const FD_SETTLE: Duration = Duration::from_secs(10);
/// The server's `application_name`, by which the kills find its backends.
const APPLICATION_NAME: &str = "soak_server";

const SERVICE_UNAVAILABLE: &[u8] = br#"{"detail":"Service Unavailable"}"#;
const CONTACT_NOT_FOUND: &[u8] = br#"{"detail":"Contact not found"}"#;

fn figure(text: impl std::fmt::Display) {
    eprintln!("[figure] soak: {text}");
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `SOAK_SECONDS`, or the default.
fn soak_duration() -> Duration {
    let seconds = match std::env::var("SOAK_SECONDS") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("SOAK_SECONDS={text:?} is not a whole number of seconds")),
        Err(_) => DEFAULT_SECONDS,
    };
    assert!(
        seconds >= MIN_SECONDS,
        "SOAK_SECONDS={seconds}: at least {MIN_SECONDS} s are needed for a restart and a kill"
    );
    Duration::from_secs(seconds)
}

// ---------------------------------------------------------------- the load

/// One request the clients cycle through, with what it must answer.
struct Target {
    path: String,
    /// It needs the database, so 503 is allowed during a fault.
    needs_database: bool,
    /// The status when the database is up.
    status: u16,
    /// The exact body of that status, where the test knows it.
    body: Option<Vec<u8>>,
}

/// Every endpoint with valid requests, including missing contacts (404);
/// every expected body computed from `snapshot`, never from the server.
fn targets(snapshot: &Snapshot) -> Vec<Target> {
    let target = |path: String, needs_database, status, body| Target {
        path,
        needs_database,
        status,
        body,
    };
    let mut all = vec![
        target(
            "/version".into(),
            false,
            200,
            Some(format!(r#"{{"version":"{}"}}"#, env!("CARGO_PKG_VERSION")).into_bytes()),
        ),
        target("/types".into(), true, 200, Some(snapshot.types_json())),
        target("/healthz".into(), false, 200, None),
        target("/readyz".into(), true, 200, None),
    ];
    for (limit, offset) in [(5, 0), (20, 100), (100, 900), (1, 999), (50, 5000)] {
        let page = serde_json::to_vec(&snapshot.page(limit, offset, None)).unwrap();
        let path = format!("/contacts/fetch?limit={limit}&offset={offset}");
        all.push(target(path, true, 200, Some(page)));
    }
    // "m" is its own lower case, so the expected page needs no PostgreSQL.
    for (limit, offset) in [(5, 0), (20, 3), (100, 0)] {
        let page = serde_json::to_vec(&snapshot.page(limit, offset, Some("m"))).unwrap();
        let path = format!("/contacts/for?limit={limit}&offset={offset}&starts=m");
        all.push(target(path, true, 200, Some(page)));
    }
    for id in [1, 7, 500, 1000, 0, 1001, 2_147_483_647] {
        let path = format!("/contacts/{id}");
        match snapshot.contact_json(id) {
            Some(body) => all.push(target(path, true, 200, Some(body))),
            None => all.push(target(path, true, 404, Some(CONTACT_NOT_FOUND.to_vec()))),
        }
    }
    for n in [0, 10, 20] {
        let body = format!(r#"{{"result":{}}}"#, model::fib(n)).into_bytes();
        all.push(target(format!("/fibonacci/{n}"), false, 200, Some(body)));
    }
    all
}

/// One request a client made.
struct Sample {
    start: Instant,
    end: Instant,
    /// Index into the targets.
    target: usize,
    /// The status, or the transport error there was instead.
    result: Result<u16, io::Error>,
    /// The request went out on a connection opened for it.
    fresh_connection: bool,
}

/// What one client did.
#[derive(Default)]
struct ClientReport {
    samples: Vec<Sample>,
    connections_opened: usize,
    /// Answers with `Connection: close`.
    closed_with_answer: usize,
    /// Answers whose body or headers are not the expected ones.
    wrong_answers: Vec<String>,
}

fn connect(addr: SocketAddr) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(Conn::from_stream(stream))
}

/// A closed loop on one keep-alive connection, reconnecting after a closed
/// one, until `until`.
fn run_client(addr: SocketAddr, index: usize, targets: &[Target], until: Instant) -> ClientReport {
    let mut report = ClientReport::default();
    let mut conn: Option<Conn> = None;
    // Each client starts elsewhere in the list and steps by a different
    // stride, so that the endpoints are mixed at every moment.
    let stride = [1, 3, 5, 7][index % 4];
    let mut next = index * 5;
    while Instant::now() < until {
        let target_index = next % targets.len();
        next += stride;
        let target = &targets[target_index];
        let fresh_connection = conn.is_none();
        let start = Instant::now();
        let result = (|| {
            let connection = match &mut conn {
                Some(open) => open,
                None => {
                    report.connections_opened += 1;
                    conn.insert(connect(addr)?)
                }
            };
            connection.try_send(&http::request_bytes("GET", &target.path))?;
            connection.read_response(false)
        })();
        let end = Instant::now();
        let result = match result {
            Ok(response) => {
                if let Some(wrong) = wrong_answer(target, &response) {
                    report.wrong_answers.push(wrong);
                }
                if response
                    .header("connection")
                    .is_some_and(|value| value.eq_ignore_ascii_case("close"))
                {
                    report.closed_with_answer += 1;
                    conn = None;
                }
                Ok(response.status)
            }
            Err(error) => {
                conn = None;
                Err(error)
            }
        };
        report.samples.push(Sample {
            start,
            end,
            target: target_index,
            result,
            fresh_connection,
        });
        thread::sleep(PAUSE);
    }
    report
}

/// Why an answer of an allowed status is wrong, if it is: its body is not
/// the expected one, or its 503 lacks the contract's body or `Retry-After`.
fn wrong_answer(target: &Target, response: &Response) -> Option<String> {
    let expected = if response.status == 503 {
        if response.header("retry-after").is_none() {
            return Some(format!(
                "GET {}: 503 without Retry-After: {response}",
                target.path
            ));
        }
        SERVICE_UNAVAILABLE
    } else if response.status == target.status {
        target.body.as_deref()?
    } else {
        // A wrong status is check (a)'s, reported with its timing.
        return None;
    };
    (response.body != expected).then(|| {
        format!(
            "GET {}: body differs from the expected {:?}: {response}",
            target.path,
            testkit::show(expected)
        )
    })
}

// ---------------------------------------------------------------- the faults

#[derive(Clone, Copy, PartialEq, Debug)]
enum FaultKind {
    /// PostgreSQL stopped ("fast": every session ended), down a while,
    /// started again.
    Restart,
    /// `pg_terminate_backend` of every connection of the server; the
    /// database stays up.
    Kill,
}

/// One fault the controller ran.
struct Fault {
    kind: FaultKind,
    /// Just before the stop or the kill.
    begin: Instant,
    /// The database is unreachable from here on (restart: the postmaster has
    /// exited; kill: the backends were told to end).
    down: Instant,
    /// The database accepts connections again (restart: a connection of our
    /// own succeeded; kill: at once).
    back: Instant,
    /// Backends ended by a kill.
    killed: i64,
}

/// When the faults happen, scaled to the duration.
struct Plan {
    duration: Duration,
    /// From one fault's beginning to the next.
    interval: Duration,
    /// How long a restart keeps PostgreSQL down.
    down_for: Duration,
    /// No fault begins in the last `tail` of the soak, so that the last
    /// recovery is observed and the memory settles under plain load.
    tail: Duration,
}

impl Plan {
    fn for_duration(duration: Duration) -> Plan {
        let interval = (duration / 8).clamp(Duration::from_secs(3), Duration::from_secs(20));
        Plan {
            duration,
            interval,
            // Longer than the server's 1 s pool timeout: requests that
            // arrive while it is down must be answered 503, not just wait.
            down_for: (interval / 3).clamp(Duration::from_secs(2), Duration::from_secs(5)),
            tail: interval.max(Duration::from_secs(4)),
        }
    }
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// Runs the faults of `plan` from `start` on, alternating restarts and
/// kills, and returns them.
fn run_faults(cluster: &mut pg::Cluster, plan: &Plan, start: Instant) -> Vec<Fault> {
    let last_begin = start + plan.duration - plan.tail;
    let mut faults: Vec<Fault> = Vec::new();
    let mut scheduled = start + plan.interval;
    loop {
        let at = match faults.last() {
            Some(previous) => scheduled.max(previous.back + MIN_QUIET),
            None => scheduled,
        };
        if at > last_begin {
            return faults;
        }
        sleep_until(at);
        let fault = if faults.len().is_multiple_of(2) {
            restart(cluster, plan.down_for)
        } else {
            kill(cluster)
        };
        faults.push(fault);
        scheduled += plan.interval;
    }
}

fn restart(cluster: &mut pg::Cluster, down_for: Duration) -> Fault {
    let begin = Instant::now();
    cluster.stop();
    let down = Instant::now();
    thread::sleep(down_for);
    cluster.start_again().expect("start PostgreSQL again");
    Fault {
        kind: FaultKind::Restart,
        begin,
        down,
        back: Instant::now(),
        killed: 0,
    }
}

fn kill(cluster: &pg::Cluster) -> Fault {
    // Connected before the fault begins: our own connect is not part of it.
    let mut client = postgres::Client::connect(&cluster.conn_string("bakeoff"), postgres::NoTls)
        .expect("connect to PostgreSQL to kill the server's backends");
    let begin = Instant::now();
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&APPLICATION_NAME],
        )
        .expect("pg_terminate_backend")
        .get(0);
    let back = Instant::now();
    Fault {
        kind: FaultKind::Kill,
        begin,
        down: back,
        back,
        killed,
    }
}

/// The fault an answer ending at `end` may owe its failure to: the last one
/// that began before it ended.
fn fault_before(faults: &[Fault], end: Instant) -> Option<(usize, &Fault)> {
    faults
        .iter()
        .enumerate()
        .rev()
        .find(|(_, fault)| fault.begin <= end)
}

// ---------------------------------------------------------------- the process

/// The server's resident memory and open fds at one moment.
struct Reading {
    at: Instant,
    rss_kib: u64,
    fds: usize,
}

fn read_process(pid: u32) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(Reading {
        at: Instant::now(),
        rss_kib,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
    })
}

/// A reading once the fd count has held still for half a second (at most
/// `limit`): connections the test just closed may not be closed by the
/// server yet.
fn settled_reading(pid: u32, limit: Duration) -> Reading {
    let deadline = Instant::now() + limit;
    let mut last = read_process(pid).expect("read the server's /proc entry");
    let mut still_since = last.at;
    loop {
        thread::sleep(Duration::from_millis(50));
        let reading = read_process(pid).expect("read the server's /proc entry");
        if reading.fds != last.fds {
            still_since = reading.at;
        }
        last = reading;
        if last.at - still_since >= Duration::from_millis(500) || last.at > deadline {
            return last;
        }
    }
}

/// Reads the process every [`SAMPLE_EVERY`] until `until` (or it is gone).
fn sample_process(pid: u32, until: Instant) -> Vec<Reading> {
    let mut readings = Vec::new();
    while Instant::now() < until {
        match read_process(pid) {
            Some(reading) => readings.push(reading),
            None => break,
        }
        thread::sleep(SAMPLE_EVERY);
    }
    readings
}

/// The server's open fds by what they are (`socket`, `anon_inode:[eventpoll]`,
/// a file path…), for a failure message.
fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return kinds;
    };
    for entry in entries.flatten() {
        let link = std::fs::read_link(entry.path())
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "?".into());
        let kind = match link.split_once(":[") {
            Some((prefix, _)) if prefix != "anon_inode" => prefix.to_string(),
            _ => link,
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// The pool gauges of `/metrics`: (connections open, connections kept).
fn pool_gauges(addr: SocketAddr) -> Option<(u64, u64)> {
    let response = connect(addr).ok().and_then(|mut connection| {
        connection
            .try_send(&http::request_bytes("GET", "/metrics"))
            .ok()?;
        connection.read_response(false).ok()
    })?;
    let text = response.body_str();
    let gauge = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    };
    Some((
        gauge("bakeoff_pool_connections")?,
        gauge("bakeoff_pool_size")?,
    ))
}

/// Waits until the server's pool holds every connection it keeps, so that
/// the fds counted then are comparable with those counted at the end.
fn wait_for_full_pool(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let gauges = pool_gauges(addr);
        if let Some((open, kept)) = gauges
            && open == kept
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the pool did not refill within {limit:?} (connections open, kept: {gauges:?})"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The server's backends, by `pg_stat_activity`.
fn backends(cluster: &pg::Cluster) -> Result<i64, String> {
    let mut client = postgres::Client::connect(&cluster.conn_string("bakeoff"), postgres::NoTls)
        .map_err(|error| error.to_string())?;
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&APPLICATION_NAME],
        )
        .map(|row| row.get(0))
        .map_err(|error| error.to_string())
}

/// Seeds the soak's own cluster with `bakeoff seed` and reads it back.
fn seed(cluster: &pg::Cluster) -> Snapshot {
    let out = std::process::Command::new(KIT.bin())
        .args(["seed", "--contacts", "1000"])
        .env("DATABASE_URL", cluster.url("bakeoff"))
        .env_remove("CONTACTS")
        .output()
        .expect("run bakeoff seed");
    assert!(
        out.status.success(),
        "bakeoff seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut client = postgres::Client::connect(&cluster.conn_string("bakeoff"), postgres::NoTls)
        .expect("connect to the soak's database");
    Snapshot::load(&mut client).expect("read the soak's tables")
}

// ---------------------------------------------------------------- the soak

/// The tests of this file run one at a time: each restarts a cluster and
/// counts a server's fds.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|error| error.into_inner())
}

/// The server's database URL: its `application_name` lets the kills and the
/// backend counts find its connections.
fn server_url(cluster: &pg::Cluster) -> String {
    format!(
        "postgresql://postgres@127.0.0.1:{}/bakeoff?application_name={APPLICATION_NAME}",
        cluster.port
    )
}

#[test]
fn a_mixed_load_survives_database_restarts_and_killed_connections() {
    let _serial = serial();
    let duration = soak_duration();
    let plan = Plan::for_duration(duration);
    // A cluster of its own: it is stopped and started under the load.
    let mut cluster = pg::Cluster::start("bakeoff").expect("the soak's cluster");
    let targets = targets(&seed(&cluster));
    let mut server = KIT.start_server(&server_url(&cluster), &[]);
    let (addr, pid) = (server.addr, server.pid());

    warm_up(addr, &targets);
    // The fds are counted with a full pool, before the load and after it.
    wait_for_full_pool(addr, Duration::from_secs(10)).unwrap_or_else(|error| panic!("{error}"));
    let before = settled_reading(pid, Duration::from_secs(5));
    let fd_kinds_before = fd_kinds(pid);

    let outcome = load_under_faults(&mut cluster, &plan, addr, pid, &targets);
    assert_alive(&mut server);
    let (after, fd_settle) = reading_once_the_fds_settle(pid, &before);

    let samples = outcome.samples();
    let tally = check_every_answer(&targets, &samples, &outcome);
    check_every_body(&outcome.reports);
    check_the_soak_was_not_vacuous(&targets, &samples, &outcome, &tally, duration);
    report_the_load_and_each_fault(&targets, &samples, &outcome, &tally, &plan);
    check_memory_flat_over_the_second_half(&outcome, duration, &before, &after);
    check_fds_back_to_their_count_at_the_start(
        &cluster,
        addr,
        pid,
        &outcome,
        (&before, &fd_kinds_before),
        (&after, fd_settle),
    );
    assert_alive(&mut server);
}

/// Every target once on a fresh connection, each answering its status: the
/// server and the expected bodies agree before any fault.
fn warm_up(addr: SocketAddr, targets: &[Target]) {
    for target in targets {
        let status = connect(addr)
            .and_then(|mut connection| {
                connection.try_send(&http::request_bytes("GET", &target.path))?;
                connection.read_response(false)
            })
            .map(|response| response.status);
        assert_eq!(
            status.as_ref().ok(),
            Some(&target.status),
            "before the soak: GET {}: {status:?}",
            target.path
        );
    }
}

/// What the load under faults left to check.
struct Outcome {
    /// When the load began; figures count seconds from here.
    start: Instant,
    reports: Vec<ClientReport>,
    faults: Vec<Fault>,
    /// The server's RSS and fds every [`SAMPLE_EVERY`] during the load.
    readings: Vec<Reading>,
}

impl Outcome {
    /// Every client's samples, in the order they started.
    fn samples(&self) -> Vec<&Sample> {
        let mut samples: Vec<&Sample> = self
            .reports
            .iter()
            .flat_map(|report| &report.samples)
            .collect();
        samples.sort_by_key(|sample| sample.start);
        samples
    }

    /// Seconds from the start of the load to `instant`.
    fn at(&self, instant: Instant) -> f64 {
        secs(instant.saturating_duration_since(self.start))
    }
}

/// The clients and the process sampler, for the plan's duration, while the
/// faults run on this thread.
fn load_under_faults(
    cluster: &mut pg::Cluster,
    plan: &Plan,
    addr: SocketAddr,
    pid: u32,
    targets: &[Target],
) -> Outcome {
    let start = Instant::now();
    let until = start + plan.duration;
    let (reports, faults, readings) = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|index| scope.spawn(move || run_client(addr, index, targets, until)))
            .collect();
        let sampler = scope.spawn(move || sample_process(pid, until));
        let faults = run_faults(cluster, plan, start);
        let reports: Vec<ClientReport> = clients
            .into_iter()
            .map(|client| client.join().expect("a client panicked"))
            .collect();
        (
            reports,
            faults,
            sampler.join().expect("the sampler panicked"),
        )
    });
    Outcome {
        start,
        reports,
        faults,
        readings,
    }
}

/// For (d): the fds once every client connection is closed and the pool
/// full, and how long after the load that was. A count is taken once it has
/// held still (a connection the server has not accepted yet is not among its
/// fds), and again until it is the start's or the time is up.
fn reading_once_the_fds_settle(pid: u32, before: &Reading) -> (Reading, Duration) {
    let load_end = Instant::now();
    let settle_by = load_end + FD_SETTLE;
    let mut after = settled_reading(pid, FD_SETTLE);
    while after.fds != before.fds && after.at < settle_by {
        after = settled_reading(pid, settle_by.saturating_duration_since(Instant::now()));
    }
    let fd_settle = after.at - load_end;
    (after, fd_settle)
}

/// What check (a) counted, for the figures.
struct Tally {
    by_status: BTreeMap<u16, usize>,
    /// Per fault: keep-alive connections the server closed during it.
    closed_per_fault: Vec<usize>,
    /// Per fault: the 503s it owes.
    failures_per_fault: Vec<usize>,
    closed_by_server: usize,
}

/// (a) statuses, and transport errors only where a fault closed a
/// connection; (b) no 503 once the database was back for [`RECOVERY`].
fn check_every_answer(targets: &[Target], samples: &[&Sample], outcome: &Outcome) -> Tally {
    let faults = &outcome.faults;
    let at = |instant: Instant| outcome.at(instant);
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut closed_per_fault = vec![0usize; faults.len()];
    let mut failures_per_fault = vec![0usize; faults.len()];
    let mut closed_by_server = 0;
    for sample in samples {
        let target = &targets[sample.target];
        let describe = |what: &str| {
            format!(
                "GET {} started at {:.3} s, ended at {:.3} s: {what}",
                target.path,
                at(sample.start),
                at(sample.end)
            )
        };
        match &sample.result {
            Ok(status) => {
                *by_status.entry(*status).or_default() += 1;
                let allowed = *status == target.status || (*status == 503 && target.needs_database);
                assert!(
                    matches!(status, 200 | 404 | 503) && allowed,
                    "(a) {}",
                    describe(&format!(
                        "status {status}, expected {}{}",
                        target.status,
                        if target.needs_database { " or 503" } else { "" }
                    ))
                );
                if *status == 503 {
                    // (b) after the fault the 503 owes itself to.
                    let Some((index, fault)) = fault_before(faults, sample.end) else {
                        panic!("(b) {}", describe("503 before any fault began"));
                    };
                    assert!(
                        sample.start < fault.back + RECOVERY,
                        "(b) {}",
                        describe(&format!(
                            "503 {:.3} s after PostgreSQL was back from fault #{} ({:?}); \
                             allowed until {:.3} s",
                            secs(sample.start - fault.back),
                            index + 1,
                            fault.kind,
                            secs(RECOVERY)
                        ))
                    );
                    failures_per_fault[index] += 1;
                }
            }
            Err(error) => {
                // Only a keep-alive connection the server closed, during a
                // fault and its recovery, is excused.
                let closed = matches!(
                    error.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                );
                let fault = fault_before(faults, sample.end)
                    .filter(|(_, fault)| sample.start < fault.back + RECOVERY);
                match fault {
                    Some((index, _)) if closed && !sample.fresh_connection => {
                        closed_per_fault[index] += 1;
                        closed_by_server += 1;
                    }
                    _ => panic!(
                        "(a) {}",
                        describe(&format!(
                            "transport error on a {} connection, {}: {error}",
                            if sample.fresh_connection {
                                "fresh"
                            } else {
                                "keep-alive"
                            },
                            if fault.is_some() {
                                "during a fault"
                            } else {
                                "outside any fault"
                            }
                        ))
                    ),
                }
            }
        }
    }
    // A fault may close each client's connection once, no more.
    for (index, closed) in closed_per_fault.iter().enumerate() {
        assert!(
            *closed <= CLIENTS,
            "(a) fault #{} closed {closed} connections; there are only {CLIENTS} clients",
            index + 1
        );
    }
    Tally {
        by_status,
        closed_per_fault,
        failures_per_fault,
        closed_by_server,
    }
}

/// (a) every answer of an allowed status with the expected body and headers.
fn check_every_body(reports: &[ClientReport]) {
    let wrong: Vec<&String> = reports
        .iter()
        .flat_map(|report| &report.wrong_answers)
        .collect();
    assert!(
        wrong.is_empty(),
        "(a) {} answers with a wrong body or headers, e.g.:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(5)
            .map(|answer| answer.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The soak was not vacuous: load, every target answered, faults felt.
fn check_the_soak_was_not_vacuous(
    targets: &[Target],
    samples: &[&Sample],
    outcome: &Outcome,
    tally: &Tally,
    duration: Duration,
) {
    let oks = tally.by_status.get(&200).copied().unwrap_or(0);
    let minimum_oks = 100 * duration.as_secs() as usize;
    assert!(
        oks >= minimum_oks,
        "only {oks} answers were 200 in {duration:?}; at least {minimum_oks} make a soak"
    );
    for (index, target) in targets.iter().enumerate() {
        assert!(
            samples.iter().any(|sample| sample.target == index
                && sample.result.as_ref().ok() == Some(&target.status)),
            "GET {} never answered {}",
            target.path,
            target.status
        );
    }
    let faults = &outcome.faults;
    let restarts = faults
        .iter()
        .filter(|fault| fault.kind == FaultKind::Restart)
        .count();
    let kills = faults.len() - restarts;
    assert!(
        restarts >= 1 && kills >= 1,
        "the faults did not run: {restarts} restarts, {kills} kills"
    );
    assert!(
        faults.iter().any(|fault| fault.killed > 0),
        "no kill found a connection of the server's to end"
    );
    let felt: usize = tally.failures_per_fault.iter().sum::<usize>() + tally.closed_by_server;
    assert!(
        felt > 0,
        "no request failed during {} faults: they did not reach the server",
        faults.len()
    );
}

/// The figures of the load, of each fault and of the 503s' latency.
fn report_the_load_and_each_fault(
    targets: &[Target],
    samples: &[&Sample],
    outcome: &Outcome,
    tally: &Tally,
    plan: &Plan,
) {
    let (duration, faults, reports) = (plan.duration, &outcome.faults, &outcome.reports);
    let at = |instant: Instant| outcome.at(instant);
    let restarts = faults
        .iter()
        .filter(|fault| fault.kind == FaultKind::Restart)
        .count();
    let kills = faults.len() - restarts;
    let requests = samples.len();
    let connections: usize = reports.iter().map(|report| report.connections_opened).sum();
    let closed_with_answer: usize = reports.iter().map(|report| report.closed_with_answer).sum();
    figure(format!(
        "{:.0} s, {CLIENTS} keep-alive clients, {} targets on every endpoint; \
         faults every {:.1} s ({restarts} restarts down {:.1} s, {kills} kills)",
        secs(duration),
        targets.len(),
        secs(plan.interval),
        secs(plan.down_for),
    ));
    figure(format!(
        "{requests} requests ({:.0}/s): {}; {} on connections the server \
         closed during a fault, 0 other transport errors; {} connections opened \
         ({} reconnects, {closed_with_answer} answers with Connection: close)",
        requests as f64 / secs(duration),
        tally
            .by_status
            .iter()
            .map(|(status, count)| format!("{status} × {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        tally.closed_by_server,
        connections,
        connections.saturating_sub(CLIENTS),
    ));
    let first_ok_after = |fault: &Fault| {
        samples
            .iter()
            .filter(|sample| {
                targets[sample.target].needs_database
                    && sample.start >= fault.down
                    && sample.result.as_ref().ok() == Some(&200)
            })
            .map(|sample| sample.end)
            .min()
    };
    let mut latencies_503 = Vec::new();
    for (index, fault) in faults.iter().enumerate() {
        let first_ok = first_ok_after(fault)
            .map(|end| format!("{:.0} ms", ms(end.saturating_duration_since(fault.back))))
            .unwrap_or_else(|| "none".into());
        let what = match fault.kind {
            FaultKind::Restart => format!(
                "restart at {:.1} s (stop {:.0} ms, down until back {:.0} ms)",
                at(fault.begin),
                ms(fault.down - fault.begin),
                ms(fault.back - fault.down)
            ),
            FaultKind::Kill => format!(
                "kill at {:.1} s ({} backends ended)",
                at(fault.begin),
                fault.killed
            ),
        };
        figure(format!(
            "fault #{} {what}: {} × 503, {} connections closed; first 200 {first_ok} after back",
            index + 1,
            tally.failures_per_fault[index],
            tally.closed_per_fault[index],
        ));
    }
    for sample in samples {
        if sample.result.as_ref().ok() == Some(&503) {
            latencies_503.push(sample.end - sample.start);
        }
    }
    latencies_503.sort();
    if let (Some(first), Some(last)) = (latencies_503.first(), latencies_503.last()) {
        figure(format!(
            "503 latency: min {:.0} ms, p50 {:.0} ms, max {:.0} ms",
            ms(*first),
            ms(latencies_503[latencies_503.len() / 2]),
            ms(*last)
        ));
    }
}

/// (c) resident memory flat over the second half of the load.
fn check_memory_flat_over_the_second_half(
    outcome: &Outcome,
    duration: Duration,
    before: &Reading,
    after: &Reading,
) {
    let (start, readings) = (outcome.start, &outcome.readings);
    let at = |instant: Instant| outcome.at(instant);
    let half = start + duration / 2;
    let reading_at = |instant: Instant| readings.iter().find(|reading| reading.at >= instant);
    let at_quarter = reading_at(start + duration / 4).expect("a reading after the first quarter");
    let at_half = reading_at(half).expect("a reading at the half-way mark");
    let max_second_half = readings
        .iter()
        .filter(|reading| reading.at >= half)
        .max_by_key(|reading| reading.rss_kib)
        .expect("readings in the second half");
    let last = readings.last().expect("readings");
    let growth = max_second_half.rss_kib.saturating_sub(at_half.rss_kib);
    let bound = RSS_SLACK_KIB.max(at_half.rss_kib / 10);
    figure(format!(
        "RSS (MiB) before the load {:.1}, quarter {:.1}, half {:.1}, max of the second half \
         {:.1} (at {:.1} s), end of the load {:.1}, after it {:.1}; growth over the second \
         half {:.1} MiB (bound {:.1}); {} readings",
        mib(before.rss_kib),
        mib(at_quarter.rss_kib),
        mib(at_half.rss_kib),
        mib(max_second_half.rss_kib),
        at(max_second_half.at),
        mib(last.rss_kib),
        mib(after.rss_kib),
        mib(growth),
        mib(bound),
        readings.len()
    ));
    assert!(
        growth <= bound,
        "(c) RSS grew {growth} KiB over the second half (from {} KiB at the half-way mark to \
         {} KiB at {:.1} s), more than the bound {bound} KiB; RSS every ~2 s (s, KiB): {:?}",
        at_half.rss_kib,
        max_second_half.rss_kib,
        at(max_second_half.at),
        readings
            .iter()
            .step_by(8)
            .map(|reading| (at(reading.at).round() as u64, reading.rss_kib))
            .collect::<Vec<_>>()
    );
}

/// (d) the open fds back to their count at the start once the load is gone;
/// if not, what they are, whether the pool says it is full, and the
/// server's backends.
fn check_fds_back_to_their_count_at_the_start(
    cluster: &pg::Cluster,
    addr: SocketAddr,
    pid: u32,
    outcome: &Outcome,
    (before, fd_kinds_before): (&Reading, &BTreeMap<String, usize>),
    (after, fd_settle): (&Reading, Duration),
) {
    figure(format!(
        "open fds before the load {}, max during it {}, after it {} (settled in {:.0} ms)",
        before.fds,
        outcome
            .readings
            .iter()
            .map(|reading| reading.fds)
            .max()
            .unwrap_or(0),
        after.fds,
        ms(fd_settle)
    ));
    if after.fds != before.fds {
        let fd_kinds_after = fd_kinds(pid);
        let full_pool = wait_for_full_pool(addr, Duration::ZERO);
        let backends = backends(cluster);
        panic!(
            "(d) {} open fds {:.1} s after the load, {} before it\n  before: {fd_kinds_before:?}\n  \
             after:  {fd_kinds_after:?}\n  pool: {full_pool:?}; the server's backends in \
             pg_stat_activity: {backends:?}\n  (fewer sockets and backends, with /metrics \
             counting the pool full: a worker no client reached kept its dead connections; \
             see an_idle_server_reconnects_its_pools_after_a_database_restart)",
            after.fds,
            secs(fd_settle),
            before.fds,
        );
    }
}

/// What check (d) of the soak runs into when its clients all land on one
/// per-core worker (the kernel spreads connections over the workers'
/// `SO_REUSEPORT` listeners by a hash): after PostgreSQL restarts, a pool
/// that no request asks for keeps its dead connections and counts them as
/// open. Here made certain: the server is idle throughout. Each pool now
/// sweeps for closed connections once a second (`src/db/pool.rs`).
#[test]
fn an_idle_server_reconnects_its_pools_after_a_database_restart() {
    let _serial = serial();
    let mut cluster = pg::Cluster::start("bakeoff").expect("the test's cluster");
    seed(&cluster);
    let mut server = KIT.start_server(&server_url(&cluster), &[]);
    let pid = server.pid();
    wait_for_full_pool(server.addr, Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("{error}"));
    let before = settled_reading(pid, Duration::from_secs(5));
    let backends_before = backends(&cluster).expect("count the server's backends");

    cluster.stop();
    thread::sleep(Duration::from_secs(2));
    cluster.start_again().expect("start PostgreSQL again");
    let back = Instant::now();

    // Without a single request: the pools must find out and reconnect.
    let limit = Duration::from_secs(5);
    loop {
        let after = settled_reading(pid, Duration::from_secs(2));
        let backends_after = backends(&cluster).expect("count the server's backends");
        if after.fds == before.fds && backends_after == backends_before {
            figure(format!(
                "idle server: its {backends_before} backends back {:.0} ms after PostgreSQL was",
                ms(after.at - back)
            ));
            break;
        }
        assert!(
            back.elapsed() < limit,
            "{:.1} s after PostgreSQL was back, the idle server has {backends_after} backends \
             ({backends_before} before the restart) and {} open fds ({} before); /metrics \
             says (pool connections open, kept): {:?}",
            secs(back.elapsed()),
            after.fds,
            before.fds,
            pool_gauges(server.addr)
        );
    }
    assert_alive(&mut server);
}
