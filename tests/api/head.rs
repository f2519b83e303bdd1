//! HEAD: the headers of GET without its body.

use testkit::http::Conn;
use testkit::{assert_body, assert_json_type};

use crate::{KIT, version_body};

#[test]
fn head_answers_like_get_with_the_same_headers_and_no_body() {
    let mut conn = Conn::connect(KIT.addr());
    for target in [
        "/version",
        "/types",
        "/types/",
        "/contacts/5",
        "/contacts/fetch?limit=3",
        "/contacts/for?limit=3",
        "/contacts/fetch?starts=m",
        "/fibonacci/10",
        "/contacts/0",
        "/nope",
        "/contacts/fetch?limit=0",
        "/contacts/abc",
        "/fibonacci/41",
    ] {
        let get = conn.get(target);
        let head = conn.request("HEAD", target);
        assert_eq!(head.status, get.status, "HEAD {target}: {head}\nGET: {get}");
        assert_eq!(
            head.comparable_headers(),
            get.comparable_headers(),
            "HEAD {target} headers differ from GET's\nHEAD: {head}\nGET: {get}"
        );
        assert_json_type(&format!("HEAD {target}"), &head);
        let chunked = get.header("transfer-encoding").is_some();
        if !(chunked && target.starts_with("/contacts/for")) {
            let len = get.body.len().to_string();
            assert_eq!(
                get.header("content-length"),
                Some(len.as_str()),
                "GET {target}: {get}"
            );
            assert_eq!(
                head.header("content-length"),
                Some(len.as_str()),
                "HEAD {target}: {head}"
            );
        }
        // Had HEAD sent body bytes, this response would not parse.
        let version = conn.get("/version");
        assert_body(
            &format!("GET /version after HEAD {target}"),
            &version,
            &version_body(),
        );
    }
}
