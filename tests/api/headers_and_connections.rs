//! Headers and connections: content type, keep-alive, pipelining,
//! concurrent clients, and the other runtime and pool modes serving the same
//! bytes.

use std::net::SocketAddr;
use testkit::http::{self, Conn};
use testkit::{assert_422, assert_body, assert_error, assert_json_type};

use crate::{CONTACT_NOT_FOUND, KIT, NOT_FOUND, assert_pages, fib_body, version_body};

#[test]
fn every_response_is_application_json() {
    let mut conn = Conn::connect(KIT.addr());
    let requests = [
        ("GET", "/version"),
        ("GET", "/types"),
        ("GET", "/contacts/fetch?limit=2"),
        ("GET", "/contacts/for?limit=2"),
        ("GET", "/contacts/1"),
        ("GET", "/contacts/0"),
        ("GET", "/contacts/-1"),
        ("GET", "/fibonacci/3"),
        ("GET", "/fibonacci/41"),
        ("GET", "/contacts/fetch?limit=abc"),
        ("GET", "/nope"),
        ("HEAD", "/types"),
        ("HEAD", "/nope"),
    ];
    for (method, target) in requests {
        let response = conn.request(method, target);
        assert_json_type(&format!("{method} {target}"), &response);
    }
    for method in ["POST", "DELETE"] {
        let response = http::request(KIT.addr(), method, "/types");
        assert_json_type(&format!("{method} /types"), &response);
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for round in 0..60u32 {
        let (target, expected) = match round % 6 {
            0 => ("/version".to_string(), version_body()),
            1 => ("/types".to_string(), fixture.snapshot.types_json()),
            2 => {
                let id = i64::from(round * 7 + 1);
                (
                    format!("/contacts/{id}"),
                    fixture.snapshot.contact_json(id).unwrap(),
                )
            }
            3 => (
                format!("/contacts/fetch?limit=5&offset={round}"),
                fixture.page_json(5, u64::from(round), None),
            ),
            4 => (
                format!("/contacts/for?limit=5&offset={round}"),
                fixture.page_json(5, u64::from(round), None),
            ),
            _ => (format!("/fibonacci/{}", round % 20), fib_body(round % 20)),
        };
        let response = conn.get(&target);
        assert_body(&target, &response, &expected);
        assert!(
            !response
                .header("connection")
                .is_some_and(|value| value.eq_ignore_ascii_case("close")),
            "{target}: server closes a keep-alive connection: {response}"
        );
    }
    // Errors do not end the connection either.
    assert_error("/nope", &conn.get("/nope"), 404, NOT_FOUND);
    assert_422(
        "/contacts/x",
        &conn.get("/contacts/x"),
        &[["path", "contact_id"]],
    );
    assert_body("/version", &conn.get("/version"), &version_body());
}

#[test]
fn three_pipelined_requests_in_one_write_get_three_responses_in_order() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    let mut batch = Vec::new();
    for target in ["/types", "/contacts/1", "/version"] {
        batch.extend(http::request_bytes("GET", target));
    }
    conn.send(&batch);
    let expected = [
        ("/types", fixture.snapshot.types_json()),
        ("/contacts/1", fixture.snapshot.contact_json(1).unwrap()),
        ("/version", version_body()),
    ];
    for (target, body) in expected {
        let response = conn.read_response(false).expect(target);
        assert_body(&format!("pipelined {target}"), &response, &body);
    }
}

#[test]
fn pipelined_mixed_requests_keep_their_order_heads_and_errors_included() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    let requests: Vec<(&str, &str, u16, Vec<u8>)> = vec![
        (
            "GET",
            "/contacts/for?limit=50",
            200,
            fixture.page_json(50, 0, None),
        ),
        ("GET", "/fibonacci/22", 200, fib_body(22)),
        ("HEAD", "/types", 200, Vec::new()),
        ("GET", "/nope", 404, NOT_FOUND.as_bytes().to_vec()),
        (
            "GET",
            "/contacts/fetch?starts=m&limit=20",
            200,
            fixture.page_json(20, 0, Some("m")),
        ),
        ("HEAD", "/contacts/0", 404, Vec::new()),
        (
            "GET",
            "/contacts/7",
            200,
            fixture.snapshot.contact_json(7).unwrap(),
        ),
        ("GET", "/version", 200, version_body()),
    ];
    let mut batch = Vec::new();
    for (method, target, _, _) in &requests {
        batch.extend(http::request_bytes(method, target));
    }
    conn.send(&batch);
    for (method, target, status, body) in requests {
        let response = conn.read_response(method == "HEAD").expect(target);
        assert_eq!(
            response.status, status,
            "pipelined {method} {target}: {response}"
        );
        assert_eq!(
            testkit::show(&response.body),
            testkit::show(&body),
            "pipelined {method} {target}"
        );
    }
}

#[test]
fn concurrent_clients_all_get_their_own_bytes() {
    let fixture = KIT.fixture();
    let addr: SocketAddr = KIT.addr();
    let threads: Vec<_> = (0..8u64)
        .map(|client| {
            std::thread::spawn(move || {
                let fixture = KIT.fixture();
                let mut conn = Conn::connect(addr);
                for index in 0..25u64 {
                    let offset = (client * 97 + index * 31) % 1000;
                    let (target, expected) = if index % 2 == 0 {
                        (
                            format!("/contacts/for?limit=20&offset={offset}"),
                            fixture.page_json(20, offset, None),
                        )
                    } else {
                        let id = offset as i64 + 1;
                        (
                            format!("/contacts/{id}"),
                            fixture.snapshot.contact_json(id).unwrap(),
                        )
                    };
                    assert_body(&target, &conn.get(&target), &expected);
                }
            })
        })
        .collect();
    for client in threads {
        client.join().expect("a client thread failed");
    }
    assert_body(
        "/types",
        &http::get(addr, "/types"),
        &fixture.snapshot.types_json(),
    );
}

/// A sample of the contract on a server of a non-default shape: bodies,
/// pipelining, and concurrent clients (whose queries may share connections).
fn assert_serves_a_sample_of_the_contract(addr: SocketAddr) {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(addr);
    assert_body(
        "/types",
        &conn.get("/types"),
        &fixture.snapshot.types_json(),
    );
    assert_body(
        "/contacts/900003",
        &conn.get("/contacts/900003"),
        &fixture.snapshot.contact_json(900_003).unwrap(),
    );
    assert_error(
        "/contacts/0",
        &conn.get("/contacts/0"),
        404,
        CONTACT_NOT_FOUND,
    );
    assert_pages(
        &mut conn,
        "starts=m&limit=30",
        &fixture.page_json(30, 0, Some("m")),
    );
    assert_pages(&mut conn, "offset=990", &fixture.page_json(100, 990, None));
    let mut batch = Vec::new();
    for target in [
        "/contacts/fetch?limit=4",
        "/version",
        "/contacts/for?offset=10&limit=4",
    ] {
        batch.extend(http::request_bytes("GET", target));
    }
    conn.send(&batch);
    for expected in [
        fixture.page_json(4, 0, None),
        version_body(),
        fixture.page_json(4, 10, None),
    ] {
        let response = conn.read_response(false).unwrap();
        assert_body("pipelined", &response, &expected);
    }
    let threads: Vec<_> = (0..4u64)
        .map(|client| {
            std::thread::spawn(move || {
                let fixture = KIT.fixture();
                let mut conn = Conn::connect(addr);
                for index in 0..15u64 {
                    let offset = (client * 211 + index * 67) % 1000;
                    let target = format!("/contacts/fetch?limit=10&offset={offset}");
                    assert_body(
                        &target,
                        &conn.get(&target),
                        &fixture.page_json(10, offset, None),
                    );
                }
            })
        })
        .collect();
    for client in threads {
        client.join().expect("a client thread failed");
    }
}

#[test]
fn per_core_runtime_serves_the_same_bytes() {
    let server = KIT.start_server(&KIT.fixture().database_url, &[("RUNTIME", "per-core")]);
    assert!(
        server.first_line.contains("runtime per-core"),
        "{}",
        server.first_line
    );
    assert_serves_a_sample_of_the_contract(server.addr);
}

#[test]
fn exclusive_pool_mode_serves_the_same_bytes() {
    let server = KIT.start_server(&KIT.fixture().database_url, &[("POOL_MODE", "exclusive")]);
    assert!(
        server.first_line.contains("exclusive"),
        "{}",
        server.first_line
    );
    assert_serves_a_sample_of_the_contract(server.addr);
}
