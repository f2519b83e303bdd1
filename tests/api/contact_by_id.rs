//! `/contacts/{id}`: every contact byte for byte, escaping, NULLs, and the
//! 404s and 422s of the id.

use testkit::http::{self, Conn};
use testkit::model;
use testkit::{assert_422, assert_body, assert_error, assert_json_type, assert_no_leak};

use crate::{CONTACT_NOT_FOUND, KIT};

#[test]
fn every_contact_by_id_matches_the_database_byte_for_byte() {
    let fixture = KIT.fixture();
    let mut conn = Conn::connect(KIT.addr());
    for contact in &fixture.snapshot.contacts {
        let target = format!("/contacts/{}", contact.contact_id);
        let response = conn.get(&target);
        assert_body(&target, &response, &serde_json::to_vec(contact).unwrap());
        assert_json_type(&target, &response);
    }
}

#[test]
fn contact_strings_are_escaped_exactly_as_serde_json_escapes_them() {
    let fixture = KIT.fixture();
    // What the expectation itself must contain: short escapes for " \ \b \f
    // \n \r \t, \u00XX in lowercase hex for other controls, the rest raw
    // (DEL, U+2028, U+2029, emoji, '/', '<', '&').
    let json = |id| String::from_utf8(fixture.snapshot.contact_json(id).unwrap()).unwrap();
    assert!(json(900_001).contains(r#""Quote\"Back\\slash/Solidus""#));
    assert!(json(900_001).contains(r#""\\Backslash""#));
    assert!(json(900_002).contains(r#""Tab\tNew\nline\rCR""#));
    assert!(json(900_003).contains("\"Ctl\\u0001\\b\\u000b\\f\\u001b\\u001f\u{7f}End\""));
    assert!(json(900_004).contains("\"Line\u{2028}Para\u{2029}Emoji😀\""));
    assert!(json(900_010).contains(r#""</script>&<>'=\"""#));
    let mut conn = Conn::connect(KIT.addr());
    for extra in model::extras() {
        let target = format!("/contacts/{}", extra.contact_id);
        let response = conn.get(&target);
        assert_body(
            &target,
            &response,
            &fixture
                .snapshot
                .contact_json(extra.contact_id.into())
                .unwrap(),
        );
    }
}

#[test]
fn null_phones_and_emails_are_left_out_and_none_gives_an_empty_array() {
    let mut conn = Conn::connect(KIT.addr());
    // Literal expectations, from how testkit/src/model.rs inserted these rows.
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
        let response = conn.get(&target);
        assert_eq!(response.status, 200, "{target}: {response}");
        let parsed = response.json();
        assert_eq!(parsed["phone_number"], phones, "{target}: {response}");
        assert_eq!(parsed["email"], emails, "{target}: {response}");
        assert_body(
            &target,
            &response,
            &KIT.fixture().snapshot.contact_json(id).unwrap(),
        );
    }
}

#[test]
fn contact_id_zero_or_absent_is_404_contact_not_found() {
    let snap = &KIT.fixture().snapshot;
    for id in ["0", "-0", "000", "1001", "899999", "2147483647"] {
        let number: i64 = id.parse().unwrap();
        assert!(snap.contact(number).is_none(), "fixture has contact {id}");
        for method in ["GET", "HEAD"] {
            let target = format!("/contacts/{id}");
            let response = http::request(KIT.addr(), method, &target);
            if method == "GET" {
                assert_error(&target, &response, 404, CONTACT_NOT_FOUND);
            } else {
                assert_eq!(response.status, 404, "HEAD {target}: {response}");
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
        let response = conn.get(&target);
        assert_422(&target, &response, &[["path", "contact_id"]]);
        assert_json_type(&target, &response);
        assert_no_leak(&target, &response, &[]);
    }
}
