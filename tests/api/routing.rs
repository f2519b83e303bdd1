//! Routing: trailing slashes, 404 for unknown paths, 405 for other methods.

use testkit::http::{self, Conn};
use testkit::{assert_body, assert_error};

use crate::{KIT, METHOD_NOT_ALLOWED, NOT_FOUND, fib_body, version_body};

#[test]
fn a_trailing_slash_is_optional_on_every_path_without_redirect() {
    let f = KIT.fixture();
    let pairs: &[(&str, &str, u16, Option<Vec<u8>>)] = &[
        ("/version", "/version/", 200, Some(version_body())),
        ("/types", "/types/", 200, Some(f.snapshot.types_json())),
        (
            "/contacts/5",
            "/contacts/5/",
            200,
            f.snapshot.contact_json(5),
        ),
        (
            "/contacts/fetch?limit=3",
            "/contacts/fetch/?limit=3",
            200,
            Some(f.page_json(3, 0, None)),
        ),
        (
            "/contacts/for?limit=3",
            "/contacts/for/?limit=3",
            200,
            Some(f.page_json(3, 0, None)),
        ),
        (
            "/contacts/fetch",
            "/contacts/fetch/",
            200,
            Some(f.page_json(100, 0, None)),
        ),
        (
            "/contacts/for",
            "/contacts/for/",
            200,
            Some(f.page_json(100, 0, None)),
        ),
        ("/fibonacci/10", "/fibonacci/10/", 200, Some(fib_body(10))),
        ("/contacts/0", "/contacts/0/", 404, None),
        ("/contacts/abc", "/contacts/abc/", 422, None),
        ("/fibonacci/41", "/fibonacci/41/", 422, None),
        (
            "/contacts/fetch?limit=0",
            "/contacts/fetch/?limit=0",
            422,
            None,
        ),
    ];
    let mut conn = Conn::connect(KIT.addr());
    for (bare, slashed, status, expected) in pairs {
        let a = conn.get(bare);
        let b = conn.get(slashed);
        for (target, r) in [(bare, &a), (slashed, &b)] {
            assert_eq!(r.status, *status, "{target}: {r}");
            assert!(r.header("location").is_none(), "{target} redirects: {r}");
            if let Some(expected) = expected {
                assert_body(target, r, expected);
            }
        }
        assert_eq!(a.body, b.body, "{bare} and {slashed} differ");
    }
}

#[test]
fn unknown_paths_are_404_not_found() {
    let mut conn = Conn::connect(KIT.addr());
    for target in [
        "/",
        "/typesx",
        "/type",
        "/TYPES",
        "/Version",
        "/contacts",
        "/contacts/",
        "/contacts/1/x",
        "/contacts/fetch/x",
        "/contacts//1",
        "//types",
        "/types//",
        "/version//",
        "/fibonacci",
        "/fibonacci/",
        "/fibonacci/5/6",
        "/version/x",
        "/index.html",
        "/nope?limit=0",
        "/contacts/5/phones?limit=abc",
    ] {
        let r = conn.get(target);
        assert_error(target, &r, 404, NOT_FOUND);
        let h = conn.request("HEAD", target);
        assert_eq!(h.status, 404, "HEAD {target}: {h}");
    }
}

#[test]
fn other_methods_on_known_paths_are_405_with_allow_get_head() {
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for target in [
            "/version",
            "/types",
            "/types/",
            "/contacts/fetch",
            "/contacts/for?limit=3",
            "/contacts/5",
            "/fibonacci/10",
        ] {
            let request = format!("{method} {target}");
            let r = http::request(KIT.addr(), method, target);
            assert_error(&request, &r, 405, METHOD_NOT_ALLOWED);
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{request}: {r}");
        }
        let request = format!("{method} /nope");
        assert_error(
            &request,
            &http::request(KIT.addr(), method, "/nope"),
            404,
            NOT_FOUND,
        );
    }
}

#[test]
fn a_405_with_a_request_body_leaves_a_kept_alive_connection_usable() {
    let mut conn = Conn::connect(KIT.addr());
    conn.send(b"POST /types HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world");
    let r = conn.read_response(false).expect("405 response");
    assert_error("POST /types with a body", &r, 405, METHOD_NOT_ALLOWED);
    let closes = r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if !closes {
        assert_body(
            "GET /version after it",
            &conn.get("/version"),
            &version_body(),
        );
    }
}
