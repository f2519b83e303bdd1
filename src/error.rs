//! The closed set of errors a request can end in, and their FastAPI-shaped
//! answers. No error's `Display` ever reaches a body: database errors carry
//! SQL and connection details, so they are logged (without secrets) and
//! answered with a fixed text.

use std::fmt::Write;

use hyper::header::{ALLOW, CONNECTION, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::json;
use crate::response::{self, Body};

/// Why a request could not be answered with its resource.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    /// An HTTP/1.1 request without exactly one valid `Host` (RFC 9112
    /// §3.2): 400, and the connection closed.
    BadRequest,
    /// No route has this path: 404.
    NotFound,
    /// `/contacts/{id}` names no contact: 404.
    ContactNotFound,
    /// A known path with a method other than GET or HEAD: 405.
    MethodNotAllowed,
    /// Parameters that break their rules, one entry each: 422.
    Invalid(Vec<ParamError>),
    /// The database is down or no pooled connection freed up in time: 503.
    Unavailable,
    /// A bug: a handler panicked. The connection survives; the client gets 500.
    Internal,
}

/// Where a parameter was found, the first element of FastAPI's `loc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Query,
    Path,
}

/// One parameter that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// `query` or `path`.
    pub location: Location,
    /// The parameter's name as the contract spells it.
    pub name: &'static str,
    /// Which rule it breaks.
    pub rule: Broken,
}

/// The rule a parameter breaks, with the wording pydantic v2 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Not `-?[0-9]+`.
    NotAnInteger,
    /// Below the minimum.
    Below(i64),
    /// Above the maximum.
    Above(i64),
    /// A `%` without two hex digits, or decoded bytes that are not UTF-8.
    BadEncoding,
    /// Fewer code points than allowed.
    TooShort(usize),
    /// More code points than allowed.
    TooLong(usize),
}

static ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
static RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");
static CLOSE: HeaderValue = HeaderValue::from_static("close");

impl ApiError {
    /// The response for this error.
    #[cold]
    pub fn into_response(self) -> Response<Body> {
        match self {
            ApiError::BadRequest => {
                let mut response =
                    response::json(StatusCode::BAD_REQUEST, &br#"{"detail":"Bad Request"}"#[..]);
                response.headers_mut().insert(CONNECTION, CLOSE.clone());
                response
            }
            ApiError::NotFound => {
                response::json(StatusCode::NOT_FOUND, &br#"{"detail":"Not Found"}"#[..])
            }
            ApiError::ContactNotFound => response::json(
                StatusCode::NOT_FOUND,
                &br#"{"detail":"Contact not found"}"#[..],
            ),
            ApiError::MethodNotAllowed => {
                let mut response = response::json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &br#"{"detail":"Method Not Allowed"}"#[..],
                );
                response.headers_mut().insert(ALLOW, ALLOW_GET_HEAD.clone());
                response
            }
            ApiError::Invalid(errors) => {
                response::json(StatusCode::UNPROCESSABLE_ENTITY, invalid_body(&errors))
            }
            ApiError::Unavailable => {
                let mut response = response::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &br#"{"detail":"Service Unavailable"}"#[..],
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, RETRY_AFTER_SECONDS.clone());
                response
            }
            ApiError::Internal => response::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &br#"{"detail":"Internal Server Error"}"#[..],
            ),
        }
    }
}

/// `{"detail":[{"loc":["query","limit"],"msg":"…","type":"…"},…]}`.
fn invalid_body(errors: &[ParamError]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 * errors.len() + 16);
    out.extend_from_slice(br#"{"detail":["#);
    for (index, error) in errors.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let location = match error.location {
            Location::Query => "query",
            Location::Path => "path",
        };
        let (message, kind) = error.rule.message_and_type();
        out.extend_from_slice(br#"{"loc":["#);
        json::write_str(&mut out, location.as_bytes());
        out.push(b',');
        json::write_str(&mut out, error.name.as_bytes());
        out.extend_from_slice(br#"],"msg":"#);
        json::write_str(&mut out, message.as_bytes());
        out.extend_from_slice(br#","type":"#);
        json::write_str(&mut out, kind.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

impl Broken {
    /// pydantic v2's message and error type for this rule.
    fn message_and_type(self) -> (String, &'static str) {
        let mut message = String::new();
        let kind = match self {
            Broken::NotAnInteger => {
                message.push_str(
                    "Input should be a valid integer, unable to parse string as an integer",
                );
                "int_parsing"
            }
            Broken::Below(min) => {
                let _ = write!(message, "Input should be greater than or equal to {min}");
                "greater_than_equal"
            }
            Broken::Above(max) => {
                let _ = write!(message, "Input should be less than or equal to {max}");
                "less_than_equal"
            }
            Broken::BadEncoding => {
                message.push_str("Input should be valid percent-encoded UTF-8");
                "string_unicode"
            }
            Broken::TooShort(min) => {
                let _ = write!(message, "String should have at least {min} character");
                if min != 1 {
                    message.push('s');
                }
                "string_too_short"
            }
            Broken::TooLong(max) => {
                let _ = write!(message, "String should have at most {max} characters");
                "string_too_long"
            }
        };
        (message, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_body_has_fastapi_shape() {
        let body = invalid_body(&[
            ParamError {
                location: Location::Query,
                name: "limit",
                rule: Broken::Below(1),
            },
            ParamError {
                location: Location::Query,
                name: "starts",
                rule: Broken::BadEncoding,
            },
        ]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let detail = parsed["detail"].as_array().unwrap();
        assert_eq!(detail.len(), 2);
        assert_eq!(detail[0]["loc"], serde_json::json!(["query", "limit"]));
        assert_eq!(
            detail[0]["msg"],
            "Input should be greater than or equal to 1"
        );
        assert_eq!(detail[0]["type"], "greater_than_equal");
        assert_eq!(detail[1]["loc"], serde_json::json!(["query", "starts"]));
        assert!(body.starts_with(br#"{"detail":[{"loc":["query","limit"],"msg":"#));
    }
}
