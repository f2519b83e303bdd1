//! Response building: one concrete body type and static header values.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// The one body type of every response: a complete buffer. hyper writes
/// `Content-Length` from it, and drops it for `HEAD`.
pub type Body = Full<Bytes>;

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with the given status.
#[inline]
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON.clone());
    response
}

/// A 200 JSON response.
#[inline]
pub fn ok(body: impl Into<Bytes>) -> Response<Body> {
    json(StatusCode::OK, body)
}

/// A 304 Not Modified: no body, no `Content-Type`.
#[cold]
pub fn not_modified() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response
}
