//! The database down: the server starts anyway, answers 503 on the database
//! endpoints, and serves again once the database is back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::http::{self, Conn, Response};
use testkit::{assert_body, assert_error, assert_no_leak};

use crate::{KIT, SERVICE_UNAVAILABLE, assert_pages, fib_body, version_body};

const SECRET: &str = "hunter2-s3cret";

fn down_url(port: u16) -> String {
    format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/bakeoff")
}

#[track_caller]
fn assert_503(target: &str, r: &Response) {
    assert_error(target, r, 503, SERVICE_UNAVAILABLE);
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{target}: 503 without Retry-After: {r}"));
    assert!(
        !retry.is_empty() && retry.bytes().all(|b| b.is_ascii_digit()),
        "{target}: Retry-After {retry:?} is not a number of seconds"
    );
    assert_no_leak(target, r, &[SECRET, "bakeoff"]);
}

const POOL_MODES: [&str; 2] = ["shared", "exclusive"];

#[test]
fn server_without_a_database_starts_and_answers_503_on_database_endpoints() {
    for mode in POOL_MODES {
        without_a_database_503s(mode);
    }
}

fn without_a_database_503s(mode: &str) {
    // A port nothing listens on: the shared cluster stays up for the others.
    let port = testkit::pg::free_port();
    let s = KIT.start_server(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert!(
        !s.first_line.contains(SECRET),
        "the first stderr line shows the password: {}",
        s.first_line
    );
    let mut conn = Conn::connect(s.addr);
    assert_body("/version", &conn.get("/version"), &version_body());
    assert_body("/fibonacci/10", &conn.get("/fibonacci/10"), &fib_body(10));
    for target in [
        "/types",
        "/types/",
        "/contacts/1",
        "/contacts/fetch",
        "/contacts/for",
        "/contacts/fetch?starts=m&limit=5",
        "/contacts/for?offset=3",
    ] {
        let r = conn.get(target);
        assert_503(&format!("{target} (pool mode {mode})"), &r);
        let h = conn.request("HEAD", target);
        assert_eq!(h.status, 503, "HEAD {target}: {h}");
        assert!(h.header("retry-after").is_some(), "HEAD {target}: {h}");
    }
    // Still serving after all those failures.
    assert_body("/version", &conn.get("/version"), &version_body());
    assert!(!s.stderr().contains(SECRET), "stderr shows the password");
}

#[test]
fn server_answers_again_once_the_database_comes_back() {
    for mode in POOL_MODES {
        answers_again_once_the_database_is_back(mode);
    }
}

fn answers_again_once_the_database_is_back(mode: &str) {
    let f = KIT.fixture();
    let port = testkit::pg::free_port();
    let s = KIT.start_server(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert_503(
        &format!("/types (pool mode {mode})"),
        &http::get(s.addr, "/types"),
    );

    // The database "comes back": its port now leads to the shared cluster.
    let cluster: SocketAddr = ([127, 0, 0, 1], f.cluster.port).into();
    let _proxy = testkit::proxy::Proxy::start(port, cluster).expect("listen on the closed port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = http::get(s.addr, "/types");
    while last.status != 200 && Instant::now() < deadline {
        assert_503(&format!("/types while reconnecting ({mode})"), &last);
        std::thread::sleep(Duration::from_millis(50));
        last = http::get(s.addr, "/types");
    }
    assert_body(
        "/types after the database came back",
        &last,
        &f.snapshot.types_json(),
    );
    assert_body(
        "/contacts/5",
        &http::get(s.addr, "/contacts/5"),
        &f.snapshot.contact_json(5).unwrap(),
    );
    let mut conn = Conn::connect(s.addr);
    assert_pages(&mut conn, "limit=10&offset=20", &f.page_json(10, 20, None));
}
