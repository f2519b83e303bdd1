//! Method and path to a [`Route`], by matching bytes by hand: six routes do
//! not need a router crate, and this way a request costs a few comparisons
//! and no allocation. Pure: no I/O, so it is unit-tested here and fuzzed.

use hyper::Method;

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
