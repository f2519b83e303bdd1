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
        let g = conn.get(target);
        let h = conn.request("HEAD", target);
        assert_eq!(h.status, g.status, "HEAD {target}: {h}\nGET: {g}");
        assert_eq!(
            h.comparable_headers(),
            g.comparable_headers(),
            "HEAD {target} headers differ from GET's\nHEAD: {h}\nGET: {g}"
        );
        assert_json_type(&format!("HEAD {target}"), &h);
        let chunked = g.header("transfer-encoding").is_some();
        if !(chunked && target.starts_with("/contacts/for")) {
            let len = g.body.len().to_string();
            assert_eq!(
                g.header("content-length"),
                Some(len.as_str()),
                "GET {target}: {g}"
            );
            assert_eq!(
                h.header("content-length"),
                Some(len.as_str()),
                "HEAD {target}: {h}"
            );
        }
        // Had HEAD sent body bytes, this response would not parse.
        let v = conn.get("/version");
        assert_body(
            &format!("GET /version after HEAD {target}"),
            &v,
            &version_body(),
        );
    }
}
