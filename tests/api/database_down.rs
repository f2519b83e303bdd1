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
fn assert_503(target: &str, response: &Response) {
    assert_error(target, response, 503, SERVICE_UNAVAILABLE);
    let retry = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("{target}: 503 without Retry-After: {response}"));
    assert!(
        !retry.is_empty() && retry.bytes().all(|byte| byte.is_ascii_digit()),
        "{target}: Retry-After {retry:?} is not a number of seconds"
    );
    assert_no_leak(target, response, &[SECRET, "bakeoff"]);
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
    let server = KIT.start_server(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert!(
        !server.first_line.contains(SECRET),
        "the first stderr line shows the password: {}",
        server.first_line
    );
    let mut conn = Conn::connect(server.addr);
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
        let response = conn.get(target);
        assert_503(&format!("{target} (pool mode {mode})"), &response);
        let head = conn.request("HEAD", target);
        assert_eq!(head.status, 503, "HEAD {target}: {head}");
        assert!(
            head.header("retry-after").is_some(),
            "HEAD {target}: {head}"
        );
    }
    // Still serving after all those failures.
    assert_body("/version", &conn.get("/version"), &version_body());
    assert!(
        !server.stderr().contains(SECRET),
        "stderr shows the password"
    );
}

#[test]
fn server_answers_again_once_the_database_comes_back() {
    for mode in POOL_MODES {
        answers_again_once_the_database_is_back(mode);
    }
}

fn answers_again_once_the_database_is_back(mode: &str) {
    let fixture = KIT.fixture();
    let port = testkit::pg::free_port();
    let server = KIT.start_server(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert_503(
        &format!("/types (pool mode {mode})"),
        &http::get(server.addr, "/types"),
    );

    // The database "comes back": its port now leads to the shared cluster.
    let cluster: SocketAddr = ([127, 0, 0, 1], fixture.cluster.port).into();
    let _proxy = testkit::proxy::Proxy::start(port, cluster).expect("listen on the closed port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = http::get(server.addr, "/types");
    while last.status != 200 && Instant::now() < deadline {
        assert_503(&format!("/types while reconnecting ({mode})"), &last);
        std::thread::sleep(Duration::from_millis(50));
        last = http::get(server.addr, "/types");
    }
    assert_body(
        "/types after the database came back",
        &last,
        &fixture.snapshot.types_json(),
    );
    assert_body(
        "/contacts/5",
        &http::get(server.addr, "/contacts/5"),
        &fixture.snapshot.contact_json(5).unwrap(),
    );
    let mut conn = Conn::connect(server.addr);
    assert_pages(
        &mut conn,
        "limit=10&offset=20",
        &fixture.page_json(10, 20, None),
    );
}
