//! The page endpoints `/contacts/fetch` and `/contacts/for`: defaults,
//! `limit` and `offset`, and their 422s.

use testkit::http::Conn;
use testkit::{assert_body, assert_json_type};

use crate::{KIT, PAGES, assert_pages, assert_pages_422};

#[test]
fn pages_default_to_limit_100_offset_0() {
    let fixture = KIT.fixture();
    let expected = fixture.page_json(100, 0, None);
    assert_eq!(fixture.page(100, 0, None).len(), 100);
    let mut conn = Conn::connect(KIT.addr());
    for page in PAGES {
        for target in [page.to_string(), format!("{page}?")] {
            let response = conn.get(&target);
            assert_body(&target, &response, &expected);
            assert_json_type(&target, &response);
        }
    }
}

#[test]
fn fetch_and_for_answer_the_same_bytes_for_the_same_parameters() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    let cases: &[(&str, usize, u64, Option<&str>)] = &[
        ("limit=1", 1, 0, None),
        ("limit=7&offset=13", 7, 13, None),
        ("offset=13&limit=7", 7, 13, None),
        ("limit=200", 200, 0, None),
        ("limit=200&offset=900", 200, 900, None),
        ("offset=995&limit=50", 50, 995, None),
        ("offset=1000", 100, 1000, None),
        ("offset=100000", 100, 100_000, None),
        ("starts=m", 100, 0, Some("m")),
        ("starts=M&limit=200", 200, 0, Some("M")),
        ("starts=mo&offset=3&limit=4", 4, 3, Some("mo")),
        ("starts=m%C3%BC", 100, 0, Some("mü")),
        ("starts=%5C", 100, 0, Some("\\")),
        ("starts=zzz", 100, 0, Some("zzz")),
    ];
    for &(query, limit, offset, starts) in cases {
        assert_pages(&mut conn, query, &fixture.page_json(limit, offset, starts));
    }
    // The cases cover a full page, a partial last page (with the extra
    // contacts) and an empty one.
    assert_eq!(fixture.page(200, 0, None).len(), 200);
    assert!(
        fixture
            .page(50, 995, None)
            .iter()
            .any(|contact| contact.contact_id > 900_000)
    );
    assert!(fixture.page(100, 100_000, None).is_empty());
}

#[test]
fn limit_accepts_1_and_200_and_rejects_0_and_201() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages(&mut conn, "limit=1", &fixture.page_json(1, 0, None));
    assert_pages(&mut conn, "limit=200", &fixture.page_json(200, 0, None));
    for bad in ["0", "201", "-1", "2147483648", "99999999999999999999"] {
        assert_pages_422(&mut conn, &format!("limit={bad}"), &[["query", "limit"]]);
    }
}

#[test]
fn offset_accepts_0_to_2147483647_and_rejects_the_rest() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages(
        &mut conn,
        "offset=0&limit=3",
        &fixture.page_json(3, 0, None),
    );
    assert_pages(&mut conn, "offset=2147483647", b"[]");
    assert_pages(&mut conn, "offset=2147483647&limit=200&starts=m", b"[]");
    for bad in ["-1", "2147483648", "-2147483648", "9223372036854775808"] {
        assert_pages_422(&mut conn, &format!("offset={bad}"), &[["query", "offset"]]);
    }
}

#[test]
fn limit_and_offset_must_be_plain_decimal_integers() {
    let mut conn = Conn::connect(KIT.addr());
    let bad = [
        "+1",
        "%2B1",
        "%201",
        "1%20",
        "%091",
        "1%0A",
        "1.0",
        "1e3",
        "1_0",
        "",
        "abc",
        "0x10",
        "--1",
        "-",
        "1-",
        "%EF%BC%91",
        "%D9%A1",
    ];
    for param in ["limit", "offset"] {
        for value in bad {
            assert_pages_422(&mut conn, &format!("{param}={value}"), &[["query", param]]);
        }
    }
}

#[test]
fn limit_and_offset_accept_leading_zeros_minus_zero_and_percent_encoded_digits() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages(&mut conn, "limit=007", &fixture.page_json(7, 0, None));
    assert_pages(
        &mut conn,
        "offset=-0&limit=2",
        &fixture.page_json(2, 0, None),
    );
    assert_pages(
        &mut conn,
        "offset=0000000000000000000000000000010&limit=2",
        &fixture.page_json(2, 10, None),
    );
    assert_pages(&mut conn, "limit=%35", &fixture.page_json(5, 0, None));
}

#[test]
fn several_broken_parameters_give_one_item_each() {
    let mut conn = Conn::connect(KIT.addr());
    let all3 = [["query", "limit"], ["query", "offset"], ["query", "starts"]];
    assert_pages_422(&mut conn, "limit=0&offset=-1&starts=", &all3);
    assert_pages_422(&mut conn, "starts=%zz&limit=abc&offset=1.5", &all3);
    assert_pages_422(
        &mut conn,
        "limit=abc&offset=x",
        &[["query", "limit"], ["query", "offset"]],
    );
    assert_pages_422(
        &mut conn,
        "limit=201&starts=%C3",
        &[["query", "limit"], ["query", "starts"]],
    );
    // A broken one beside a good one: only the broken one is reported.
    assert_pages_422(
        &mut conn,
        "limit=5&offset=-1&starts=m",
        &[["query", "offset"]],
    );
}
