//! The JSON writer: rows go straight from PostgreSQL's wire bytes into one
//! output buffer.
//!
//! Hand-written on purpose: this is the hot path the project exists to tune.
//! serde would need an intermediate struct or a `String` per field; here each
//! value is written from the borrowed bytes the row already holds, with a
//! 256-entry escape table (the technique of serde_json's `ser.rs`) and `itoa`.
//!
//! Escaping follows RFC 8259 and matches what serde_json and Python's
//! `json.dumps(ensure_ascii=False)` (FastAPI's renderer) produce, byte for
//! byte: `"` and `\` escaped, `\b \f \n \r \t` in their short forms, every
//! other control character as `\u00XX` (lowercase hex), and everything else,
//! non-ASCII UTF-8 included, copied as is.

/// What to write for each byte: 0 means copy it, `u` means `\u00XX`, any
/// other value is the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

static HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a JSON string, quotes included.
///
/// Takes bytes rather than `&str` so that values PostgreSQL sent as UTF-8
/// (the server encoding of the contract's database, and the client encoding
/// tokio-postgres always requests) can be written without a second UTF-8
/// validation pass. Non-ASCII bytes are copied untouched, so valid UTF-8 in
/// gives valid UTF-8 out.
///
/// Eight bytes are tested at a time ([`word_needs_escape`]); only a word
/// that may hold a byte to escape is looked at byte by byte, and the runs
/// between escapes are copied whole.
#[inline]
pub fn write_str(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut copied_up_to = 0;
    let (words, tail) = text.as_chunks::<8>();
    for (number, word) in words.iter().enumerate() {
        if word_needs_escape(u64::from_ne_bytes(*word)) {
            escape_bytes(out, text, number * 8, word, &mut copied_up_to);
        }
    }
    escape_bytes(out, text, words.len() * 8, tail, &mut copied_up_to);
    out.extend_from_slice(&text[copied_up_to..]);
    out.push(b'"');
}

/// Writes the escapes of `bytes`, which start at `start` in `text`, each
/// after the unescaped run before it. `bytes` could be derived from `text`
/// and a range, but iterating a slice saves a bounds check per byte: taking
/// a range instead measured 7.09–7.12 µs against 6.55 on the JSON bench.
#[inline]
fn escape_bytes(
    out: &mut Vec<u8>,
    text: &[u8],
    start: usize,
    bytes: &[u8],
    copied_up_to: &mut usize,
) {
    for (offset, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        let index = start + offset;
        out.extend_from_slice(&text[*copied_up_to..index]);
        write_escape(out, byte, escape);
        *copied_up_to = index + 1;
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of eight bytes may need escaping: a control character
/// (below 0x20), `"` or `\`. Never false when one does; may be true when
/// none does (a borrow from a lower byte that matched), which only costs a
/// look at each byte. The byte-wise tests are the classic "has a zero byte"
/// and "has a byte below n" bit tricks.
#[inline]
fn word_needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    below_space != 0
        || has_zero_byte(word ^ (ONES * u64::from(b'"')))
        || has_zero_byte(word ^ (ONES * u64::from(b'\\')))
}

#[inline]
fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGH_BITS != 0
}

/// Writes one escape sequence. Kept out of line: names rarely need one.
#[cold]
#[inline(never)]
fn write_escape(out: &mut Vec<u8>, byte: u8, escape: u8) {
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// Appends a JSON string, or `null` for SQL NULL.
#[inline]
pub fn write_opt_str(out: &mut Vec<u8>, text: Option<&[u8]>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an integer in decimal.
#[inline]
pub fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text.as_bytes());
        String::from_utf8(out).expect("the writer keeps UTF-8 intact")
    }

    #[test]
    fn plain_ascii_is_copied_between_quotes() {
        assert_eq!(escaped("Smith"), r#""Smith""#);
        assert_eq!(escaped(""), r#""""#);
    }

    #[test]
    fn quote_and_backslash_are_escaped() {
        assert_eq!(escaped(r#"O"Brien\"#), r#""O\"Brien\\""#);
    }

    #[test]
    fn control_characters_use_short_forms_where_json_has_them() {
        assert_eq!(escaped("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(escaped("\u{0}\u{1}\u{1f}"), r#""\u0000\u0001\u001f""#);
    }

    #[test]
    fn delete_and_non_ascii_pass_through() {
        assert_eq!(
            escaped("\u{7f}Müller Nguyễn 🎉"),
            "\"\u{7f}Müller Nguyễn 🎉\""
        );
    }

    #[test]
    fn apostrophe_and_slash_are_not_escaped() {
        assert_eq!(escaped("O'Brien/x"), r#""O'Brien/x""#);
    }

    #[test]
    fn a_word_needs_escaping_exactly_when_one_of_its_bytes_does() {
        // Every byte value at every position of a word of letters: with one
        // candidate byte, no other byte can borrow, so the test is exact.
        for position in 0..8 {
            for byte in 0..=255u8 {
                let mut word = *b"abcdefgh";
                word[position] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    word_needs_escape(u64::from_ne_bytes(word)),
                    expected,
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }

    #[test]
    fn escapes_in_every_position_of_long_strings() {
        // Longer than a word, with escapes in the words and in the tail.
        assert_eq!(
            escaped("0123456\"89abcdef\\hij\nk"),
            r#""0123456\"89abcdef\\hij\nk""#
        );
        assert_eq!(escaped("\u{1}2345678"), r#""\u00012345678""#);
        assert_eq!(escaped("12345678\u{1f}"), r#""12345678\u001f""#);
    }

    #[test]
    fn null_and_integers() {
        let mut out = Vec::new();
        write_opt_str(&mut out, None);
        out.push(b',');
        write_int(&mut out, -2147483648i32);
        out.push(b',');
        write_int(&mut out, 165580141u64);
        assert_eq!(out, b"null,-2147483648,165580141");
    }

    proptest! {
        /// A real JSON parser reads back exactly the string that was written.
        #[test]
        fn serde_json_reads_back_any_string(text in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, text.as_bytes());
            let parsed: String = serde_json::from_slice(&out).expect("valid JSON");
            prop_assert_eq!(parsed, text);
        }

        /// The bytes are the same serde_json (and so FastAPI) would write.
        #[test]
        fn bytes_match_serde_json(text in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, text.as_bytes());
            prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn integers_match_their_display(value in any::<i64>()) {
            let mut out = Vec::new();
            write_int(&mut out, value);
            prop_assert_eq!(out, value.to_string().into_bytes());
        }
    }
}
