//! The server behind a real PgBouncer (Debian's 1.18), in front of the
//! test cluster: why `--statements unnamed` exists, and what each pooling
//! mode needs.
//!
//! - transaction pooling + `--statements unnamed`: two server processes
//!   share a few PostgreSQL connections; every endpoint answers exactly what
//!   it answers on a direct connection, under concurrent load.
//! - session pooling + `--statements prepared`: works with PgBouncer's
//!   defaults (the server sends no startup options, which PgBouncer would
//!   refuse) and keeps the server's statement timeout, set per connection.
//! - transaction pooling + `--statements prepared`: a statement prepared on
//!   one PostgreSQL connection is executed on another ("prepared statement
//!   … does not exist"): those requests get 503, never a 500 or a wrong
//!   body, and the server stays up.
//! - transaction pooling + unnamed + a role's `statement_timeout`: the
//!   timeout applies through PgBouncer.
//!
//! Needs `pgbouncer` (`apt-get install -y pgbouncer`); without it every test
//! fails saying so. Lines starting with `[figure]` say what was observed
//! (`cargo test --test pgbouncer -- --nocapture`).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};
use testkit::pgbouncer::{Config, PgBouncer, PoolMode};
use testkit::{Kit, Server, assert_body, assert_error, model};

/// The kit, bound to the binary under test: the fixture and its cluster.
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

const DBNAME: &str = "bakeoff";
const SERVICE_UNAVAILABLE: &str = r#"{"detail":"Service Unavailable"}"#;
/// Connections each server opens (its POOL_SIZE).
const SERVER_POOL: u32 = 4;

/// Connections a server opens in shared, prepared mode: POOL_SIZE, plus a
/// quarter of each worker's share (rounded up) for the `starts` pages, so
/// one more per worker with WORKER_THREADS 2 (docs/DEPLOY.md, "The
/// connection budget"). Session pooling must lend each of them a PostgreSQL
/// connection, or the ones left waiting are never usable.
const SERVER_CONNECTIONS_PREPARED: u32 = SERVER_POOL + 2;

/// One test at a time: one of them locks a table of the shared cluster, and
/// the load of one would distort another's on two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|error| error.into_inner())
}

fn bouncer(config: &Config) -> PgBouncer {
    PgBouncer::start(KIT.fixture().cluster.port, DBNAME, config)
        .unwrap_or_else(|error| panic!("cannot start PgBouncer: {error}"))
}

/// A server on `database_url` with `--statements MODE`, POOL_SIZE
/// [`SERVER_POOL`], a 5 s pool timeout, and `env`.
fn server(database_url: &str, statements: &str, env: &[(&str, &str)]) -> Server {
    let pool = SERVER_POOL.to_string();
    let mut all = vec![
        ("STATEMENTS", statements),
        ("POOL_SIZE", pool.as_str()),
        ("WORKER_THREADS", "2"),
        // Margin for a loaded CI machine: the tests count 503s.
        ("POOL_TIMEOUT_MS", "5000"),
    ];
    all.extend_from_slice(env);
    KIT.start_server(database_url, &all)
}

/// The database requests of the load, with the body each must answer: the
/// expected bodies come from the fixture's own reading of the tables.
fn database_cases() -> Vec<(String, Vec<u8>)> {
    let fixture = KIT.fixture();
    let mut cases = vec![
        ("/types".to_string(), fixture.snapshot.types_json()),
        ("/readyz".to_string(), br#"{"status":"ready"}"#.to_vec()),
    ];
    for (limit, offset, starts) in [
        (50, 10, None),
        (20, 0, Some("m")),
        (200, 900, None),
        (5, 1, Some("o'b")),
    ] {
        let query = match starts {
            Some(prefix) => format!(
                "limit={limit}&offset={offset}&starts={}",
                testkit::pct(prefix)
            ),
            None => format!("limit={limit}&offset={offset}"),
        };
        let body = fixture.page_json(limit, offset, starts);
        for path in ["/contacts/fetch", "/contacts/for"] {
            cases.push((format!("{path}?{query}"), body.clone()));
        }
    }
    for id in [1, 17, 500, i64::from(testkit::SEEDED_CONTACTS)] {
        let body = fixture
            .snapshot
            .contact_json(id)
            .unwrap_or_else(|| panic!("contact {id} is not in the fixture"));
        cases.push((format!("/contacts/{id}"), body));
    }
    cases
}

/// Every endpoint once, on a fresh connection, each answer exact.
fn assert_every_endpoint(addr: SocketAddr) {
    for (target, expected) in database_cases() {
        assert_body(&target, &http::get(addr, &target), &expected);
    }
    let version = format!(r#"{{"version":"{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_body("/version", &http::get(addr, "/version"), version.as_bytes());
    let fib = format!(r#"{{"result":{}}}"#, model::fib(20));
    assert_body(
        "/fibonacci/20",
        &http::get(addr, "/fibonacci/20"),
        fib.as_bytes(),
    );
    assert_body(
        "/healthz",
        &http::get(addr, "/healthz"),
        br#"{"status":"ok"}"#,
    );
    assert_error(
        "/contacts/0",
        &http::get(addr, "/contacts/0"),
        404,
        r#"{"detail":"Contact not found"}"#,
    );
    assert_eq!(http::get(addr, "/contacts/fetch?limit=0").status, 422);
    let head = http::request(addr, "HEAD", "/types");
    assert_eq!(head.status, 200, "HEAD /types: {head}");
}

/// What a load saw.
#[derive(Debug, Default)]
struct Tally {
    /// 200 with exactly the expected body.
    ok: usize,
    /// 503 `{"detail":"Service Unavailable"}` with Retry-After.
    unavailable: usize,
    /// Anything else, described (the first few).
    other: Vec<String>,
    other_count: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.ok + self.unavailable + self.other_count
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.other_count += other.other_count;
        for description in other.other {
            if self.other.len() < 5 {
                self.other.push(description);
            }
        }
    }

    fn record(&mut self, target: &str, response: &Response, expected: &[u8]) {
        if response.status == 200 && response.body == expected {
            self.ok += 1;
        } else if response.status == 503
            && response.body == SERVICE_UNAVAILABLE.as_bytes()
            && response.header("retry-after").is_some()
        {
            self.unavailable += 1;
        } else {
            self.other_count += 1;
            if self.other.len() < 5 {
                let detail = if response.status == 200 {
                    format!("200 with a wrong body: {response}")
                } else {
                    response.to_string()
                };
                self.other.push(format!("GET {target}: {detail}"));
            }
        }
    }
}

/// `threads` clients, each with a keep-alive connection to every server,
/// sending `per_thread` requests in turn to each server, cycling through
/// [`database_cases`]. Bounded: `threads * per_thread` requests in all.
fn load(addrs: &[SocketAddr], threads: usize, per_thread: usize) -> Tally {
    let cases = database_cases();
    let workers: Vec<_> = (0..threads)
        .map(|thread_index| {
            let cases = cases.clone();
            let addrs = addrs.to_vec();
            thread::spawn(move || {
                let mut conns: Vec<Conn> = addrs.iter().map(|&addr| Conn::connect(addr)).collect();
                let mut tally = Tally::default();
                for round in 0..per_thread {
                    let (target, expected) = &cases[(thread_index * 7 + round) % cases.len()];
                    let conn = &mut conns[(thread_index + round) % addrs.len()];
                    let response = conn.get(target);
                    tally.record(target, &response, expected);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(worker.join().expect("load thread panicked"));
    }
    tally
}

/// A pool's row of `SHOW POOLS` as (client connections, server connections).
fn pool_connections(bouncer: &PgBouncer, user: &str) -> (u32, u32) {
    let rows = bouncer.admin("SHOW POOLS").expect("SHOW POOLS");
    let row = rows
        .iter()
        .find(|pool| {
            let get = |key: &str| {
                pool.iter()
                    .find(|(column, _)| column == key)
                    .map(|(_, value)| value.as_str())
            };
            get("database") == Some(DBNAME) && get("user") == Some(user)
        })
        .unwrap_or_else(|| panic!("no pool for {DBNAME}/{user} in SHOW POOLS: {rows:?}"));
    let sum = |keys: &[&str]| -> u32 {
        keys.iter()
            .map(|key| {
                row.iter()
                    .find(|(column, _)| column == key)
                    .and_then(|(_, value)| value.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .sum()
    };
    (
        sum(&["cl_active", "cl_waiting"]),
        sum(&["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]),
    )
}

#[test]
fn transaction_pooling_with_unnamed_statements_serves_every_endpoint_from_two_servers() {
    let _serial = serial();
    let server_connections = 2;
    let bouncer = bouncer(&Config::new(PoolMode::Transaction, server_connections));
    let url = bouncer.url("postgres", DBNAME);
    let servers = [
        server(&url, "unnamed", &[]),
        server(&url, "unnamed", &[("POOL_MODE", "exclusive")]),
    ];
    let addrs: Vec<SocketAddr> = servers.iter().map(|api_server| api_server.addr).collect();
    for &addr in &addrs {
        assert_every_endpoint(addr);
    }

    let started = Instant::now();
    let tally = load(&addrs, 8, 50);
    println!(
        "[figure] transaction pooling, unnamed statements, 2 servers (shared and exclusive pool \
         modes): {} requests in {:.2} s: {} exact 200s, {} 503s, {} other",
        tally.total(),
        started.elapsed().as_secs_f64(),
        tally.ok,
        tally.unavailable,
        tally.other_count
    );
    assert_eq!(
        (tally.ok, tally.other_count),
        (400, 0),
        "every request must be an exact 200; first others: {:#?}\nPgBouncer log tail:\n{}",
        tally.other,
        tail(&bouncer.log(), 20)
    );

    // The point of transaction pooling: the servers' connections share few
    // PostgreSQL connections.
    let (clients, servers_used) = pool_connections(&bouncer, "postgres");
    println!(
        "[figure] PgBouncer pool: {clients} client connections over {servers_used} PostgreSQL \
         connections (default_pool_size {server_connections})"
    );
    assert!(
        servers_used <= server_connections && clients > servers_used,
        "expected more client than server connections, at most {server_connections} of those: \
         {clients} clients, {servers_used} servers"
    );
    for api_server in &servers {
        assert_no_error_lines(api_server);
    }
}

#[test]
fn session_pooling_with_prepared_statements_works_as_pgbouncer_comes_and_keeps_the_timeout() {
    let _serial = serial();
    let fixture = KIT.fixture();

    // PgBouncer's defaults: the server sends no startup options (PgBouncer
    // refuses `options`); it sets its statement timeout with a `SET` on each
    // new connection, which session pooling keeps for the server's session.
    let bouncer = bouncer(&Config::new(PoolMode::Session, SERVER_CONNECTIONS_PREPARED));
    let api_server = server(
        &bouncer.url("postgres", DBNAME),
        "prepared",
        &[("STATEMENT_TIMEOUT_MS", "300")],
    );
    let metrics = http::get(api_server.addr, "/metrics");
    assert!(
        metrics
            .body_str()
            .lines()
            .any(|line| line == format!("bakeoff_pool_size {SERVER_CONNECTIONS_PREPARED}")),
        "PgBouncer's session pool is sized for {SERVER_CONNECTIONS_PREPARED} connections: {metrics}"
    );
    assert_every_endpoint(api_server.addr);
    let tally = load(&[api_server.addr], 4, 50);
    println!(
        "[figure] session pooling, prepared statements, PgBouncer defaults: {} requests: {} exact \
         200s, {} 503s, {} other",
        tally.total(),
        tally.ok,
        tally.unavailable,
        tally.other_count
    );
    assert_eq!(
        (tally.ok, tally.other_count),
        (200, 0),
        "every request must be an exact 200; first others: {:#?}",
        tally.other
    );
    assert_no_error_lines(&api_server);

    // The timeout reaches PostgreSQL: a query stuck behind a lock is
    // cancelled after 300 ms and answered 503.
    let (response, waited) = types_behind_a_lock(api_server.addr);
    println!(
        "[figure] session pooling: a locked /types answered {} after {waited:?}",
        response.status
    );
    assert_error("/types", &response, 503, SERVICE_UNAVAILABLE);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "the 300 ms statement timeout should end the wait, took {waited:?}"
    );
    assert_body(
        "/types",
        &http::get(api_server.addr, "/types"),
        &fixture.snapshot.types_json(),
    );
}

#[test]
fn transaction_pooling_with_prepared_statements_answers_503_never_500_and_stays_up() {
    let _serial = serial();
    let server_connections = 2;
    let config = Config::new(PoolMode::Transaction, server_connections);
    // The statements are prepared on one PostgreSQL connection each, and
    // executed on whichever one PgBouncer picks.
    let bouncer = bouncer(&config);
    let mut api_server = server(&bouncer.url("postgres", DBNAME), "prepared", &[]);

    let tally = load(&[api_server.addr], 4, 100);
    println!(
        "[figure] transaction pooling, prepared statements ({SERVER_POOL} server connections over \
         {server_connections} PostgreSQL ones): {} requests: {} exact 200s, {} 503s, {} other",
        tally.total(),
        tally.ok,
        tally.unavailable,
        tally.other_count
    );
    assert_eq!(
        tally.other_count, 0,
        "only exact 200s and 503s are acceptable; first others: {:#?}",
        tally.other
    );
    assert!(
        tally.unavailable > 0,
        "expected some 503s: statements prepared on one PostgreSQL connection and executed \
         on another (if PgBouncer now keeps prepared statements per client, as 1.21+ can with \
         max_prepared_statements, this test and docs/DEPLOY.md need revisiting)"
    );
    let stderr = api_server.stderr();
    let sample: Vec<&str> = stderr.lines().skip(1).take(3).collect();
    println!("[figure] the server's log says: {sample:#?}");

    assert_eq!(
        api_server.exit_status(),
        None,
        "the server exited:\n{stderr}"
    );
    assert_body(
        "/healthz",
        &http::get(api_server.addr, "/healthz"),
        br#"{"status":"ok"}"#,
    );
    let version = format!(r#"{{"version":"{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_body(
        "/version",
        &http::get(api_server.addr, "/version"),
        version.as_bytes(),
    );
}

#[test]
fn a_role_statement_timeout_applies_through_transaction_pooling() {
    let _serial = serial();
    let fixture = KIT.fixture();
    let role = "bakeoff_pgbouncer_test";
    let mut admin =
        postgres::Client::connect(&fixture.cluster.conn_string(DBNAME), postgres::NoTls)
            .expect("connect");
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN;
             GRANT SELECT ON contact_types, contacts, contact_phones, contact_emails TO {role};
             ALTER ROLE {role} SET statement_timeout = '300ms';"
        ))
        .expect("create the test role");

    let mut config = Config::new(PoolMode::Transaction, 2);
    config.extra_users = vec![role.into()];
    let bouncer = bouncer(&config);
    let api_server = server(&bouncer.url(role, DBNAME), "unnamed", &[]);
    assert_body(
        "/types",
        &http::get(api_server.addr, "/types"),
        &fixture.snapshot.types_json(),
    );

    // A lock makes /types wait; the role's timeout, set by PostgreSQL on
    // PgBouncer's connections at login, cancels it.
    let (response, waited) = types_behind_a_lock(api_server.addr);
    println!(
        "[figure] /types behind a lock, role statement_timeout 300ms, unnamed statements through \
         transaction pooling: {} after {} ms",
        response.status,
        waited.as_millis()
    );
    assert_error("/types behind a lock", &response, 503, SERVICE_UNAVAILABLE);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "the 503 came after {waited:?}, not after about the role's 300 ms"
    );
    assert_body(
        "/types",
        &http::get(api_server.addr, "/types"),
        &fixture.snapshot.types_json(),
    );

    drop(api_server);
    drop(bouncer);
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON contact_types, contacts, contact_phones, contact_emails FROM {role};
             DROP ROLE {role};"
        ))
        .expect("drop the test role");
}

/// The server logged nothing past its first line (no database errors).
/// `/types` while another session holds `contact_types` locked: the answer
/// and how long it took. The lock is released before returning.
fn types_behind_a_lock(addr: SocketAddr) -> (Response, Duration) {
    let fixture = KIT.fixture();
    let mut locker =
        postgres::Client::connect(&fixture.cluster.conn_string(DBNAME), postgres::NoTls)
            .expect("connect");
    let mut tx = locker.transaction().expect("BEGIN");
    tx.batch_execute("LOCK TABLE contact_types IN ACCESS EXCLUSIVE MODE")
        .expect("LOCK TABLE");
    let started = Instant::now();
    let response = http::get(addr, "/types");
    let waited = started.elapsed();
    tx.rollback().expect("ROLLBACK");
    (response, waited)
}

fn assert_no_error_lines(api_server: &Server) {
    let stderr = api_server.stderr();
    let extra: Vec<&str> = stderr.lines().skip(1).collect();
    assert!(extra.is_empty(), "the server logged: {extra:#?}");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
