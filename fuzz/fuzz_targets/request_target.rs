//! The request target, arbitrary bytes as path and query: the router and
//! the parameter rules never panic, and agree with a plain reference model
//! of the contract (shared/API.md) written here, independently of src/.

#![no_main]

use bakeoff::error::{ApiError, Broken, Location, ParamError};
use bakeoff::params::{self, INT4_MAX, PageQuery};
use bakeoff::router::{self, Route};
use hyper::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // hyper hands the server a `&str`; any bytes become one here.
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&*text, None),
    };
    check_route(path);
    check_page_query(query);
    // The whole input as a path parameter, too.
    check_path_integer(&text, "contact_id", 0, INT4_MAX);
    check_path_integer(&text, "n", 0, 40);
});

fn check_route(path: &str) {
    let get = router::route(&Method::GET, path);
    // HEAD is answered wherever GET is; other methods get 405 on a known
    // path and 404 elsewhere.
    assert_eq!(router::route(&Method::HEAD, path), get);
    let post = router::route(&Method::POST, path);
    match &get {
        Ok(_) => assert_eq!(post, Err(ApiError::MethodNotAllowed)),
        Err(ApiError::NotFound) => assert_eq!(post, Err(ApiError::NotFound)),
        Err(other) => panic!("route({path:?}) = {other:?}"),
    }
    if let Ok(Route::Contact(raw) | Route::Fibonacci(raw)) = get {
        // The raw parameter is the last segment of the path, non-empty.
        assert!(!raw.is_empty() && !raw.contains('/'), "{path:?} → {raw:?}");
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        assert!(trimmed.ends_with(raw), "{path:?} → {raw:?}");
    }
    // A trailing slash is optional.
    if !path.ends_with('/') {
        let slashed = format!("{path}/");
        assert_eq!(router::route(&Method::GET, &slashed), get, "{path:?}");
    }
    // The routes are the contract's, after percent-decoding the names.
    if let Ok(route) = get {
        let segments: Vec<Vec<u8>> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .map(|s| decode(s, false).unwrap_or_default())
            .collect();
        let names: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let expected: &[&[u8]] = match route {
            Route::Version => &[b"version"],
            Route::Types => &[b"types"],
            Route::Healthz => &[b"healthz"],
            Route::Readyz => &[b"readyz"],
            Route::OpenApi => &[b"openapi.json"],
            Route::Metrics => &[b"metrics"],
            Route::ContactsFetch => &[b"contacts", b"fetch"],
            Route::ContactsFor => &[b"contacts", b"for"],
            Route::Contact(_) => &[b"contacts"],
            Route::Fibonacci(_) => &[b"fibonacci"],
        };
        assert!(names.starts_with(expected), "{path:?} → {route:?}");
    }
}

fn check_page_query(query: Option<&str>) {
    let got = params::page_query(query);
    // The model: the last value of each name wins; each is checked alone.
    let (mut limit, mut offset, mut starts) = (None, None, None);
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(name, true).as_deref() {
            Some(b"limit") => limit = Some(value),
            Some(b"offset") => offset = Some(value),
            Some(b"starts") => starts = Some(value),
            _ => {}
        }
    }
    let limit = limit.map_or(Ok(100), |raw| integer(raw, true, 1, 200));
    let offset = offset.map_or(Ok(0), |raw| integer(raw, true, 0, INT4_MAX));
    let starts = starts.map(text);
    let mut broken: Vec<(&str, Broken)> = Vec::new();
    if let Err(rule) = limit {
        broken.push(("limit", rule));
    }
    if let Err(rule) = offset {
        broken.push(("offset", rule));
    }
    if let Some(Err(rule)) = &starts {
        broken.push(("starts", *rule));
    }
    match got {
        Ok(PageQuery {
            limit: l,
            offset: o,
            starts: s,
        }) => {
            assert!(broken.is_empty(), "{query:?}: accepted, but {broken:?}");
            assert_eq!(Ok(l), limit, "{query:?}");
            assert_eq!(Ok(o), offset, "{query:?}");
            assert_eq!(
                s.as_deref(),
                starts.as_ref().map(|s| s.as_deref().unwrap()),
                "{query:?}"
            );
        }
        Err(ApiError::Invalid(errors)) => {
            let got: Vec<(&str, Broken)> = errors
                .iter()
                .map(
                    |ParamError {
                         location,
                         name,
                         rule,
                     }| {
                        assert_eq!(*location, Location::Query);
                        (*name, *rule)
                    },
                )
                .collect();
            assert_eq!(got.len(), broken.len(), "{query:?}: {got:?} vs {broken:?}");
            for ((name, rule), (expected_name, expected_rule)) in got.iter().zip(&broken) {
                assert_eq!(name, expected_name, "{query:?}");
                assert!(
                    same_rule(*rule, *expected_rule),
                    "{query:?}: {got:?} vs {broken:?}"
                );
            }
        }
        Err(other) => panic!("page_query({query:?}) = {other:?}"),
    }
}

fn check_path_integer(raw: &str, name: &'static str, min: i64, max: i64) {
    let got = params::path_integer(raw, name, min, max);
    match (got, integer(raw, false, min, max)) {
        (Ok(value), Ok(expected)) => {
            assert_eq!(value, expected, "{raw:?}");
            assert!((min..=max).contains(&value));
        }
        (Err(ApiError::Invalid(errors)), Err(rule)) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].location, Location::Path);
            assert_eq!(errors[0].name, name);
            assert!(
                same_rule(errors[0].rule, rule),
                "{raw:?}: {:?} vs {rule:?}",
                errors[0].rule
            );
        }
        (got, expected) => panic!("path_integer({raw:?}) = {got:?}, expected {expected:?}"),
    }
}

/// The same broken rule. The model decodes first, so it names a bad `%`
/// even when a non-digit comes before it (`a%zz`); which of the two the
/// server names then is the wording's business, free in the contract.
fn same_rule(got: Broken, expected: Broken) -> bool {
    got == expected || (expected == Broken::BadEncoding && got == Broken::NotAnInteger)
}

/// Percent-decoding; in a query `+` is a space. `None` for a `%` without
/// two hex digits.
fn decode(raw: &str, query: bool) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The contract's integer: `-?[0-9]+` after decoding, then within bounds.
fn integer(raw: &str, query: bool, min: i64, max: i64) -> Result<i64, Broken> {
    let decoded = decode(raw, query).ok_or(Broken::BadEncoding)?;
    let (negative, digits) = match decoded.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, &decoded[..]),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Broken::NotAnInteger);
    }
    // Leading zeros are fine; a value beyond i64 is just out of range.
    let significant = std::str::from_utf8(digits).unwrap().trim_start_matches('0');
    let magnitude: i128 = if significant.len() > 30 {
        i128::MAX / 2
    } else {
        significant.parse().unwrap_or(0)
    };
    let value = if negative { -magnitude } else { magnitude };
    if value < i128::from(min) {
        Err(Broken::Below(min))
    } else if value > i128::from(max) {
        Err(Broken::Above(max))
    } else {
        Ok(value as i64)
    }
}

/// The contract's `starts`: decoded, UTF-8, 1 to 100 code points.
fn text(raw: &str) -> Result<String, Broken> {
    let decoded = decode(raw, true).ok_or(Broken::BadEncoding)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Broken::BadEncoding)?;
    match decoded.chars().count() {
        0 => Err(Broken::TooShort(1)),
        1..=100 => Ok(decoded),
        _ => Err(Broken::TooLong(100)),
    }
}
