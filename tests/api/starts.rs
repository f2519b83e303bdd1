//! The `starts` parameter: a case-insensitive prefix of the last name,
//! wildcards matched literally, its length rule and its decoding.

use testkit::http::Conn;
use testkit::{assert_422, assert_body, assert_no_leak, pct};

use crate::{KIT, PAGES, assert_pages, assert_pages_422, ids, version_body};

#[test]
fn starts_is_a_case_insensitive_prefix_of_the_last_name() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for starts in [
        "m",
        "M",
        "mü",
        "MÜ",
        "Mü",
        "MÜLLER",
        "müller-l",
        "o'b",
        "O'BRIEN",
        "zh",
        "NGUYỄN",
        "nguyễn",
        "ü",
        "Ü",
        "über",
        "İ",
        "i",
        "dvořák",
        "ŁUKASIEWICZ",
    ] {
        let query = format!("starts={}", pct(starts));
        assert_pages(&mut conn, &query, &fixture.page_json(100, 0, Some(starts)));
    }
    // The expectations are not vacuous: Müller is found by every casing,
    // and the matches really begin with the prefix.
    for starts in ["mü", "MÜLLER", "Mü"] {
        let page = fixture.page(100, 0, Some(starts));
        assert!(!page.is_empty(), "nothing starts with {starts:?}");
        assert!(
            page.iter()
                .all(|contact| contact.last_name.starts_with("Müller"))
        );
    }
    assert!(!fixture.page(100, 0, Some("O'BRIEN")).is_empty());
    assert!(!fixture.page(100, 0, Some("NGUYỄN")).is_empty());
    let response = conn.get("/contacts/fetch?starts=M%C3%BC&limit=200");
    let names: Vec<String> = response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|contact| contact["last_name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|name| name.starts_with("Müller")),
        "{names:?}"
    );
}

#[test]
fn starts_matches_percent_underscore_backslash_and_quote_literally() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    // (starts, the ids that really begin with it: from testkit/src/model.rs)
    let cases: &[(&str, &[i32])] = &[
        ("%", &[900_002]),
        ("_", &[900_003]),
        ("\\", &[900_001]),
        ("mo_", &[900_004]),
        ("mo%", &[900_005]),
        ("mo\\", &[900_006]),
        ("\"", &[900_012]),
        (" ", &[900_013]),
        ("%p", &[900_002]),
        ("_u", &[900_003]),
        ("\\b", &[900_001]),
    ];
    for &(starts, want) in cases {
        let page = fixture.page(100, 0, Some(starts));
        assert_eq!(ids(&page), want, "fixture: what starts with {starts:?}");
        let expected = serde_json::to_vec(&page).unwrap();
        assert_pages(&mut conn, &format!("starts={}", pct(starts)), &expected);
    }
    // `_` is unreserved: also sent as is, not percent-encoded.
    assert_pages(&mut conn, "starts=_", &fixture.page_json(100, 0, Some("_")));
    assert_pages(
        &mut conn,
        "starts=mo_",
        &fixture.page_json(100, 0, Some("mo_")),
    );
}

#[test]
fn starts_counts_code_points_from_1_to_100_not_bytes() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for (starts, want) in [
        ("é".repeat(100), vec![900_008]),
        ("😀".repeat(100), vec![900_009]),
        ("a".repeat(100), vec![]),
        ("é".repeat(99), vec![900_008]),
    ] {
        let page = fixture.page(100, 0, Some(&starts));
        assert_eq!(ids(&page), want, "fixture: what starts with {starts:?}");
        let expected = serde_json::to_vec(&page).unwrap();
        assert_pages(&mut conn, &format!("starts={}", pct(&starts)), &expected);
    }
    for starts in [
        "é".repeat(101),
        "😀".repeat(101),
        "a".repeat(101),
        String::new(),
    ] {
        assert_pages_422(
            &mut conn,
            &format!("starts={}", pct(&starts)),
            &[["query", "starts"]],
        );
    }
}

#[test]
fn starts_with_bad_percent_encoding_or_invalid_utf8_is_422_query_starts() {
    let mut conn = Conn::connect(KIT.addr());
    for bad in [
        "%zz",
        "%",
        "%4",
        "M%",
        "%C3",
        "M%C3",
        "%C3%28",
        "%FF",
        "%C0%AF",
        "%C0%80",
        "%ED%A0%80",
        "%F4%90%80%80",
        "%E2%82",
        "%80",
    ] {
        assert_pages_422(&mut conn, &format!("starts={bad}"), &[["query", "starts"]]);
    }
}

#[test]
fn starts_holding_a_nul_character_gets_no_server_error() {
    // U+0000 is a code point, valid UTF-8, and no last name can hold it (a
    // PostgreSQL text cannot): the contract allows `[]`, and a 422 naming
    // `starts` is a defensible reading too; a 5xx or a leak is not.
    let mut conn = Conn::connect(KIT.addr());
    for page in PAGES {
        for query in ["starts=%00", "starts=M%00"] {
            let target = format!("{page}?{query}");
            let response = conn.get(&target);
            assert_no_leak(&target, &response, &[]);
            if response.status == 200 {
                assert_body(&target, &response, b"[]");
            } else {
                assert_422(&target, &response, &[["query", "starts"]]);
            }
        }
    }
    assert_body("/version", &conn.get("/version"), &version_body());
}

#[test]
fn bad_percent_encoding_breaks_only_the_parameter_it_is_in() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    assert_pages_422(&mut conn, "limit=%zz", &[["query", "limit"]]);
    assert_pages_422(&mut conn, "offset=%", &[["query", "offset"]]);
    assert_pages_422(&mut conn, "limit=%FF", &[["query", "limit"]]);
    // An unknown parameter is ignored, however it is encoded.
    assert_pages(&mut conn, "foo=%zz&limit=2", &fixture.page_json(2, 0, None));
    assert_pages(&mut conn, "limit=2&bar=%C3", &fixture.page_json(2, 0, None));
}
