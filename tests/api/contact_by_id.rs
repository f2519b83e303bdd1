//! `/contacts/{id}`: every contact byte for byte, escaping, NULLs, and the
//! 404s and 422s of the id.

use testkit::http::{self, Conn};
use testkit::model;
use testkit::{assert_422, assert_body, assert_error, assert_json_type, assert_no_leak};

use crate::{CONTACT_NOT_FOUND, KIT};

#[test]
fn every_contact_by_id_matches_the_database_byte_for_byte() {
    let f = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for c in &f.snapshot.contacts {
        let target = format!("/contacts/{}", c.contact_id);
        let r = conn.get(&target);
        assert_body(&target, &r, &serde_json::to_vec(c).unwrap());
        assert_json_type(&target, &r);
    }
}

#[test]
fn contact_strings_are_escaped_exactly_as_serde_json_escapes_them() {
    let f = KIT.fixture();
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
    let mut conn = Conn::connect(KIT.addr());
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
    let mut conn = Conn::connect(KIT.addr());
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
        assert_body(
            &target,
            &r,
            &KIT.fixture().snapshot.contact_json(id).unwrap(),
        );
    }
}

#[test]
fn contact_id_zero_or_absent_is_404_contact_not_found() {
    let snap = &KIT.fixture().snapshot;
    for id in ["0", "-0", "000", "1001", "899999", "2147483647"] {
        let n: i64 = id.parse().unwrap();
        assert!(snap.contact(n).is_none(), "fixture has contact {id}");
        for method in ["GET", "HEAD"] {
            let target = format!("/contacts/{id}");
            let r = http::request(KIT.addr(), method, &target);
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
    let expected = KIT.fixture().snapshot.contact_json(5).unwrap();
    for target in ["/contacts/05", "/contacts/0000000000000000000005"] {
        assert_body(target, &http::get(KIT.addr(), target), &expected);
    }
}

#[test]
fn contact_id_not_an_integer_from_0_to_2147483647_is_422_path_contact_id() {
    let mut conn = Conn::connect(KIT.addr());
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
