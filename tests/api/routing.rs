//! Routing: trailing slashes, 404 for unknown paths, 405 for other methods.

use testkit::http::{self, Conn};
use testkit::{assert_body, assert_error};

use crate::{KIT, METHOD_NOT_ALLOWED, NOT_FOUND, fib_body, version_body};

#[test]
fn a_trailing_slash_is_optional_on_every_path_without_redirect() {
    let fixture = KIT.fixture();
    let pairs: &[(&str, &str, u16, Option<Vec<u8>>)] = &[
        ("/version", "/version/", 200, Some(version_body())),
        (
            "/types",
            "/types/",
            200,
            Some(fixture.snapshot.types_json()),
        ),
        (
            "/contacts/5",
            "/contacts/5/",
            200,
            fixture.snapshot.contact_json(5),
        ),
        (
            "/contacts/fetch?limit=3",
            "/contacts/fetch/?limit=3",
            200,
            Some(fixture.page_json(3, 0, None)),
        ),
        (
            "/contacts/for?limit=3",
            "/contacts/for/?limit=3",
            200,
            Some(fixture.page_json(3, 0, None)),
        ),
        (
            "/contacts/fetch",
            "/contacts/fetch/",
            200,
            Some(fixture.page_json(100, 0, None)),
        ),
        (
            "/contacts/for",
            "/contacts/for/",
            200,
            Some(fixture.page_json(100, 0, None)),
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
        let bare_response = conn.get(bare);
        let slashed_response = conn.get(slashed);
        for (target, response) in [(bare, &bare_response), (slashed, &slashed_response)] {
            assert_eq!(response.status, *status, "{target}: {response}");
            assert!(
                response.header("location").is_none(),
                "{target} redirects: {response}"
            );
            if let Some(expected) = expected {
                assert_body(target, response, expected);
            }
        }
        assert_eq!(
            bare_response.body, slashed_response.body,
            "{bare} and {slashed} differ"
        );
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
        let response = conn.get(target);
        assert_error(target, &response, 404, NOT_FOUND);
        let head = conn.request("HEAD", target);
        assert_eq!(head.status, 404, "HEAD {target}: {head}");
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
            let response = http::request(KIT.addr(), method, target);
            assert_error(&request, &response, 405, METHOD_NOT_ALLOWED);
            assert_eq!(
                response.header("allow"),
                Some("GET, HEAD"),
                "{request}: {response}"
            );
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
    let response = conn.read_response(false).expect("405 response");
    assert_error(
        "POST /types with a body",
        &response,
        405,
        METHOD_NOT_ALLOWED,
    );
    let closes = response
        .header("connection")
        .is_some_and(|value| value.eq_ignore_ascii_case("close"));
    if !closes {
        assert_body(
            "GET /version after it",
            &conn.get("/version"),
            &version_body(),
        );
    }
}
