//! Robustness: malformed requests and clients that close mid-request.

use std::collections::BTreeSet;
use testkit::http::{self, Conn};
use testkit::{assert_alive, assert_body, assert_no_leak};

use crate::{KIT, assert_pages, version_body};

#[test]
fn malformed_requests_neither_crash_the_server_nor_leak_internals() {
    let fixture = KIT.fixture();
    // A server of its own, so that a crash fails this test, not all of them.
    let mut server = KIT.start_server(&fixture.database_url, &[]);
    let long_path = format!(
        "GET /contacts/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "9".repeat(20_000)
    );
    let long_starts = format!(
        "GET /contacts/fetch?starts={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "%F0%9F%98%80".repeat(2_000)
    );
    let many_params = format!(
        "GET /contacts/fetch?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "limit=1&".repeat(2_000)
    );
    let raw: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /types HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /types HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"GET /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"GET /contacts/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /contacts/fetch?starts=\xc3\xbc HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /contacts/fetch?starts=%00%00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /contacts/fetch?starts=%F0%9F HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /contacts/fetch?limit=1&offset=2147483647&starts=%27%3B%20DROP%20TABLE%20contacts%3B--%20 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /types HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\r\n\r\n".to_vec(),
        b"GET /fibonacci/40000000000000000000000000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        b"GET /version HTTP/1.0\r\n\r\n".to_vec(),
        b"GET /types HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        long_path.into_bytes(),
        long_starts.into_bytes(),
        many_params.into_bytes(),
    ];
    for bytes in &raw {
        let label = testkit::show(&bytes[..bytes.len().min(80)]);
        let mut conn = Conn::connect(server.addr);
        conn.send(bytes);
        // Some of these get no answer (the connection is just closed).
        if let Ok(response) = conn.read_response(false) {
            assert!(
                response.status < 500,
                "{label:?} → a server error: {response}"
            );
            assert_no_leak(&label, &response, &[]);
        }
    }
    // The injection attempt above changed nothing.
    assert_body(
        "/contacts/1",
        &http::get(server.addr, "/contacts/1"),
        &fixture.snapshot.contact_json(1).unwrap(),
    );
    assert_body(
        "/version",
        &http::get(server.addr, "/version"),
        &version_body(),
    );
    assert_alive(&mut server);
}

#[test]
fn a_client_closing_mid_request_or_mid_response_does_not_disturb_others() {
    let fixture = KIT.fixture();
    let addr = KIT.addr();
    for _ in 0..20 {
        let mut conn = Conn::connect(addr);
        conn.send(b"GET /contacts/for?limit=200 HTTP/1.1\r\nHost: x\r\n\r\n");
        drop(conn);
        let mut half = Conn::connect(addr);
        half.send(b"GET /contacts/fetch?lim");
        drop(half);
    }
    let mut conn = Conn::connect(addr);
    assert_pages(&mut conn, "limit=200", &fixture.page_json(200, 0, None));
    let statuses: BTreeSet<u16> = (0..10).map(|_| conn.get("/types").status).collect();
    assert_eq!(statuses, BTreeSet::from([200]));
}
