//! Shared fixture of the integration tests: one throwaway PostgreSQL cluster
//! per test binary, seeded by the real binary (`bakeoff seed`), plus a few
//! contacts of our own; one shared server; a raw HTTP client; the expected
//! answers, computed independently of the server.

pub mod http;
pub mod model;
pub mod pg;
pub mod pgbouncer;
pub mod proxy;
pub mod server;
pub mod spawn;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use http::Response;
pub use model::Snapshot;
pub use server::Server;

/// Contacts `bakeoff seed` generates for the tests.
pub const SEEDED_CONTACTS: i32 = 1000;
const DBNAME: &str = "bakeoff";

/// The seeded cluster and what the tests know about its data.
pub struct Fixture {
    pub cluster: pg::Cluster,
    /// `DATABASE_URL` for the server.
    pub database_url: String,
    pub snapshot: Snapshot,
    client: Mutex<postgres::Client>,
}

static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
static SHARED_SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The fixture, built once per test binary by whichever test asks first.
/// A failure is kept, so every test reports it instead of retrying.
pub fn fixture() -> &'static Fixture {
    match FIXTURE.get_or_init(build_fixture) {
        Ok(f) => f,
        Err(e) => panic!("test fixture unavailable: {e}"),
    }
}

fn build_fixture() -> Result<Fixture, String> {
    let cluster = pg::Cluster::start(DBNAME)?;
    let database_url = cluster.url(DBNAME);

    let out = Command::new(server::BIN)
        .args(["seed", "--contacts", &SEEDED_CONTACTS.to_string()])
        .env("DATABASE_URL", &database_url)
        .env_remove("CONTACTS")
        .output()
        .map_err(|e| format!("run {} seed: {e}", server::BIN))?;
    if !out.status.success() {
        return Err(format!(
            "`bakeoff seed --contacts {SEEDED_CONTACTS}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    let mut client = postgres::Client::connect(&cluster.conn_string(DBNAME), postgres::NoTls)
        .map_err(|e| format!("connect to the test database: {e}"))?;
    model::insert_extras(&mut client).map_err(|e| format!("insert extra contacts: {e}"))?;
    let snapshot = Snapshot::load(&mut client).map_err(|e| format!("read the tables: {e}"))?;
    Ok(Fixture {
        cluster,
        database_url,
        snapshot,
        client: Mutex::new(client),
    })
}

impl Fixture {
    /// PostgreSQL's `lower(s)`, in the test database's collation.
    pub fn pg_lower(&self, s: &str) -> String {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        client
            .query_one("SELECT lower($1::text)", &[&s])
            .unwrap_or_else(|e| panic!("SELECT lower({s:?}): {e}"))
            .get(0)
    }

    /// The expected page for decoded parameters.
    pub fn page(&self, limit: usize, offset: u64, starts: Option<&str>) -> Vec<&model::Contact> {
        let lowered = starts.map(|s| self.pg_lower(s));
        self.snapshot.page(limit, offset, lowered.as_deref())
    }

    /// The expected body of `/contacts/fetch` and `/contacts/for`.
    pub fn page_json(&self, limit: usize, offset: u64, starts: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&self.page(limit, offset, starts)).unwrap()
    }
}

/// The server shared by the tests that do not need one of their own.
pub fn server() -> &'static Server {
    let url = &fixture().database_url;
    match SHARED_SERVER.get_or_init(|| Server::try_start(url, &[])) {
        Ok(s) => s,
        Err(e) => panic!("shared server unavailable: {e}"),
    }
}

/// The shared server's address.
pub fn addr() -> SocketAddr {
    server().addr
}

/// Percent-encodes every byte except the unreserved ones (RFC 3986).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Shows bytes for a failure message.
pub fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 800 {
        let mut cut = 800;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… ({} bytes)", &s[..cut], bytes.len())
    } else {
        s.into_owned()
    }
}

/// Asserts a 200 JSON response whose body is exactly `expected`.
#[track_caller]
pub fn assert_body(request: &str, response: &Response, expected: &[u8]) {
    assert_eq!(response.status, 200, "{request}: {response}");
    if response.body != expected {
        let at = response
            .body
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(response.body.len().min(expected.len()));
        let from = at.saturating_sub(60);
        panic!(
            "{request}: body differs from the expected one at byte {at}\n  \
             expected …{}…\n  actual   …{}…\n  (lengths: expected {}, actual {})",
            show(&expected[from..(at + 60).min(expected.len())]),
            show(&response.body[from..(at + 60).min(response.body.len())]),
            expected.len(),
            response.body.len()
        );
    }
}

/// Asserts a 422 whose `detail` holds exactly one item per expected `loc`
/// (in any order), each with string `msg` and `type`.
#[track_caller]
pub fn assert_422(request: &str, response: &Response, expected_locs: &[[&str; 2]]) {
    assert_eq!(response.status, 422, "{request}: {response}");
    let body = response.json();
    let detail = body
        .get("detail")
        .and_then(|d| d.as_array())
        .unwrap_or_else(|| panic!("{request}: `detail` is not an array: {response}"));
    let mut locs: Vec<Vec<String>> = detail
        .iter()
        .map(|item| {
            assert!(
                item.get("msg").is_some_and(|m| m.is_string()),
                "{request}: item without a string `msg`: {item}"
            );
            assert!(
                item.get("type").is_some_and(|t| t.is_string()),
                "{request}: item without a string `type`: {item}"
            );
            item.get("loc")
                .and_then(|l| l.as_array())
                .unwrap_or_else(|| panic!("{request}: item without an array `loc`: {item}"))
                .iter()
                .map(|part| {
                    part.as_str()
                        .unwrap_or_else(|| panic!("{request}: non-string in loc: {item}"))
                        .to_string()
                })
                .collect()
        })
        .collect();
    let mut want: Vec<Vec<String>> = expected_locs
        .iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect();
    locs.sort();
    want.sort();
    assert_eq!(locs, want, "{request}: wrong 422 items: {response}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{request}: 422 body has keys besides `detail`: {response}"
    );
}

/// Asserts an error with an exact body, e.g. `{"detail":"Not Found"}`.
#[track_caller]
pub fn assert_error(request: &str, response: &Response, status: u16, body: &str) {
    assert_eq!(response.status, status, "{request}: {response}");
    assert_eq!(
        show(&response.body),
        body,
        "{request}: wrong body: {response}"
    );
    assert_json_type(request, response);
}

/// Asserts `Content-Type: application/json`.
#[track_caller]
pub fn assert_json_type(request: &str, response: &Response) {
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{request}: {response}"
    );
}

/// Words that must never appear in a response body: SQL, the database, a
/// connection string or password, the text of an internal error.
pub const LEAK_MARKERS: &[&str] = &[
    "postgres",
    "select ",
    "lower(",
    "$1",
    "contact_phones",
    "contact_emails",
    "sqlstate",
    "db error",
    "password",
    "127.0.0.1",
    "localhost",
    "refused",
    "timed out",
    "error connecting",
    "os error",
    "io error",
    "panicked",
    "backtrace",
    ".rs:",
];

/// Asserts `response`'s body contains none of [`LEAK_MARKERS`] nor `extra`.
#[track_caller]
pub fn assert_no_leak(request: &str, response: &Response, extra: &[&str]) {
    let body = response.body_str().to_lowercase();
    for marker in LEAK_MARKERS.iter().chain(extra) {
        assert!(
            !body.contains(&marker.to_lowercase()),
            "{request}: body leaks {marker:?}: {response}"
        );
    }
}

/// Starts `bakeoff serve` with `var=value` and checks it refuses to start:
/// exit code 2 and one line on stderr naming the setting (its variable or
/// its flag).
#[allow(dead_code)] // each test binary uses some of these helpers only
pub fn assert_bad_setting_refused(var: &str, value: &str) {
    let out = Command::new(server::BIN)
        .arg("serve")
        .env("DATABASE_URL", &fixture().database_url)
        .env("BIND", "127.0.0.1:0")
        .env(var, value)
        .output()
        .expect("run bakeoff");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{var}={value}: not one line: {stderr}"
    );
    let flag = format!("--{}", var.to_lowercase().replace('_', "-"));
    assert!(
        stderr.contains(var) || stderr.contains(&flag),
        "{var}={value}: the message does not name the setting: {stderr}"
    );
}

/// Asserts the server is still running and never panicked.
#[track_caller]
pub fn assert_alive(s: &mut Server) {
    assert!(
        s.exit_status().is_none(),
        "the server exited:\n{}",
        s.stderr()
    );
    let stderr = s.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the server panicked:\n{stderr}"
    );
}
