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
        let r = conn.request(method, target);
        assert_json_type(&format!("{method} {target}"), &r);
    }
    for method in ["POST", "DELETE"] {
        let r = http::request(KIT.addr(), method, "/types");
        assert_json_type(&format!("{method} /types"), &r);
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let f = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for i in 0..60u32 {
        let (target, expected) = match i % 6 {
            0 => ("/version".to_string(), version_body()),
            1 => ("/types".to_string(), f.snapshot.types_json()),
            2 => {
                let id = i64::from(i * 7 + 1);
                (
                    format!("/contacts/{id}"),
                    f.snapshot.contact_json(id).unwrap(),
                )
            }
            3 => (
                format!("/contacts/fetch?limit=5&offset={i}"),
                f.page_json(5, u64::from(i), None),
            ),
            4 => (
                format!("/contacts/for?limit=5&offset={i}"),
                f.page_json(5, u64::from(i), None),
            ),
            _ => (format!("/fibonacci/{}", i % 20), fib_body(i % 20)),
        };
        let r = conn.get(&target);
        assert_body(&target, &r, &expected);
        assert!(
            !r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "{target}: server closes a keep-alive connection: {r}"
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
    let f = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    let mut batch = Vec::new();
    for target in ["/types", "/contacts/1", "/version"] {
        batch.extend(http::request_bytes("GET", target));
    }
    conn.send(&batch);
    let expected = [
        ("/types", f.snapshot.types_json()),
        ("/contacts/1", f.snapshot.contact_json(1).unwrap()),
        ("/version", version_body()),
    ];
    for (target, body) in expected {
        let r = conn.read_response(false).expect(target);
        assert_body(&format!("pipelined {target}"), &r, &body);
    }
}

#[test]
fn pipelined_mixed_requests_keep_their_order_heads_and_errors_included() {
    let f = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    let requests: Vec<(&str, &str, u16, Vec<u8>)> = vec![
        (
            "GET",
            "/contacts/for?limit=50",
            200,
            f.page_json(50, 0, None),
        ),
        ("GET", "/fibonacci/22", 200, fib_body(22)),
        ("HEAD", "/types", 200, Vec::new()),
        ("GET", "/nope", 404, NOT_FOUND.as_bytes().to_vec()),
        (
            "GET",
            "/contacts/fetch?starts=m&limit=20",
            200,
            f.page_json(20, 0, Some("m")),
        ),
        ("HEAD", "/contacts/0", 404, Vec::new()),
        (
            "GET",
            "/contacts/7",
            200,
            f.snapshot.contact_json(7).unwrap(),
        ),
        ("GET", "/version", 200, version_body()),
    ];
    let mut batch = Vec::new();
    for (method, target, _, _) in &requests {
        batch.extend(http::request_bytes(method, target));
    }
    conn.send(&batch);
    for (method, target, status, body) in requests {
        let r = conn.read_response(method == "HEAD").expect(target);
        assert_eq!(r.status, status, "pipelined {method} {target}: {r}");
        assert_eq!(
            testkit::show(&r.body),
            testkit::show(&body),
            "pipelined {method} {target}"
        );
    }
}

#[test]
fn concurrent_clients_all_get_their_own_bytes() {
    let f = KIT.fixture();
    let a: SocketAddr = KIT.addr();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let f = KIT.fixture();
                let mut conn = Conn::connect(a);
                for i in 0..25u64 {
                    let offset = (t * 97 + i * 31) % 1000;
                    let (target, expected) = if i % 2 == 0 {
                        (
                            format!("/contacts/for?limit=20&offset={offset}"),
                            f.page_json(20, offset, None),
                        )
                    } else {
                        let id = offset as i64 + 1;
                        (
                            format!("/contacts/{id}"),
                            f.snapshot.contact_json(id).unwrap(),
                        )
                    };
                    assert_body(&target, &conn.get(&target), &expected);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
    assert_body("/types", &http::get(a, "/types"), &f.snapshot.types_json());
}

/// A sample of the contract on a server of a non-default shape: bodies,
/// pipelining, and concurrent clients (whose queries may share connections).
fn assert_serves_a_sample_of_the_contract(a: SocketAddr) {
    let f = KIT.fixture();
    let mut conn = Conn::connect(a);
    assert_body("/types", &conn.get("/types"), &f.snapshot.types_json());
    assert_body(
        "/contacts/900003",
        &conn.get("/contacts/900003"),
        &f.snapshot.contact_json(900_003).unwrap(),
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
        &f.page_json(30, 0, Some("m")),
    );
    assert_pages(&mut conn, "offset=990", &f.page_json(100, 990, None));
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
        f.page_json(4, 0, None),
        version_body(),
        f.page_json(4, 10, None),
    ] {
        let r = conn.read_response(false).unwrap();
        assert_body("pipelined", &r, &expected);
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let f = KIT.fixture();
                let mut conn = Conn::connect(a);
                for i in 0..15u64 {
                    let offset = (t * 211 + i * 67) % 1000;
                    let target = format!("/contacts/fetch?limit=10&offset={offset}");
                    assert_body(&target, &conn.get(&target), &f.page_json(10, offset, None));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
}

#[test]
fn per_core_runtime_serves_the_same_bytes() {
    let s = KIT.start_server(&KIT.fixture().database_url, &[("RUNTIME", "per-core")]);
    assert!(
        s.first_line.contains("runtime per-core"),
        "{}",
        s.first_line
    );
    assert_serves_a_sample_of_the_contract(s.addr);
}

#[test]
fn exclusive_pool_mode_serves_the_same_bytes() {
    let s = KIT.start_server(&KIT.fixture().database_url, &[("POOL_MODE", "exclusive")]);
    assert!(s.first_line.contains("exclusive"), "{}", s.first_line);
    assert_serves_a_sample_of_the_contract(s.addr);
}
