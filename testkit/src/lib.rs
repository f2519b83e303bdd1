//! The integration tests' kit: one throwaway PostgreSQL cluster per test
//! binary, seeded by the real binary (`bakeoff seed`), plus a few contacts of
//! our own; one shared server; a raw HTTP client; the expected answers,
//! computed independently of the server; the assertions the test binaries
//! share.
//!
//! The kit drives the real `bakeoff` binary and never links the `bakeoff`
//! library. Cargo tells only the root package's integration tests and
//! benches where that binary is (`CARGO_BIN_EXE_bakeoff`, at compile time),
//! so each of them hands the path to the kit once, in a static [`Kit`]:
//!
//! ```text
//! static KIT: testkit::Kit = testkit::Kit::new(env!("CARGO_BIN_EXE_bakeoff"));
//!
//! let response = testkit::http::get(KIT.addr(), "/types");
//! ```

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
/// The database the fixture creates in its cluster.
const DBNAME: &str = "bakeoff";

/// The binary under test, and what a test binary builds from it once: the
/// seeded [`Fixture`] and the shared [`Server`]. Meant for a `static`, so
/// that every test of a binary shares them.
pub struct Kit {
    /// The path of the `bakeoff` binary.
    bin: &'static str,
    /// Built by whichever test asks first; a failure is kept, so every test
    /// reports it instead of retrying.
    fixture: OnceLock<Result<Fixture, String>>,
    /// Started on the fixture's database by whichever test asks first.
    server: OnceLock<Result<Server, String>>,
}

impl Kit {
    /// A kit for the `bakeoff` binary at `bin`; nothing starts until a test
    /// asks for the fixture or the shared server.
    pub const fn new(bin: &'static str) -> Kit {
        Kit {
            bin,
            fixture: OnceLock::new(),
            server: OnceLock::new(),
        }
    }

    /// The path of the binary under test.
    pub fn bin(&self) -> &'static str {
        self.bin
    }

    /// The seeded cluster, built once per test binary by whichever test asks
    /// first. Panics (in every test that asks) if it could not be built.
    pub fn fixture(&self) -> &Fixture {
        match self.fixture.get_or_init(|| Fixture::build(self.bin)) {
            Ok(fixture) => fixture,
            Err(error) => panic!("test fixture unavailable: {error}"),
        }
    }

    /// The server shared by the tests that do not need one of their own,
    /// serving the fixture's database with the default settings.
    pub fn server(&self) -> &Server {
        let url = &self.fixture().database_url;
        match self
            .server
            .get_or_init(|| Server::start(self.bin, url, &[], |_| {}))
        {
            Ok(server) => server,
            Err(error) => panic!("shared server unavailable: {error}"),
        }
    }

    /// The shared server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server().addr
    }

    /// Starts a server of the test's own: `bakeoff serve` on `database_url`
    /// with the extra environment `env` (see [`Server::start`]). Panics if it
    /// does not start.
    pub fn start_server(&self, database_url: &str, env: &[(&str, &str)]) -> Server {
        Server::start(self.bin, database_url, env, |_| {}).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Kit::start_server`], letting `prepare` change the command first
    /// (e.g. a `pre_exec` that lowers a resource limit), and reporting a
    /// failure to start instead of panicking.
    pub fn try_start_server_with(
        &self,
        database_url: &str,
        env: &[(&str, &str)],
        prepare: impl FnOnce(&mut Command),
    ) -> Result<Server, String> {
        Server::start(self.bin, database_url, env, prepare)
    }

    /// Starts `bakeoff serve` with `var=value` and checks it refuses to
    /// start: exit code 2 and one line on stderr naming the setting (its
    /// variable or its flag).
    pub fn assert_bad_setting_refused(&self, var: &str, value: &str) {
        let output = Command::new(self.bin)
            .arg("serve")
            .env("DATABASE_URL", &self.fixture().database_url)
            .env("BIND", "127.0.0.1:0")
            .env(var, value)
            .output()
            .expect("run bakeoff");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {stderr}");
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
}

/// The seeded cluster and what the tests know about its data.
pub struct Fixture {
    /// The throwaway cluster holding the `bakeoff` database.
    pub cluster: pg::Cluster,
    /// `DATABASE_URL` for the server.
    pub database_url: String,
    /// The tables as read back after seeding (they never change after).
    pub snapshot: Snapshot,
    /// A connection of our own, for [`Fixture::pg_lower`].
    client: Mutex<postgres::Client>,
}

impl Fixture {
    /// Creates the cluster, seeds it with `bin seed`, adds
    /// [`model::extras`] and reads everything back.
    fn build(bin: &str) -> Result<Fixture, String> {
        let cluster = pg::Cluster::start(DBNAME)?;
        let database_url = cluster.url(DBNAME);

        let output = Command::new(bin)
            .args(["seed", "--contacts", &SEEDED_CONTACTS.to_string()])
            .env("DATABASE_URL", &database_url)
            .env_remove("CONTACTS")
            .output()
            .map_err(|error| format!("run {bin} seed: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "`bakeoff seed --contacts {SEEDED_CONTACTS}` failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }

        let mut client = postgres::Client::connect(&cluster.conn_string(DBNAME), postgres::NoTls)
            .map_err(|error| format!("connect to the test database: {error}"))?;
        model::insert_extras(&mut client)
            .map_err(|error| format!("insert extra contacts: {error}"))?;
        let snapshot =
            Snapshot::load(&mut client).map_err(|error| format!("read the tables: {error}"))?;
        Ok(Fixture {
            cluster,
            database_url,
            snapshot,
            client: Mutex::new(client),
        })
    }

    /// PostgreSQL's `lower(text)`, in the test database's collation.
    pub fn pg_lower(&self, text: &str) -> String {
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(|error| error.into_inner());
        client
            .query_one("SELECT lower($1::text)", &[&text])
            .unwrap_or_else(|error| panic!("SELECT lower({text:?}): {error}"))
            .get(0)
    }

    /// The expected page for decoded parameters.
    pub fn page(&self, limit: usize, offset: u64, starts: Option<&str>) -> Vec<&model::Contact> {
        let lowered = starts.map(|prefix| self.pg_lower(prefix));
        self.snapshot.page(limit, offset, lowered.as_deref())
    }

    /// The expected body of `/contacts/fetch` and `/contacts/for`.
    pub fn page_json(&self, limit: usize, offset: u64, starts: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&self.page(limit, offset, starts)).unwrap()
    }
}

/// Percent-encodes every byte except the unreserved ones (RFC 3986).
pub fn pct(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Shows bytes for a failure message.
pub fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > 800 {
        let mut cut = 800;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… ({} bytes)", &text[..cut], bytes.len())
    } else {
        text.into_owned()
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
            .position(|(actual_byte, expected_byte)| actual_byte != expected_byte)
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
        .and_then(|value| value.as_array())
        .unwrap_or_else(|| panic!("{request}: `detail` is not an array: {response}"));
    let mut locs: Vec<Vec<String>> = detail
        .iter()
        .map(|item| {
            assert!(
                item.get("msg").is_some_and(|message| message.is_string()),
                "{request}: item without a string `msg`: {item}"
            );
            assert!(
                item.get("type").is_some_and(|kind| kind.is_string()),
                "{request}: item without a string `type`: {item}"
            );
            item.get("loc")
                .and_then(|loc| loc.as_array())
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
        .map(|loc| loc.iter().map(|word| word.to_string()).collect())
        .collect();
    locs.sort();
    want.sort();
    assert_eq!(locs, want, "{request}: wrong 422 items: {response}");
    assert_eq!(
        body.as_object().map(|object| object.len()),
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

/// Asserts the server is still running and never panicked.
#[track_caller]
pub fn assert_alive(server: &mut Server) {
    assert!(
        server.exit_status().is_none(),
        "the server exited:\n{}",
        server.stderr()
    );
    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the server panicked:\n{stderr}"
    );
}
