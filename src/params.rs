//! Parameters: percent-decoding and the contract's rules for `limit`,
//! `offset`, `starts`, `contact_id` and `n`, turning raw text into typed
//! values or the 422 items that name what is wrong. Pure: no I/O.

use std::borrow::Cow;

use crate::error::{ApiError, Broken, Location, ParamError};

/// The query of `/contacts/fetch` and `/contacts/for`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery<'a> {
    /// Rows to return, 1 to 200. Default is 100.
    pub limit: i64,
    /// Rows to skip, 0 to 2147483647. Default is 0.
    pub offset: i64,
    /// The last-name prefix, 1 to 100 code points, decoded. Default is none.
    pub starts: Option<Cow<'a, str>>,
}

/// Largest value of a PostgreSQL `int4`, the bound of `offset` and `contact_id`.
pub const INT4_MAX: i64 = i32::MAX as i64;

/// Reads `limit`, `offset` and `starts` from a raw query string.
///
/// Unknown parameters are ignored and a repeated one takes its last value,
/// as Starlette does. Every broken parameter gets its own 422 item.
pub fn page_query(query: Option<&str>) -> Result<PageQuery<'_>, ApiError> {
    let (mut limit, mut offset, mut starts) = (None, None, None);
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.is_empty() {
            continue;
        }
        if decoded_eq(name, "limit") {
            limit = Some(value);
        } else if decoded_eq(name, "offset") {
            offset = Some(value);
        } else if decoded_eq(name, "starts") {
            starts = Some(value);
        }
    }

    let mut errors = Vec::new();
    let mut check =
        |result: Result<i64, ParamError>| result.map_err(|error| errors.push(error)).unwrap_or(0);
    let limit = limit.map_or(100, |raw| {
        check(integer(raw, Location::Query, "limit", 1, 200))
    });
    let offset = offset.map_or(0, |raw| {
        check(integer(raw, Location::Query, "offset", 0, INT4_MAX))
    });
    let starts = match starts.map(|raw| text(raw, "starts", 1, 100)) {
        Some(Err(error)) => {
            errors.push(error);
            None
        }
        Some(Ok(starts)) => Some(starts),
        None => None,
    };
    if errors.is_empty() {
        Ok(PageQuery {
            limit,
            offset,
            starts,
        })
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// Reads a path parameter that must be an integer in `min..=max`.
pub fn path_integer(raw: &str, name: &'static str, min: i64, max: i64) -> Result<i64, ApiError> {
    integer(raw, Location::Path, name, min, max).map_err(|error| ApiError::Invalid(vec![error]))
}

/// An integer is `-?[0-9]+` after percent-decoding, then within bounds.
/// Leading zeros are fine; a value too long for `i64` is simply out of range.
fn integer(
    raw: &str,
    location: Location,
    name: &'static str,
    min: i64,
    max: i64,
) -> Result<i64, ParamError> {
    let broken = |rule| ParamError {
        location,
        name,
        rule,
    };
    let mut bytes = Decoder::new(raw, location).peekable();
    let negative = bytes.next_if(|byte| *byte == Ok(b'-')).is_some();
    let mut magnitude: i64 = 0;
    let mut digits = 0;
    for byte in bytes {
        match byte {
            Ok(digit @ b'0'..=b'9') => {
                magnitude = magnitude
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'));
                digits += 1;
            }
            Ok(_) => return Err(broken(Broken::NotAnInteger)),
            Err(BadEncoding) => return Err(broken(Broken::BadEncoding)),
        }
    }
    if digits == 0 {
        return Err(broken(Broken::NotAnInteger));
    }
    let value = if negative { -magnitude } else { magnitude };
    if value < min {
        Err(broken(Broken::Below(min)))
    } else if value > max {
        Err(broken(Broken::Above(max)))
    } else {
        Ok(value)
    }
}

/// A query string parameter: percent-decoded, UTF-8, `min..=max` code points.
/// Borrows the raw text when there is nothing to decode.
fn text<'a>(
    raw: &'a str,
    name: &'static str,
    min: usize,
    max: usize,
) -> Result<Cow<'a, str>, ParamError> {
    let broken = |rule| ParamError {
        location: Location::Query,
        name,
        rule,
    };
    let decoded = if raw.bytes().any(|byte| byte == b'%' || byte == b'+') {
        let bytes = Decoder::new(raw, Location::Query)
            .collect::<Result<Vec<u8>, BadEncoding>>()
            .map_err(|BadEncoding| broken(Broken::BadEncoding))?;
        Cow::Owned(String::from_utf8(bytes).map_err(|_| broken(Broken::BadEncoding))?)
    } else {
        Cow::Borrowed(raw)
    };
    let length = decoded.chars().count();
    if length < min {
        Err(broken(Broken::TooShort(min)))
    } else if length > max {
        Err(broken(Broken::TooLong(max)))
    } else {
        Ok(decoded)
    }
}

/// Whether `raw`, percent-decoded, is exactly `expected`. No allocation.
pub fn decoded_eq(raw: &str, expected: &str) -> bool {
    if !raw.contains('%') {
        return raw == expected;
    }
    let mut decoded = Decoder::new(raw, Location::Path);
    expected
        .bytes()
        .all(|byte| decoded.next() == Some(Ok(byte)))
        && decoded.next().is_none()
}

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BadEncoding;

/// Percent-decodes byte by byte. In a query, `+` is a space (HTML form
/// encoding, as Starlette reads it); in a path it is itself.
struct Decoder<'a> {
    bytes: std::slice::Iter<'a, u8>,
    plus_is_space: bool,
}

impl<'a> Decoder<'a> {
    fn new(raw: &'a str, location: Location) -> Self {
        Decoder {
            bytes: raw.as_bytes().iter(),
            plus_is_space: location == Location::Query,
        }
    }
}

impl Iterator for Decoder<'_> {
    type Item = Result<u8, BadEncoding>;

    fn next(&mut self) -> Option<Self::Item> {
        let byte = *self.bytes.next()?;
        Some(match byte {
            b'%' => {
                let high = self.bytes.next().and_then(|digit| hex_value(*digit));
                let low = self.bytes.next().and_then(|digit| hex_value(*digit));
                match (high, low) {
                    (Some(high), Some(low)) => Ok(high << 4 | low),
                    _ => Err(BadEncoding),
                }
            }
            b'+' if self.plus_is_space => Ok(b' '),
            _ => Ok(byte),
        })
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken_names(query: &str) -> Vec<(&'static str, Broken)> {
        match page_query(Some(query)) {
            Err(ApiError::Invalid(errors)) => errors
                .into_iter()
                .map(|error| (error.name, error.rule))
                .collect(),
            other => panic!("expected 422 for {query:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_without_a_query() {
        let expected = PageQuery {
            limit: 100,
            offset: 0,
            starts: None,
        };
        assert_eq!(page_query(None).unwrap(), expected);
        assert_eq!(page_query(Some("")).unwrap(), expected);
        assert_eq!(page_query(Some("&&x=1&=")).unwrap(), expected);
    }

    #[test]
    fn bounds_are_inclusive() {
        let query = page_query(Some("limit=200&offset=2147483647")).unwrap();
        assert_eq!((query.limit, query.offset), (200, INT4_MAX));
        assert_eq!(page_query(Some("limit=1&offset=0")).unwrap().limit, 1);
        assert_eq!(broken_names("limit=0"), [("limit", Broken::Below(1))]);
        assert_eq!(broken_names("limit=201"), [("limit", Broken::Above(200))]);
        assert_eq!(broken_names("offset=-1"), [("offset", Broken::Below(0))]);
        assert_eq!(
            broken_names("offset=2147483648"),
            [("offset", Broken::Above(INT4_MAX))]
        );
        assert_eq!(
            broken_names("offset=99999999999999999999999999"),
            [("offset", Broken::Above(INT4_MAX))]
        );
    }

    #[test]
    fn only_plain_decimal_integers_pass() {
        for raw in [
            "+1", "%201", "1.0", "1e3", "1_0", "", "abc", "-", "1-", "0x10", "１",
        ] {
            let query = format!("limit={raw}");
            assert_eq!(
                broken_names(&query),
                [("limit", Broken::NotAnInteger)],
                "{query}"
            );
        }
        assert_eq!(page_query(Some("limit=007")).unwrap().limit, 7);
        assert_eq!(page_query(Some("limit=%35")).unwrap().limit, 5);
        assert_eq!(broken_names("limit=%zz"), [("limit", Broken::BadEncoding)]);
    }

    #[test]
    fn last_repeated_value_wins_and_unknown_are_ignored() {
        let query = page_query(Some("limit=abc&limit=5&foo=bar&offset=3")).unwrap();
        assert_eq!((query.limit, query.offset), (5, 3));
    }

    #[test]
    fn every_broken_parameter_is_named() {
        assert_eq!(
            broken_names("limit=0&offset=x&starts="),
            [
                ("limit", Broken::Below(1)),
                ("offset", Broken::NotAnInteger),
                ("starts", Broken::TooShort(1)),
            ]
        );
    }

    #[test]
    fn starts_is_decoded_and_counted_in_code_points() {
        let query = page_query(Some("starts=M%C3%BCl+x")).unwrap();
        assert_eq!(query.starts.as_deref(), Some("Mül x"));
        assert!(matches!(
            page_query(Some("starts=abc")).unwrap().starts,
            Some(Cow::Borrowed("abc"))
        ));
        let hundred = "%C3%BC".repeat(100);
        assert!(page_query(Some(&format!("starts={hundred}"))).is_ok());
        assert_eq!(
            broken_names(&format!("starts={hundred}a")),
            [("starts", Broken::TooLong(100))]
        );
        assert_eq!(
            page_query(Some("starts=%25_%5C"))
                .unwrap()
                .starts
                .as_deref(),
            Some("%_\\")
        );
    }

    #[test]
    fn bad_percent_encoding_or_utf8_breaks_starts() {
        for raw in ["%zz", "%C3", "%", "%4", "%FF", "a%e2%82"] {
            let query = format!("starts={raw}");
            assert_eq!(
                broken_names(&query),
                [("starts", Broken::BadEncoding)],
                "{query}"
            );
        }
    }

    #[test]
    fn path_integers() {
        assert_eq!(path_integer("0", "contact_id", 0, INT4_MAX), Ok(0));
        assert_eq!(path_integer("%34%30", "n", 0, 40), Ok(40));
        assert!(path_integer("1+1", "n", 0, 40).is_err());
        match path_integer("41", "n", 0, 40) {
            Err(ApiError::Invalid(errors)) => {
                assert_eq!(errors[0].location, Location::Path);
                assert_eq!(errors[0].rule, Broken::Above(40));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decoded_eq_compares_after_decoding() {
        assert!(decoded_eq("types", "types"));
        assert!(decoded_eq("typ%65s", "types"));
        assert!(!decoded_eq("typ%65", "types"));
        assert!(!decoded_eq("typ%65ss", "types"));
        assert!(!decoded_eq("typ%zzs", "types"));
    }
}
