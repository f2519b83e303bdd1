//! Security: SQL injection, the read-only role, secrets and internals that
//! no response or log line may show, validated limits, a database that
//! stops answering.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};
use testkit::{assert_no_leak, pct, pg};

use crate::helpers::{
    figure, lock_contacts, ms, pg_client, serial, try_get, url_with, wait_for_200,
};
use crate::hostile_requests::{hostile_cases, probe};
use crate::shutdown::wait_for_lock_wait;
use crate::{KIT, SECRET};

/// Contact ids of a page body.
fn page_ids(response: &Response) -> Vec<i64> {
    response
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {response}"))
        .iter()
        .map(|contact| contact["contact_id"].as_i64().unwrap())
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
    .map(|table| {
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
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
    let server = KIT.start_server(&url_with("injection"), &[]);
    let addr = server.addr;
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
    let mut conn = Conn::connect(addr);
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
            .map(|row| row.get(0))
            .collect();
        let expected = if payload.contains('\0') {
            Vec::new()
        } else {
            expected
        };
        for page in ["/contacts/fetch", "/contacts/for"] {
            let target = format!("{page}?limit=200&starts={}", pct(payload));
            let start = Instant::now();
            let response = conn.get(&target);
            slowest = slowest.max(start.elapsed());
            assert_eq!(response.status, 200, "{payload:?}: {response}");
            assert_eq!(page_ids(&response), expected, "{page} starts={payload:?}");
        }
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a payload ran for {slowest:?}: did pg_sleep run?"
    );
    // The literal matches are there: the payload finds its own contact.
    let response = conn.get(&format!(
        "/contacts/fetch?starts={}",
        pct("'; DROP TABLE contacts; --")
    ));
    assert_eq!(page_ids(&response), [990001]);
    let response = conn.get(&format!("/contacts/for?starts={}", pct("' OR '1'='1")));
    assert_eq!(page_ids(&response), [990002]);
    // SQL in an integer parameter is a 422.
    for target in [
        "/contacts/1%20OR%201=1",
        "/contacts/1;DROP%20TABLE%20contacts",
        "/contacts/1'--",
        "/fibonacci/1%20OR%201=1",
        "/contacts/fetch?limit=1;DELETE%20FROM%20contacts",
        "/contacts/for?offset=0%20OR%201=1",
    ] {
        let response = conn.get(target);
        assert_eq!(response.status, 422, "{target}: {response}");
        assert_no_leak(target, &response, &[]);
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
    let mut paths = vec![src.to_path_buf()];
    let mut sources = Vec::new();
    while let Some(path) = paths.pop() {
        match std::fs::read_dir(&path) {
            Ok(entries) => paths.extend(entries.flatten().map(|entry| entry.path())),
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
                .any(|builder| line.contains(builder));
            let sql = [
                "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WHERE ", "DROP ", " FROM ",
            ]
            .iter()
            .any(|keyword| line.contains(keyword));
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
    let fixture = KIT.fixture();
    let mut admin = pg_client();
    let roles = include_str!("../../sql/roles.sql");
    // Idempotent: twice.
    admin.batch_execute(roles).expect("sql/roles.sql");
    admin
        .batch_execute(roles)
        .expect("sql/roles.sql, a second time");
    let before = table_counts(&mut admin);

    let url = format!(
        "postgresql://bakeoff_reader:{SECRET}@127.0.0.1:{}/bakeoff",
        fixture.cluster.port
    );
    for mode in ["shared", "exclusive"] {
        let server = KIT.start_server(&url, &[("POOL_MODE", mode)]);
        let addr = server.addr;
        wait_for_200(addr, "/readyz", Duration::from_secs(10));
        let mut conn = Conn::connect(addr);
        testkit::assert_body(
            "/types",
            &conn.get("/types"),
            &fixture.snapshot.types_json(),
        );
        testkit::assert_body(
            "/contacts/1",
            &conn.get("/contacts/1"),
            &fixture.snapshot.contact_json(1).unwrap(),
        );
        for target in ["/contacts/fetch?starts=m&limit=5", "/contacts/for?limit=3"] {
            assert_eq!(
                conn.get(target).status,
                200,
                "{mode}: {target} as bakeoff_reader"
            );
        }
        assert!(!server.stderr().contains(SECRET));
    }

    let mut reader = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=bakeoff_reader dbname=bakeoff",
            fixture.cluster.port
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
        let code = error.code().map(|sqlstate| sqlstate.code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {error}");
        reader.batch_execute("ROLLBACK").unwrap();
    }
    // What the catalog says it holds: SELECT on the four tables, USAGE on
    // schema public, no attribute but LOGIN, no membership.
    let attributes: (bool, bool, bool, bool, bool, bool, bool) = {
        let row = admin
            .query_one(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, \
                 rolbypassrls, rolinherit FROM pg_roles WHERE rolname = 'bakeoff_reader'",
                &[],
            )
            .unwrap();
        (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
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
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        "contact_emails",
        "contact_phones",
        "contact_types",
        "contacts",
    ]
    .iter()
    .map(|table| (table.to_string(), "SELECT".to_string()))
    .collect();
    assert_eq!(grants, expected);
    let schema: (bool, bool) = {
        let row = admin
            .query_one(
                "SELECT has_schema_privilege('bakeoff_reader', 'public', 'USAGE'), \
                        has_schema_privilege('bakeoff_reader', 'public', 'CREATE')",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
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
    let fixture = KIT.fixture();
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
    let mut check = |what: &str, response: &Response| {
        assert_no_leak(what, response, &extra);
        checked += 1;
    };

    // The database unreachable (connection refused), then a statement
    // timeout, then a killed connection, then bad requests.
    let port = pg::free_port();
    let down = KIT.start_server(
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
    let up = KIT.start_server(
        &url_with(app),
        &[("STATEMENT_TIMEOUT_MS", "200"), ("POOL_SIZE", "1")],
    );
    wait_for_200(up.addr, "/types", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let tx = lock_contacts(&mut locker);
    let response = http::get(up.addr, "/contacts/1");
    assert_eq!(response.status, 503);
    check("statement timeout", &response);
    tx.rollback().unwrap();
    // A connection killed while a query runs on it.
    let tx = lock_contacts(&mut locker);
    let addr = up.addr;
    let held = thread::spawn(move || http::get(addr, "/contacts/2"));
    wait_for_lock_wait(&mut admin, app);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap();
    let response = held.join().unwrap();
    assert_eq!(response.status, 503, "{response}");
    check("killed connection", &response);
    tx.rollback().unwrap();
    for (name, bytes, _) in hostile_cases() {
        let outcome = probe(
            up.addr,
            &[&bytes],
            Duration::ZERO,
            false,
            Duration::from_secs(5),
        );
        for response in &outcome.responses {
            check(name, response);
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
            fixture
                .database_url
                .replace("postgres@", &format!("postgres:{SECRET}@")),
            vec!["serve", "--help"],
        ),
        (
            fixture
                .database_url
                .replace("postgres@", &format!("postgres:{SECRET}@")),
            vec!["serve", "--pool-size", "0"],
        ),
    ] {
        let out = std::process::Command::new(KIT.bin())
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
        KIT.assert_bad_setting_refused(var, value);
    }
}

/// A database that stops answering without closing its sockets (a frozen
/// proxy, a host gone behind a live load balancer): no statement timeout
/// reaches it and TCP keepalive sees a live peer, so only the server's own
/// deadline (pool timeout + statement timeout + 1 s) bounds the request.
#[test]
fn a_database_that_stops_answering_gets_503_at_the_deadline_not_a_hang() {
    let _serial = serial();
    let fixture = KIT.fixture();
    let port = pg::free_port();
    let cluster: SocketAddr = ([127, 0, 0, 1], fixture.cluster.port).into();
    let proxy = testkit::proxy::Proxy::start(port, cluster).expect("listen");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/bakeoff");
    for mode in ["shared", "exclusive"] {
        let server = KIT.start_server(
            &url,
            &[
                ("POOL_MODE", mode),
                ("POOL_TIMEOUT_MS", "200"),
                ("STATEMENT_TIMEOUT_MS", "300"),
            ],
        );
        assert_eq!(
            http::get(server.addr, "/types").status,
            200,
            "{mode}: before the freeze"
        );
        proxy.set_frozen(true);
        for target in ["/types", "/contacts/1", "/readyz"] {
            let started = Instant::now();
            let response = try_get(server.addr, target, Duration::from_secs(10))
                .unwrap_or_else(|error| panic!("{mode} {target}: no answer: {error}"));
            let waited = started.elapsed();
            figure(
                "frozen database",
                format!(
                    "{mode} {target}: {} after {:.0} ms",
                    response.status,
                    ms(waited)
                ),
            );
            assert_eq!(response.status, 503, "{mode} {target}: {response}");
            assert!(
                response.header("retry-after").is_some(),
                "{mode} {target}: {response}"
            );
            // Deadline 0.2 + 0.3 + 1 s = 1.5 s.
            assert!(
                waited < Duration::from_secs(3),
                "{mode} {target}: took {waited:?}"
            );
        }
        assert_eq!(http::get(server.addr, "/version").status, 200);
        proxy.set_frozen(false);
    }
}
