//! The contract (`shared/API.md`) checked over real HTTP, against the real
//! binary and a real, throwaway PostgreSQL.
//!
//! Every expected body is computed here, independently of the server: the
//! tables are read with our own SQL and the JSON written by serde_json (see
//! `testkit/src/model.rs`). Nothing is copied from the server's output.

// The first stderr line, and the shape of the seeded data.
mod startup;
// `/version` and `/types`.
mod version_and_types;
// `/contacts/{id}`: bodies, escaping, NULLs, 404 and 422.
mod contact_by_id;
// `/fibonacci/{n}`: values and 422.
mod fibonacci;
// `/contacts/fetch` and `/contacts/for`: `limit`, `offset`, 422 items.
mod pages;
// The `starts` prefix: case, wildcards, length, decoding.
mod starts;
// Query string rules: bad encoding, unknown and repeated parameters.
mod query_string;
// Routing: trailing slash, 404, 405.
mod routing;
// HEAD answers like GET, without a body.
mod head;
// Headers, keep-alive, pipelining, concurrency, runtime and pool modes.
mod headers_and_connections;
// The database down: 503, then serving again once it is back.
mod database_down;
// Malformed requests and clients closing mid-request.
mod robustness;
// The command line (docs/CLI.md): signals, bad settings, metrics, access log.
mod command_line;

use testkit::http::Conn;
use testkit::model::{self, Contact};
use testkit::{Kit, assert_422, assert_body, assert_json_type, assert_no_leak};

/// The kit, bound to the binary under test: the fixture and the shared
/// server every module uses.
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

const VERSION: &str = env!("CARGO_PKG_VERSION");
const NOT_FOUND: &str = r#"{"detail":"Not Found"}"#;
const CONTACT_NOT_FOUND: &str = r#"{"detail":"Contact not found"}"#;
const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;
const SERVICE_UNAVAILABLE: &str = r#"{"detail":"Service Unavailable"}"#;
const PAGES: [&str; 2] = ["/contacts/fetch", "/contacts/for"];

fn version_body() -> Vec<u8> {
    format!(r#"{{"version":"{VERSION}"}}"#).into_bytes()
}

fn fib_body(index: u32) -> Vec<u8> {
    format!(r#"{{"result":{}}}"#, model::fib(index)).into_bytes()
}

fn ids(contacts: &[&Contact]) -> Vec<i32> {
    contacts.iter().map(|contact| contact.contact_id).collect()
}

/// GETs `path?query` on both page endpoints and checks both bodies are
/// exactly `expected` (hence identical to each other).
fn assert_pages(conn: &mut Conn, query: &str, expected: &[u8]) {
    let mut bodies = Vec::new();
    for page in PAGES {
        let target = format!("{page}?{query}");
        let response = conn.get(&target);
        assert_body(&target, &response, expected);
        assert_json_type(&target, &response);
        bodies.push(response.body);
    }
    assert_eq!(bodies[0], bodies[1], "fetch and for differ for ?{query}");
}

/// GETs `path?query` on both page endpoints, expecting a 422 with `locs`.
fn assert_pages_422(conn: &mut Conn, query: &str, locs: &[[&str; 2]]) {
    for page in PAGES {
        let target = format!("{page}?{query}");
        let response = conn.get(&target);
        assert_422(&target, &response, locs);
        assert_json_type(&target, &response);
        assert_no_leak(&target, &response, &[]);
    }
}
