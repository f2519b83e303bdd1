//! The JSON writer on arbitrary text: whatever it writes, simd-json (a parser
//! independent of both) reads back as exactly the input, and serde_json
//! writes the same bytes itself; a Contact written from arbitrary columns
//! parses as the Contact those columns make.

#![no_main]

use bakeoff::json;
use bakeoff::rows;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    // Column values are PostgreSQL text: valid UTF-8. (The writer copies
    // bytes, so invalid UTF-8 in would be invalid out, by design.)
    let text = String::from_utf8_lossy(data);

    let mut out = Vec::new();
    json::write_str(&mut out, text.as_bytes());
    // simd-json parses in place, so it gets a copy.
    let parsed: String =
        simd_json::serde::from_slice(&mut out.clone()).expect("write_str wrote invalid JSON");
    assert_eq!(parsed, text);
    assert_eq!(
        out,
        serde_json::to_vec(&*text).unwrap(),
        "bytes differ from serde_json's"
    );

    // A Contact from the input: `|` separates the columns, `,` the
    // elements of the two arrays; the first bytes give the integers.
    let mut columns = text.split('|');
    let mut column = || columns.next();
    let first_name = column().unwrap_or("");
    let last_name = column().unwrap_or("");
    let type_name = column();
    let phones: Vec<&str> = column().map_or(Vec::new(), |c| c.split(',').collect());
    let emails: Vec<&str> = column().map_or(Vec::new(), |c| c.split(',').collect());
    let number = |at: usize| {
        let mut bytes = [0u8; 4];
        for (i, byte) in data.iter().skip(at).take(4).enumerate() {
            bytes[i] = *byte;
        }
        i32::from_le_bytes(bytes)
    };
    let (contact_id, type_id) = (number(0), number(4));
    let mut out = Vec::new();
    rows::write_contact_columns(
        &mut out,
        contact_id,
        first_name,
        last_name,
        type_id,
        type_name,
        &phones[..],
        &emails[..],
    )
    .expect("write_contact_columns");
    let parsed: serde_json::Value = simd_json::serde::from_slice(&mut out.clone())
        .expect("write_contact_columns wrote invalid JSON");
    let expected = json!({
        "contact_id": contact_id,
        "first_name": first_name,
        "last_name": last_name,
        "contact_type": {"type_id": type_id, "type_name": type_name},
        "phone_number": phones,
        "email": emails,
    });
    assert_eq!(parsed, expected);
    // Keys in the contract's order, as serde_json writes a struct.
    let keys = [
        "contact_id",
        "first_name",
        "last_name",
        "contact_type",
        "phone_number",
        "email",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            let needle = format!("\"{k}\":");
            out.windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("key missing")
        })
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "keys out of order"
    );

    let mut out = Vec::new();
    json::write_int(&mut out, contact_id);
    assert_eq!(out, contact_id.to_string().into_bytes());
});
