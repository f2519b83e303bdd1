//! Query string rules: bad percent-encoding, unknown and repeated
//! parameters.

use testkit::assert_body;
use testkit::http::Conn;

use crate::{KIT, assert_pages, assert_pages_422, fib_body, version_body};

#[test]
fn unknown_query_parameters_are_ignored() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages(
        &mut conn,
        "foo=bar&limit=3&x",
        &fixture.page_json(3, 0, None),
    );
    assert_pages(
        &mut conn,
        "LIMIT=0&limit=3&Offset=-1",
        &fixture.page_json(3, 0, None),
    );
    assert_pages(&mut conn, "&&limit=3&", &fixture.page_json(3, 0, None));
    let cases = [
        ("/types?limit=abc", fixture.snapshot.types_json()),
        ("/version?x=1", version_body()),
        (
            "/contacts/5?limit=0&starts=",
            fixture.snapshot.contact_json(5).unwrap(),
        ),
        ("/fibonacci/10?n=99", fib_body(10)),
    ];
    for (target, expected) in cases {
        assert_body(target, &conn.get(target), &expected);
    }
}

#[test]
fn a_repeated_parameter_takes_its_last_value() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages(&mut conn, "limit=1&limit=3", &fixture.page_json(3, 0, None));
    assert_pages(
        &mut conn,
        "limit=abc&limit=2",
        &fixture.page_json(2, 0, None),
    );
    assert_pages(
        &mut conn,
        "offset=5&limit=2&offset=0",
        &fixture.page_json(2, 0, None),
    );
    assert_pages(
        &mut conn,
        "starts=zz&starts=m",
        &fixture.page_json(100, 0, Some("m")),
    );
    assert_pages(
        &mut conn,
        "starts=%zz&starts=mo",
        &fixture.page_json(100, 0, Some("mo")),
    );
    assert_pages_422(&mut conn, "limit=2&limit=abc", &[["query", "limit"]]);
    assert_pages_422(&mut conn, "starts=m&starts=", &[["query", "starts"]]);
}
