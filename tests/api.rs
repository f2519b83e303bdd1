//! The contract (`shared/API.md`) checked over real HTTP, against the real
//! binary and a real, throwaway PostgreSQL.
//!
//! Every expected body is computed here, independently of the server: the
//! tables are read with our own SQL and the JSON written by serde_json (see
//! `support/model.rs`). Nothing is copied from the server's output.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::http::{self, Conn, Response};
use support::model::{self, Contact};
use support::{
    Server, addr, assert_422, assert_alive, assert_body, assert_error, assert_json_type,
    assert_no_leak, fixture, pct, server,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const NOT_FOUND: &str = r#"{"detail":"Not Found"}"#;
const CONTACT_NOT_FOUND: &str = r#"{"detail":"Contact not found"}"#;
const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;
const SERVICE_UNAVAILABLE: &str = r#"{"detail":"Service Unavailable"}"#;
const PAGES: [&str; 2] = ["/contacts/fetch", "/contacts/for"];

fn version_body() -> Vec<u8> {
    format!(r#"{{"version":"{VERSION}"}}"#).into_bytes()
}

fn fib_body(n: u32) -> Vec<u8> {
    format!(r#"{{"result":{}}}"#, model::fib(n)).into_bytes()
}

fn ids(contacts: &[&Contact]) -> Vec<i32> {
    contacts.iter().map(|c| c.contact_id).collect()
}

/// GETs `path?query` on both page endpoints and checks both bodies are
/// exactly `expected` (hence identical to each other).
fn assert_pages(conn: &mut Conn, query: &str, expected: &[u8]) {
    let mut bodies = Vec::new();
    for page in PAGES {
        let target = format!("{page}?{query}");
        let r = conn.get(&target);
        assert_body(&target, &r, expected);
        assert_json_type(&target, &r);
        bodies.push(r.body);
    }
    assert_eq!(bodies[0], bodies[1], "fetch and for differ for ?{query}");
}

/// GETs `path?query` on both page endpoints, expecting a 422 with `locs`.
fn assert_pages_422(conn: &mut Conn, query: &str, locs: &[[&str; 2]]) {
    for page in PAGES {
        let target = format!("{page}?{query}");
        let r = conn.get(&target);
        assert_422(&target, &r, locs);
        assert_json_type(&target, &r);
        assert_no_leak(&target, &r, &[]);
    }
}

// ---------------------------------------------------------------- startup

#[test]
fn first_stderr_line_names_the_version_and_the_real_address() {
    let s = server();
    let prefix = format!("bakeoff {VERSION} listening on http://127.0.0.1:");
    assert!(
        s.first_line.starts_with(&prefix),
        "first stderr line {:?} does not start with {prefix:?}",
        s.first_line
    );
    assert_ne!(s.addr.port(), 0, "the printed port must be the real one");
    assert_eq!(http::get(s.addr, "/version").status, 200);
}

#[test]
fn seeded_database_has_the_shape_the_contract_describes() {
    let snap = &fixture().snapshot;
    let seeded: Vec<&Contact> = snap
        .contacts
        .iter()
        .filter(|c| c.contact_id < 900_000)
        .collect();
    assert_eq!(
        seeded.iter().map(|c| c.contact_id).collect::<Vec<_>>(),
        (1..=support::SEEDED_CONTACTS).collect::<Vec<_>>(),
        "`bakeoff seed --contacts 1000` must create contacts 1..=1000"
    );
    let n = seeded.len() as f64;
    let share = |f: &dyn Fn(&&Contact) -> bool| seeded.iter().filter(|c| f(c)).count() as f64 / n;
    let phone = share(&|c| !c.phone_number.is_empty());
    let second_phone = share(&|c| c.phone_number.len() >= 2);
    let email = share(&|c| !c.email.is_empty());
    assert!(
        (0.30..=0.50).contains(&phone),
        "share with a phone: {phone}"
    );
    assert!(second_phone > 0.0, "nobody has a second phone");
    assert!(
        (0.60..=0.80).contains(&email),
        "share with an email: {email}"
    );
    assert!(snap.null_phone_rows > 0 && snap.null_email_rows > 0);
    for name in ["Müller", "O'Brien", "Nguyễn"] {
        assert!(seeded.iter().any(|c| c.last_name == name), "no {name}");
    }
    for name in ["José", "Zoë"] {
        assert!(seeded.iter().any(|c| c.first_name == name), "no {name}");
    }
}

// ---------------------------------------------------------------- /version, /types

#[test]
fn version_is_the_cargo_package_version() {
    let r = http::get(addr(), "/version");
    assert_body("GET /version", &r, &version_body());
    assert_json_type("GET /version", &r);
}

#[test]
fn types_lists_every_type_in_type_id_order() {
    let expected = fixture().snapshot.types_json();
    // The contract names the rows; the database must hold exactly them.
    assert_eq!(
        support::show(&expected),
        r#"[{"type_id":1,"type_name":"Relatives"},{"type_id":2,"type_name":"Friends"},{"type_id":3,"type_name":"Colleagues"}]"#
    );
    let r = http::get(addr(), "/types");
    assert_body("GET /types", &r, &expected);
    assert_json_type("GET /types", &r);
}

// ---------------------------------------------------------------- /contacts/{id}

#[test]
fn every_contact_by_id_matches_the_database_byte_for_byte() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    for c in &f.snapshot.contacts {
        let target = format!("/contacts/{}", c.contact_id);
        let r = conn.get(&target);
        assert_body(&target, &r, &serde_json::to_vec(c).unwrap());
        assert_json_type(&target, &r);
    }
}

#[test]
fn contact_strings_are_escaped_exactly_as_serde_json_escapes_them() {
    let f = fixture();
    // What the expectation itself must contain: short escapes for " \ \b \f
    // \n \r \t, \u00XX in lowercase hex for other controls, the rest raw
    // (DEL, U+2028, U+2029, emoji, '/', '<', '&').
    let json = |id| String::from_utf8(f.snapshot.contact_json(id).unwrap()).unwrap();
    assert!(json(900_001).contains(r#""Quote\"Back\\slash/Solidus""#));
    assert!(json(900_001).contains(r#""\\Backslash""#));
    assert!(json(900_002).contains(r#""Tab\tNew\nline\rCR""#));
    assert!(json(900_003).contains("\"Ctl\\u0001\\b\\u000b\\f\\u001b\\u001f\u{7f}End\""));
    assert!(json(900_004).contains("\"Line\u{2028}Para\u{2029}Emoji😀\""));
    assert!(json(900_010).contains(r#""</script>&<>'=\"""#));
    let mut conn = Conn::connect(addr());
    for x in model::extras() {
        let target = format!("/contacts/{}", x.contact_id);
        let r = conn.get(&target);
        assert_body(
            &target,
            &r,
            &f.snapshot.contact_json(x.contact_id.into()).unwrap(),
        );
    }
}

#[test]
fn null_phones_and_emails_are_left_out_and_none_gives_an_empty_array() {
    let mut conn = Conn::connect(addr());
    // Literal expectations, from how support/model.rs inserted these rows.
    let cases = [
        (
            900_002,
            serde_json::json!(["555-0002", "555-0003"]),
            serde_json::json!([]),
        ),
        (
            900_003,
            serde_json::json!([]),
            serde_json::json!(["under@example.com"]),
        ),
        (900_004, serde_json::json!([]), serde_json::json!([])),
    ];
    for (id, phones, emails) in cases {
        let target = format!("/contacts/{id}");
        let r = conn.get(&target);
        assert_eq!(r.status, 200, "{target}: {r}");
        let v = r.json();
        assert_eq!(v["phone_number"], phones, "{target}: {r}");
        assert_eq!(v["email"], emails, "{target}: {r}");
        assert_body(&target, &r, &fixture().snapshot.contact_json(id).unwrap());
    }
}

#[test]
fn contact_id_zero_or_absent_is_404_contact_not_found() {
    let snap = &fixture().snapshot;
    for id in ["0", "-0", "000", "1001", "899999", "2147483647"] {
        let n: i64 = id.parse().unwrap();
        assert!(snap.contact(n).is_none(), "fixture has contact {id}");
        for method in ["GET", "HEAD"] {
            let target = format!("/contacts/{id}");
            let r = http::request(addr(), method, &target);
            if method == "GET" {
                assert_error(&target, &r, 404, CONTACT_NOT_FOUND);
            } else {
                assert_eq!(r.status, 404, "HEAD {target}: {r}");
            }
        }
    }
}

#[test]
fn contact_id_with_leading_zeros_is_the_same_integer() {
    let expected = fixture().snapshot.contact_json(5).unwrap();
    for target in ["/contacts/05", "/contacts/0000000000000000000005"] {
        assert_body(target, &http::get(addr(), target), &expected);
    }
}

#[test]
fn contact_id_not_an_integer_from_0_to_2147483647_is_422_path_contact_id() {
    let mut conn = Conn::connect(addr());
    for id in [
        "-1",
        "-2147483648",
        "2147483648",
        "99999999999999999999",
        "abc",
        "+1",
        "%2B1",
        "1.0",
        "1e3",
        "1_0",
        "%201",
        "1%20",
        "0x10",
        "--1",
        "-",
        "%EF%BC%91",
        "%zz",
    ] {
        let target = format!("/contacts/{id}");
        let r = conn.get(&target);
        assert_422(&target, &r, &[["path", "contact_id"]]);
        assert_json_type(&target, &r);
        assert_no_leak(&target, &r, &[]);
    }
}

// ---------------------------------------------------------------- /fibonacci/{n}

#[test]
fn fibonacci_is_fib_of_n_with_fib_0_and_fib_1_equal_to_1_for_n_from_0_to_40() {
    assert_eq!(model::fib(0), 1);
    assert_eq!(model::fib(1), 1);
    assert_eq!(model::fib(2), 2);
    assert_eq!(model::fib(40), 165_580_141);
    // A server of its own: the naive fib(40) occupies a worker thread for
    // a while, and the shared server's other clients should not wait on it.
    let s = Server::start(&fixture().database_url, &[]);
    let mut conn = Conn::connect(s.addr);
    for n in 0..=40 {
        let target = format!("/fibonacci/{n}");
        let r = conn.get(&target);
        assert_body(&target, &r, &fib_body(n));
        assert_json_type(&target, &r);
    }
}

#[test]
fn fibonacci_accepts_minus_zero_and_leading_zeros() {
    let mut conn = Conn::connect(addr());
    for (target, n) in [
        ("/fibonacci/-0", 0),
        ("/fibonacci/007", 7),
        ("/fibonacci/00", 0),
    ] {
        assert_body(target, &conn.get(target), &fib_body(n));
    }
}

#[test]
fn fibonacci_n_not_an_integer_from_0_to_40_is_422_path_n() {
    let mut conn = Conn::connect(addr());
    for n in [
        "41",
        "-1",
        "100",
        "2147483648",
        "18446744073709551617",
        "abc",
        "+5",
        "5.0",
        "1e1",
        "%205",
        "5_0",
    ] {
        let target = format!("/fibonacci/{n}");
        let r = conn.get(&target);
        assert_422(&target, &r, &[["path", "n"]]);
        assert_json_type(&target, &r);
    }
}

// ---------------------------------------------------------------- pages

#[test]
fn pages_default_to_limit_100_offset_0() {
    let f = fixture();
    let expected = f.page_json(100, 0, None);
    assert_eq!(f.page(100, 0, None).len(), 100);
    let mut conn = Conn::connect(addr());
    for page in PAGES {
        for target in [page.to_string(), format!("{page}?")] {
            let r = conn.get(&target);
            assert_body(&target, &r, &expected);
            assert_json_type(&target, &r);
        }
    }
}

#[test]
fn fetch_and_for_answer_the_same_bytes_for_the_same_parameters() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
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
        assert_pages(&mut conn, query, &f.page_json(limit, offset, starts));
    }
    // The cases cover a full page, a partial last page (with the extra
    // contacts) and an empty one.
    assert_eq!(f.page(200, 0, None).len(), 200);
    assert!(f.page(50, 995, None).iter().any(|c| c.contact_id > 900_000));
    assert!(f.page(100, 100_000, None).is_empty());
}

#[test]
fn limit_accepts_1_and_200_and_rejects_0_and_201() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages(&mut conn, "limit=1", &f.page_json(1, 0, None));
    assert_pages(&mut conn, "limit=200", &f.page_json(200, 0, None));
    for bad in ["0", "201", "-1", "2147483648", "99999999999999999999"] {
        assert_pages_422(&mut conn, &format!("limit={bad}"), &[["query", "limit"]]);
    }
}

#[test]
fn offset_accepts_0_to_2147483647_and_rejects_the_rest() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages(&mut conn, "offset=0&limit=3", &f.page_json(3, 0, None));
    assert_pages(&mut conn, "offset=2147483647", b"[]");
    assert_pages(&mut conn, "offset=2147483647&limit=200&starts=m", b"[]");
    for bad in ["-1", "2147483648", "-2147483648", "9223372036854775808"] {
        assert_pages_422(&mut conn, &format!("offset={bad}"), &[["query", "offset"]]);
    }
}

#[test]
fn limit_and_offset_must_be_plain_decimal_integers() {
    let mut conn = Conn::connect(addr());
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
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages(&mut conn, "limit=007", &f.page_json(7, 0, None));
    assert_pages(&mut conn, "offset=-0&limit=2", &f.page_json(2, 0, None));
    assert_pages(
        &mut conn,
        "offset=0000000000000000000000000000010&limit=2",
        &f.page_json(2, 10, None),
    );
    assert_pages(&mut conn, "limit=%35", &f.page_json(5, 0, None));
}

#[test]
fn several_broken_parameters_give_one_item_each() {
    let mut conn = Conn::connect(addr());
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

// ---------------------------------------------------------------- starts

#[test]
fn starts_is_a_case_insensitive_prefix_of_the_last_name() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
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
        assert_pages(&mut conn, &query, &f.page_json(100, 0, Some(starts)));
    }
    // The expectations are not vacuous: Müller is found by every casing,
    // and the matches really begin with the prefix.
    for starts in ["mü", "MÜLLER", "Mü"] {
        let page = f.page(100, 0, Some(starts));
        assert!(!page.is_empty(), "nothing starts with {starts:?}");
        assert!(page.iter().all(|c| c.last_name.starts_with("Müller")));
    }
    assert!(!f.page(100, 0, Some("O'BRIEN")).is_empty());
    assert!(!f.page(100, 0, Some("NGUYỄN")).is_empty());
    let r = conn.get("/contacts/fetch?starts=M%C3%BC&limit=200");
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("Müller")),
        "{names:?}"
    );
}

#[test]
fn starts_matches_percent_underscore_backslash_and_quote_literally() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    // (starts, the ids that really begin with it: from support/model.rs)
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
        let page = f.page(100, 0, Some(starts));
        assert_eq!(ids(&page), want, "fixture: what starts with {starts:?}");
        let expected = serde_json::to_vec(&page).unwrap();
        assert_pages(&mut conn, &format!("starts={}", pct(starts)), &expected);
    }
    // `_` is unreserved: also sent as is, not percent-encoded.
    assert_pages(&mut conn, "starts=_", &f.page_json(100, 0, Some("_")));
    assert_pages(&mut conn, "starts=mo_", &f.page_json(100, 0, Some("mo_")));
}

#[test]
fn starts_counts_code_points_from_1_to_100_not_bytes() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    for (starts, want) in [
        ("é".repeat(100), vec![900_008]),
        ("😀".repeat(100), vec![900_009]),
        ("a".repeat(100), vec![]),
        ("é".repeat(99), vec![900_008]),
    ] {
        let page = f.page(100, 0, Some(&starts));
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
    let mut conn = Conn::connect(addr());
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
    let mut conn = Conn::connect(addr());
    for page in PAGES {
        for query in ["starts=%00", "starts=M%00"] {
            let target = format!("{page}?{query}");
            let r = conn.get(&target);
            assert_no_leak(&target, &r, &[]);
            if r.status == 200 {
                assert_body(&target, &r, b"[]");
            } else {
                assert_422(&target, &r, &[["query", "starts"]]);
            }
        }
    }
    assert_body("/version", &conn.get("/version"), &version_body());
}

#[test]
fn bad_percent_encoding_breaks_only_the_parameter_it_is_in() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages_422(&mut conn, "limit=%zz", &[["query", "limit"]]);
    assert_pages_422(&mut conn, "offset=%", &[["query", "offset"]]);
    assert_pages_422(&mut conn, "limit=%FF", &[["query", "limit"]]);
    // An unknown parameter is ignored, however it is encoded.
    assert_pages(&mut conn, "foo=%zz&limit=2", &f.page_json(2, 0, None));
    assert_pages(&mut conn, "limit=2&bar=%C3", &f.page_json(2, 0, None));
}

// ---------------------------------------------------------------- query string rules

#[test]
fn unknown_query_parameters_are_ignored() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages(&mut conn, "foo=bar&limit=3&x", &f.page_json(3, 0, None));
    assert_pages(
        &mut conn,
        "LIMIT=0&limit=3&Offset=-1",
        &f.page_json(3, 0, None),
    );
    assert_pages(&mut conn, "&&limit=3&", &f.page_json(3, 0, None));
    let cases = [
        ("/types?limit=abc", f.snapshot.types_json()),
        ("/version?x=1", version_body()),
        (
            "/contacts/5?limit=0&starts=",
            f.snapshot.contact_json(5).unwrap(),
        ),
        ("/fibonacci/10?n=99", fib_body(10)),
    ];
    for (target, expected) in cases {
        assert_body(target, &conn.get(target), &expected);
    }
}

#[test]
fn a_repeated_parameter_takes_its_last_value() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
    assert_pages(&mut conn, "limit=1&limit=3", &f.page_json(3, 0, None));
    assert_pages(&mut conn, "limit=abc&limit=2", &f.page_json(2, 0, None));
    assert_pages(
        &mut conn,
        "offset=5&limit=2&offset=0",
        &f.page_json(2, 0, None),
    );
    assert_pages(
        &mut conn,
        "starts=zz&starts=m",
        &f.page_json(100, 0, Some("m")),
    );
    assert_pages(
        &mut conn,
        "starts=%zz&starts=mo",
        &f.page_json(100, 0, Some("mo")),
    );
    assert_pages_422(&mut conn, "limit=2&limit=abc", &[["query", "limit"]]);
    assert_pages_422(&mut conn, "starts=m&starts=", &[["query", "starts"]]);
}

// ---------------------------------------------------------------- routing

#[test]
fn a_trailing_slash_is_optional_on_every_path_without_redirect() {
    let f = fixture();
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
    let mut conn = Conn::connect(addr());
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
    let mut conn = Conn::connect(addr());
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
            let r = http::request(addr(), method, target);
            assert_error(&request, &r, 405, METHOD_NOT_ALLOWED);
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{request}: {r}");
        }
        let request = format!("{method} /nope");
        assert_error(
            &request,
            &http::request(addr(), method, "/nope"),
            404,
            NOT_FOUND,
        );
    }
}

#[test]
fn a_405_with_a_request_body_leaves_a_kept_alive_connection_usable() {
    let mut conn = Conn::connect(addr());
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

// ---------------------------------------------------------------- HEAD

#[test]
fn head_answers_like_get_with_the_same_headers_and_no_body() {
    let mut conn = Conn::connect(addr());
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

// ---------------------------------------------------------------- headers, connections

#[test]
fn every_response_is_application_json() {
    let mut conn = Conn::connect(addr());
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
        let r = http::request(addr(), method, "/types");
        assert_json_type(&format!("{method} /types"), &r);
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let f = fixture();
    let mut conn = Conn::connect(addr());
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
    let f = fixture();
    let mut conn = Conn::connect(addr());
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
    let f = fixture();
    let mut conn = Conn::connect(addr());
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
            support::show(&r.body),
            support::show(&body),
            "pipelined {method} {target}"
        );
    }
}

#[test]
fn concurrent_clients_all_get_their_own_bytes() {
    let f = fixture();
    let a: SocketAddr = addr();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let f = fixture();
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
    let f = fixture();
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
                let f = fixture();
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
    let s = Server::start(&fixture().database_url, &[("RUNTIME", "per-core")]);
    assert!(
        s.first_line.contains("runtime per-core"),
        "{}",
        s.first_line
    );
    assert_serves_a_sample_of_the_contract(s.addr);
}

#[test]
fn exclusive_pool_mode_serves_the_same_bytes() {
    let s = Server::start(&fixture().database_url, &[("POOL_MODE", "exclusive")]);
    assert!(s.first_line.contains("exclusive"), "{}", s.first_line);
    assert_serves_a_sample_of_the_contract(s.addr);
}

// ---------------------------------------------------------------- database down

const SECRET: &str = "hunter2-s3cret";

fn down_url(port: u16) -> String {
    format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/bakeoff")
}

#[track_caller]
fn assert_503(target: &str, r: &Response) {
    assert_error(target, r, 503, SERVICE_UNAVAILABLE);
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{target}: 503 without Retry-After: {r}"));
    assert!(
        !retry.is_empty() && retry.bytes().all(|b| b.is_ascii_digit()),
        "{target}: Retry-After {retry:?} is not a number of seconds"
    );
    assert_no_leak(target, r, &[SECRET, "bakeoff"]);
}

const POOL_MODES: [&str; 2] = ["shared", "exclusive"];

#[test]
fn server_without_a_database_starts_and_answers_503_on_database_endpoints() {
    for mode in POOL_MODES {
        without_a_database_503s(mode);
    }
}

fn without_a_database_503s(mode: &str) {
    // A port nothing listens on: the shared cluster stays up for the others.
    let port = support::pg::free_port();
    let s = Server::start(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert!(
        !s.first_line.contains(SECRET),
        "the first stderr line shows the password: {}",
        s.first_line
    );
    let mut conn = Conn::connect(s.addr);
    assert_body("/version", &conn.get("/version"), &version_body());
    assert_body("/fibonacci/10", &conn.get("/fibonacci/10"), &fib_body(10));
    for target in [
        "/types",
        "/types/",
        "/contacts/1",
        "/contacts/fetch",
        "/contacts/for",
        "/contacts/fetch?starts=m&limit=5",
        "/contacts/for?offset=3",
    ] {
        let r = conn.get(target);
        assert_503(&format!("{target} (pool mode {mode})"), &r);
        let h = conn.request("HEAD", target);
        assert_eq!(h.status, 503, "HEAD {target}: {h}");
        assert!(h.header("retry-after").is_some(), "HEAD {target}: {h}");
    }
    // Still serving after all those failures.
    assert_body("/version", &conn.get("/version"), &version_body());
    assert!(!s.stderr().contains(SECRET), "stderr shows the password");
}

#[test]
fn server_answers_again_once_the_database_comes_back() {
    for mode in POOL_MODES {
        answers_again_once_the_database_is_back(mode);
    }
}

fn answers_again_once_the_database_is_back(mode: &str) {
    let f = fixture();
    let port = support::pg::free_port();
    let s = Server::start(
        &down_url(port),
        &[("POOL_TIMEOUT_MS", "300"), ("POOL_MODE", mode)],
    );
    assert_503(
        &format!("/types (pool mode {mode})"),
        &http::get(s.addr, "/types"),
    );

    // The database "comes back": its port now leads to the shared cluster.
    let cluster: SocketAddr = ([127, 0, 0, 1], f.cluster.port).into();
    let _proxy = support::proxy::Proxy::start(port, cluster).expect("listen on the closed port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = http::get(s.addr, "/types");
    while last.status != 200 && Instant::now() < deadline {
        assert_503(&format!("/types while reconnecting ({mode})"), &last);
        std::thread::sleep(Duration::from_millis(50));
        last = http::get(s.addr, "/types");
    }
    assert_body(
        "/types after the database came back",
        &last,
        &f.snapshot.types_json(),
    );
    assert_body(
        "/contacts/5",
        &http::get(s.addr, "/contacts/5"),
        &f.snapshot.contact_json(5).unwrap(),
    );
    let mut conn = Conn::connect(s.addr);
    assert_pages(&mut conn, "limit=10&offset=20", &f.page_json(10, 20, None));
}

// ---------------------------------------------------------------- robustness

#[test]
fn malformed_requests_neither_crash_the_server_nor_leak_internals() {
    let f = fixture();
    // A server of its own, so that a crash fails this test, not all of them.
    let mut s = Server::start(&f.database_url, &[]);
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
        let label = support::show(&bytes[..bytes.len().min(80)]);
        let mut conn = Conn::connect(s.addr);
        conn.send(bytes);
        // Some of these get no answer (the connection is just closed).
        if let Ok(r) = conn.read_response(false) {
            assert!(r.status < 500, "{label:?} → a server error: {r}");
            assert_no_leak(&label, &r, &[]);
        }
    }
    // The injection attempt above changed nothing.
    assert_body(
        "/contacts/1",
        &http::get(s.addr, "/contacts/1"),
        &f.snapshot.contact_json(1).unwrap(),
    );
    assert_body("/version", &http::get(s.addr, "/version"), &version_body());
    assert_alive(&mut s);
}

#[test]
fn a_client_closing_mid_request_or_mid_response_does_not_disturb_others() {
    let f = fixture();
    let a = addr();
    for _ in 0..20 {
        let mut conn = Conn::connect(a);
        conn.send(b"GET /contacts/for?limit=200 HTTP/1.1\r\nHost: x\r\n\r\n");
        drop(conn);
        let mut half = Conn::connect(a);
        half.send(b"GET /contacts/fetch?lim");
        drop(half);
    }
    let mut conn = Conn::connect(a);
    assert_pages(&mut conn, "limit=200", &f.page_json(200, 0, None));
    let s: BTreeSet<u16> = (0..10).map(|_| conn.get("/types").status).collect();
    assert_eq!(s, BTreeSet::from([200]));
}

// ---------------------------------------------------------------- command line (docs/CLI.md)

#[test]
fn sigterm_and_sigint_stop_the_server_with_exit_code_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let s = Server::start(&fixture().database_url, &[]);
        assert_eq!(http::get(s.addr, "/version").status, 200);
        let status = s.stop_with(signal).expect("no exit within 30 s");
        assert_eq!(status.code(), Some(0), "after signal {signal}: {status}");
    }
}

#[test]
fn a_bad_setting_exits_with_code_2_and_one_line_naming_it() {
    for (var, value) in [
        ("RUNTIME", "sideways"),
        ("BIND", "not-an-address"),
        ("POOL_SIZE", "zero"),
        ("DATABASE_URL", "garbage://"),
    ] {
        support::assert_bad_setting_refused(var, value);
    }
}

#[test]
fn metrics_count_requests_by_route_and_status_in_prometheus_text() {
    let s = Server::start(&fixture().database_url, &[]);
    for _ in 0..3 {
        assert_eq!(http::get(s.addr, "/types").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(http::get(s.addr, "/nope").status, 404);
    }
    assert_eq!(http::get(s.addr, "/contacts/fetch?limit=0").status, 422);
    let r = http::get(s.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.body_str();
    // By default, two connections per core (one pool per core), plus one per
    // core for the `starts` pages, planned per call.
    let cores = std::thread::available_parallelism().unwrap().get();
    let pool_size = format!("bakeoff_pool_size {}", 3 * cores);
    for line in [
        "bakeoff_requests_total{route=\"/types\",status=\"200\"} 3",
        "bakeoff_requests_total{route=\"unmatched\",status=\"404\"} 2",
        "bakeoff_requests_total{route=\"/contacts/fetch\",status=\"422\"} 1",
        "bakeoff_request_duration_seconds_count{route=\"/types\"} 3",
        "bakeoff_request_duration_seconds_bucket{route=\"/types\",le=\"+Inf\"} 3",
        &pool_size,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    // The scrape's own connection is open while it is answered.
    assert!(
        text.lines().any(
            |l| l.starts_with("bakeoff_open_connections ") && l != "bakeoff_open_connections 0"
        ),
        "{text}"
    );
}

#[test]
fn the_access_log_is_off_by_default_and_one_line_per_request_when_on() {
    let quiet = Server::start(&fixture().database_url, &[]);
    assert_eq!(http::get(quiet.addr, "/types").status, 200);
    let logged = Server::start(&fixture().database_url, &[("ACCESS_LOG", "true")]);
    assert_eq!(http::get(logged.addr, "/types").status, 200);
    assert_eq!(http::get(logged.addr, "/contacts/0").status, 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = logged.stderr();
        if log.contains("/contacts/0") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET /types HTTP/1.1\" 200 ")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET /contacts/0 HTTP/1.1\" 404 30 ")),
        "{log}"
    );
    assert!(!quiet.stderr().contains("GET /types"), "{}", quiet.stderr());
}
