//! Method and path to a [`Route`], by matching bytes by hand: six routes do
//! not need a router crate, and this way a request costs a few comparisons
//! and no allocation; and the `Host` rule every HTTP/1.1 request must keep.
//! Pure: no I/O, so it is unit-tested here and fuzzed.

use hyper::header::{HOST, HeaderMap};
use hyper::{Method, Version};

use crate::error::ApiError;
use crate::params::decoded_eq;

/// An endpoint of the contract, with its raw (still percent-encoded) path
/// parameter where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/version`
    Version,
    /// `/types`
    Types,
    /// `/contacts/fetch`
    ContactsFetch,
    /// `/contacts/for`
    ContactsFor,
    /// `/contacts/{contact_id}`
    Contact(&'a str),
    /// `/fibonacci/{n}`
    Fibonacci(&'a str),
    /// `/healthz`: the process is alive (no database).
    Healthz,
    /// `/readyz`: a pooled connection answers.
    Readyz,
    /// `/openapi.json`: the contract as an OpenAPI 3.1 document.
    OpenApi,
    /// `/metrics`: Prometheus text.
    Metrics,
}

/// What `/metrics` calls a route: one per endpoint, plus the unmatched.
/// The one list of routes: [`Route::label`] maps each route here, and
/// [`RouteLabel::template`] gives its path as the contract writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    Version,
    Types,
    ContactsFetch,
    ContactsFor,
    Contact,
    Fibonacci,
    Healthz,
    Readyz,
    OpenApi,
    Metrics,
    /// No route matched (404), or a method other than GET or HEAD (405).
    Unmatched,
}

impl RouteLabel {
    /// Every label, in declaration order (its index is `label as usize`).
    pub const ALL: [RouteLabel; 11] = [
        RouteLabel::Version,
        RouteLabel::Types,
        RouteLabel::ContactsFetch,
        RouteLabel::ContactsFor,
        RouteLabel::Contact,
        RouteLabel::Fibonacci,
        RouteLabel::Healthz,
        RouteLabel::Readyz,
        RouteLabel::OpenApi,
        RouteLabel::Metrics,
        RouteLabel::Unmatched,
    ];

    /// The route's path template, as the contract writes it.
    pub fn template(self) -> &'static str {
        match self {
            RouteLabel::Version => "/version",
            RouteLabel::Types => "/types",
            RouteLabel::ContactsFetch => "/contacts/fetch",
            RouteLabel::ContactsFor => "/contacts/for",
            RouteLabel::Contact => "/contacts/{contact_id}",
            RouteLabel::Fibonacci => "/fibonacci/{n}",
            RouteLabel::Healthz => "/healthz",
            RouteLabel::Readyz => "/readyz",
            RouteLabel::OpenApi => "/openapi.json",
            RouteLabel::Metrics => "/metrics",
            RouteLabel::Unmatched => "unmatched",
        }
    }
}

impl Route<'_> {
    /// The route's label for `/metrics`.
    #[inline]
    pub fn label(&self) -> RouteLabel {
        match self {
            Route::Version => RouteLabel::Version,
            Route::Types => RouteLabel::Types,
            Route::ContactsFetch => RouteLabel::ContactsFetch,
            Route::ContactsFor => RouteLabel::ContactsFor,
            Route::Contact(_) => RouteLabel::Contact,
            Route::Fibonacci(_) => RouteLabel::Fibonacci,
            Route::Healthz => RouteLabel::Healthz,
            Route::Readyz => RouteLabel::Readyz,
            Route::OpenApi => RouteLabel::OpenApi,
            Route::Metrics => RouteLabel::Metrics,
        }
    }
}

/// Chooses the route for a request.
///
/// A trailing slash is optional: `/types` and `/types/` are the same route,
/// with no redirect. Segments are compared after percent-decoding, as
/// Starlette does (`/ver%73ion` is `/version`). A known path with a method
/// other than GET or HEAD is a 405; an unknown path is a 404 whatever the
/// method.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let route = match_path(path).ok_or(ApiError::NotFound)?;
    if method == Method::GET || method == Method::HEAD {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a
/// `Host`, and to any request with more than one `Host` line or an invalid
/// one. An empty `Host` is valid (a target URI without an authority).
pub fn check_host(version: Version, headers: &HeaderMap) -> Result<(), ApiError> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if valid_host(host.as_bytes()) => Ok(()),
        (None, _) if version != Version::HTTP_11 => Ok(()),
        _ => Err(ApiError::BadRequest),
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name or
/// IPv4 address of unreserved, percent-encoded and sub-delim characters, or
/// an IP literal in brackets; then an optional port of digits.
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&byte| byte == b']') {
            Some(end) => (&value[1..end], &value[end + 1..]),
            None => return false,
        },
        _ => match value.iter().position(|&byte| byte == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        },
    };
    let literal = value.first() == Some(&b'[');
    let host_ok = host.iter().all(|&byte| {
        byte.is_ascii_alphanumeric()
            || b"-._~%!$&'()*+,;=".contains(&byte)
            || (literal && byte == b':')
    }) && !(literal && host.is_empty());
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

fn match_path(path: &str) -> Option<Route<'_>> {
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    match rest {
        None => single_segment(first),
        Some(second) if second.is_empty() || second.contains('/') => None,
        Some(second) => {
            if decoded_eq(first, "contacts") {
                Some(if decoded_eq(second, "fetch") {
                    Route::ContactsFetch
                } else if decoded_eq(second, "for") {
                    Route::ContactsFor
                } else {
                    Route::Contact(second)
                })
            } else if decoded_eq(first, "fibonacci") {
                Some(Route::Fibonacci(second))
            } else {
                None
            }
        }
    }
}

fn single_segment(segment: &str) -> Option<Route<'_>> {
    // The common spellings first, by plain comparison.
    match segment {
        "version" => return Some(Route::Version),
        "types" => return Some(Route::Types),
        _ => {}
    }
    [
        ("version", Route::Version),
        ("types", Route::Types),
        ("healthz", Route::Healthz),
        ("readyz", Route::Readyz),
        ("openapi.json", Route::OpenApi),
        ("metrics", Route::Metrics),
    ]
    .into_iter()
    .find(|(name, _)| decoded_eq(segment, name))
    .map(|(_, route)| route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Route<'_>, ApiError> {
        route(&Method::GET, path)
    }

    #[test]
    fn every_route_with_and_without_trailing_slash() {
        for (path, expected) in [
            ("/version", Route::Version),
            ("/types", Route::Types),
            ("/contacts/fetch", Route::ContactsFetch),
            ("/contacts/for", Route::ContactsFor),
            ("/contacts/17", Route::Contact("17")),
            ("/fibonacci/25", Route::Fibonacci("25")),
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/openapi.json", Route::OpenApi),
            ("/metrics", Route::Metrics),
        ] {
            assert_eq!(get(path), Ok(expected), "{path}");
            let slashed = format!("{path}/");
            assert_eq!(get(&slashed), Ok(expected), "{slashed}");
        }
    }

    #[test]
    fn labels_are_listed_in_declaration_order_and_templates_route_to_them() {
        for (index, label) in RouteLabel::ALL.iter().enumerate() {
            assert_eq!(*label as usize, index);
        }
        for label in RouteLabel::ALL {
            let path = label
                .template()
                .replace("{contact_id}", "7")
                .replace("{n}", "7");
            match get(&path) {
                Ok(route) => assert_eq!(route.label(), label, "{path}"),
                Err(_) => assert_eq!(label, RouteLabel::Unmatched, "{path}"),
            }
        }
    }

    #[test]
    fn an_http_1_1_request_needs_exactly_one_valid_host() {
        let headers = |values: &[&'static str]| {
            let mut map = HeaderMap::new();
            for value in values {
                map.append(HOST, hyper::header::HeaderValue::from_static(value));
            }
            map
        };
        for valid in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:80",
            "[::1]:8000",
            "[::1]",
            "example.com",
            "",
        ] {
            assert_eq!(
                check_host(Version::HTTP_11, &headers(&[valid])),
                Ok(()),
                "{valid:?}"
            );
        }
        for invalid in [
            "user@localhost",
            "localhost/path",
            "localhost, other.example.com",
            "localhost:80x",
            "local host",
            "[::1",
        ] {
            assert_eq!(
                check_host(Version::HTTP_11, &headers(&[invalid])),
                Err(ApiError::BadRequest),
                "{invalid:?}"
            );
        }
        assert_eq!(
            check_host(Version::HTTP_11, &headers(&[])),
            Err(ApiError::BadRequest)
        );
        assert_eq!(check_host(Version::HTTP_10, &headers(&[])), Ok(()));
        assert_eq!(
            check_host(Version::HTTP_10, &headers(&["a", "a"])),
            Err(ApiError::BadRequest)
        );
    }

    #[test]
    fn path_parameters_stay_raw() {
        assert_eq!(get("/contacts/-1"), Ok(Route::Contact("-1")));
        assert_eq!(get("/contacts/%31"), Ok(Route::Contact("%31")));
        assert_eq!(get("/fibonacci/abc/"), Ok(Route::Fibonacci("abc")));
    }

    #[test]
    fn percent_encoded_names_match() {
        assert_eq!(get("/ver%73ion"), Ok(Route::Version));
        assert_eq!(get("/contacts/%66etch"), Ok(Route::ContactsFetch));
        assert_eq!(get("/%63ontacts/for"), Ok(Route::ContactsFor));
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "",
            "/",
            "//",
            "/typesx",
            "/type",
            "/types//",
            "//types",
            "/contacts",
            "/contacts/",
            "/contacts//",
            "/contacts/1/x",
            "/fibonacci",
            "/fibonacci/",
            "/Version",
            "/ver%zzsion",
            "/version%00",
            "*",
        ] {
            assert_eq!(get(path), Err(ApiError::NotFound), "{path:?}");
        }
    }

    #[test]
    fn head_is_allowed_and_other_methods_are_not() {
        assert_eq!(route(&Method::HEAD, "/types"), Ok(Route::Types));
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            assert_eq!(
                route(&method, "/contacts/3"),
                Err(ApiError::MethodNotAllowed)
            );
        }
        assert_eq!(route(&Method::POST, "/nope"), Err(ApiError::NotFound));
    }
}
