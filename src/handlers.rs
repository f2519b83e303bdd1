//! From a request to its response: [`handle`] routes it, `dispatch` calls
//! the endpoint's function, and each endpoint turns checked input and the
//! [`State`] into a response or an [`ApiError`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{FutureExt, TryStreamExt, pin_mut};
use hyper::body::Incoming;
use hyper::header::IF_NONE_MATCH;
use hyper::{Request, Response};
use tokio_postgres::types::ToSql;

use crate::activity;
use crate::compute::ComputePool;
use crate::db::{self, Database, Query};
use crate::error::ApiError;
use crate::json::write_int;
use crate::log;
use crate::metrics;
use crate::params::{self, INT4_MAX, PageQuery};
use crate::response::{self, Body};
use crate::router::{self, Route, RouteLabel};
use crate::rows::{self, CONTACT_JSON_SIZE, TYPE_JSON_SIZE};

/// What a request handler can reach. One per runtime (so one per core in
/// the per-core shape), leaked at start: it lives as long as the process,
/// and a `&'static` costs no reference counting per request.
pub struct State {
    /// This runtime's database pools.
    pub db: Database,
    /// The process's `/fibonacci` threads and their admission limit.
    pub fib: &'static ComputePool,
}

/// Answers one request. Never fails: every error becomes its response, and
/// a panic in a handler becomes a 500 for that request only. Each answer is
/// counted in the metrics, and logged when the access log is on.
pub async fn handle(
    request: Request<Incoming>,
    state: &'static State,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let timed = metrics::enabled() || log::access_log_enabled();
    let started = timed.then(Instant::now);
    let routed = router::check_host(request.version(), request.headers())
        .and_then(|()| router::route(request.method(), request.uri().path()));
    let (label, response) = match routed {
        Ok(route) => {
            let answer = AssertUnwindSafe(dispatch(route, request.uri().query(), state))
                .catch_unwind()
                .await;
            let response = match answer {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => error.into_response(),
                Err(_panic) => ApiError::Internal.into_response(),
            };
            (route.label(), response)
        }
        Err(error) => (RouteLabel::Unmatched, error.into_response()),
    };
    let response = precondition(&request, response);
    if let Some(started) = started {
        let elapsed = started.elapsed();
        if metrics::enabled() {
            metrics::record_request(label, response.status().as_u16(), elapsed);
        }
        if log::access_log_enabled() {
            log::access(&request, &response, peer, elapsed);
        }
    }
    Ok(response)
}

/// RFC 9110 §13.1.2: `If-None-Match: *` on a GET or HEAD of a resource that
/// exists is false, and answered 304 without a body. Evaluated on the answer
/// (as §13.2.1 says, preconditions are ignored unless it is a 2xx); the
/// server has no entity tags, so no other `If-None-Match` can match.
#[inline]
fn precondition(request: &Request<Incoming>, response: Response<Body>) -> Response<Body> {
    let wildcard = request
        .headers()
        .get(IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes().trim_ascii() == b"*");
    if wildcard && response.status().is_success() {
        return response::not_modified();
    }
    response
}

/// Route to handler. Database work is bounded by the database's deadline.
async fn dispatch(
    route: Route<'_>,
    query: Option<&str>,
    state: &'static State,
) -> Result<Response<Body>, ApiError> {
    let db = &state.db;
    match route {
        Route::Version => Ok(version()),
        Route::Types => db.bounded(types(db)).await,
        Route::ContactsFetch => db.bounded(contacts_fetch(db, query)).await,
        Route::ContactsFor => db.bounded(contacts_for(db, query)).await,
        Route::Contact(raw_id) => db.bounded(contact(db, raw_id)).await,
        Route::Fibonacci(raw_n) => fibonacci(state.fib, raw_n).await,
        Route::Healthz => Ok(healthz()),
        Route::Readyz => db.bounded(readyz(db)).await,
        Route::OpenApi => Ok(openapi()),
        Route::Metrics => Ok(metrics()),
    }
}

/// `{"version":"X.Y.Z"}`, fixed at build time.
pub const VERSION_BODY: &str = concat!(r#"{"version":""#, env!("CARGO_PKG_VERSION"), r#""}"#);

/// `GET /version`: no database, no allocation for the body.
#[inline]
pub fn version() -> Response<Body> {
    response::ok(Bytes::from_static(VERSION_BODY.as_bytes()))
}

/// `GET /healthz`: the process is alive. Deliberately no database access.
pub fn healthz() -> Response<Body> {
    response::ok(Bytes::from_static(br#"{"status":"ok"}"#))
}

/// `GET /openapi.json`: the contract as an OpenAPI 3.1 document, embedded
/// at build time (`docs/openapi.json`, compacted by `build.rs`).
pub fn openapi() -> Response<Body> {
    response::ok(Bytes::from_static(
        include_str!(concat!(env!("OUT_DIR"), "/openapi.json")).as_bytes(),
    ))
}

/// `GET /metrics`: Prometheus text. Rendering allocates; scrapes are rare.
pub fn metrics() -> Response<Body> {
    let mut response = response::ok(metrics::render_all());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// `GET /readyz`: a pooled connection answers a round trip, and so does one
/// of the connections for the `starts` pages where they have their own.
/// 503 at once while the process drains, so that a load balancer stops
/// sending it new requests before it stops accepting them.
pub async fn readyz(db: &Database) -> Result<Response<Body>, ApiError> {
    if activity::is_draining() {
        return Err(ApiError::Unavailable);
    }
    for pool in db.pools() {
        // The least loaded connection: readiness is about the pool, and a
        // probe should not queue behind a batch.
        let connection = pool.connection(1).await?;
        connection
            .client
            .simple_query("")
            .await
            .map_err(db::query_failed)?;
    }
    Ok(response::ok(Bytes::from_static(br#"{"status":"ready"}"#)))
}

/// `GET /types`: every contact type, read from the database each time.
pub async fn types(db: &Database) -> Result<Response<Body>, ApiError> {
    let connection = db.connection_for(Query::Types).await?;
    let rows = connection
        .query(Query::Types, &[])
        .await
        .map_err(db::query_failed)?;
    drop(connection);
    let mut out = Vec::with_capacity(2 + rows.len() * TYPE_JSON_SIZE);
    out.push(b'[');
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        rows::write_type(&mut out, row)?;
    }
    out.push(b']');
    Ok(response::ok(out))
}

/// `GET /contacts/{contact_id}`.
pub async fn contact(db: &Database, raw_id: &str) -> Result<Response<Body>, ApiError> {
    let id = params::path_integer(raw_id, "contact_id", 0, INT4_MAX)? as i32;
    let connection = db.connection_for(Query::Contact).await?;
    let row = connection
        .query_opt(Query::Contact, &[&id])
        .await
        .map_err(db::query_failed)?;
    drop(connection);
    let row = row.ok_or(ApiError::ContactNotFound)?;
    let mut out = Vec::with_capacity(CONTACT_JSON_SIZE);
    rows::write_contact(&mut out, &row)?;
    Ok(response::ok(out))
}

/// `GET /contacts/fetch`: the page's rows are collected all at once
/// (`query`, like asyncpg's `connection.fetch`), then written.
pub async fn contacts_fetch(
    db: &Database,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let page = params::page_query(query)?;
    if names_nothing(&page) {
        return Ok(response::ok(Bytes::from_static(b"[]")));
    }
    let parameters = PageParameters::new(&page);
    let connection = db.connection_for(parameters.query).await?;
    let rows = connection
        .query(parameters.query, parameters.as_slice())
        .await
        .map_err(db::query_failed)?;
    drop(connection);
    let mut out = Vec::with_capacity(2 + rows.len() * CONTACT_JSON_SIZE);
    out.push(b'[');
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        rows::write_contact(&mut out, row)?;
    }
    out.push(b']');
    Ok(response::ok(out))
}

/// `GET /contacts/for`: the same page, consumed as a stream (`query_raw`,
/// like an `async for` over a cursor): each contact is written as its row
/// arrives. The body is the same, byte for byte, as `/contacts/fetch`.
pub async fn contacts_for(db: &Database, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let page = params::page_query(query)?;
    if names_nothing(&page) {
        return Ok(response::ok(Bytes::from_static(b"[]")));
    }
    let parameters = PageParameters::new(&page);
    let connection = db.connection_for(parameters.query).await?;
    let stream = connection
        .query_raw(parameters.query, parameters.as_slice())
        .await
        .map_err(db::query_failed)?;
    pin_mut!(stream);
    let mut out = Vec::with_capacity(2 + page.limit as usize * CONTACT_JSON_SIZE);
    out.push(b'[');
    let mut first = true;
    while let Some(row) = stream.try_next().await.map_err(db::query_failed)? {
        if !first {
            out.push(b',');
        }
        rows::write_contact(&mut out, &row)?;
        first = false;
    }
    drop(connection);
    out.push(b']');
    Ok(response::ok(out))
}

/// The parameters of a page, in the order of `sql/page.sql` and
/// `sql/page_starts.sql`; `starts` picks the statement.
struct PageParameters<'a> {
    values: [&'a (dyn ToSql + Sync); 3],
    query: Query,
}

impl<'a> PageParameters<'a> {
    fn new(page: &'a PageQuery) -> Self {
        PageParameters {
            values: [&page.limit, &page.offset, &page.starts],
            query: match page.starts {
                None => Query::Page,
                Some(_) => Query::PageStarts,
            },
        }
    }

    fn as_slice(&self) -> &[&'a (dyn ToSql + Sync)] {
        match self.query {
            Query::PageStarts => &self.values,
            _ => &self.values[..2],
        }
    }
}

/// A `starts` holding U+0000 can match no row: PostgreSQL text cannot hold
/// that character, so no last name begins with it, and PostgreSQL would
/// refuse the parameter. The page is empty without asking.
fn names_nothing(page: &PageQuery) -> bool {
    page.starts
        .as_deref()
        .is_some_and(|starts| starts.contains('\0'))
}

/// `GET /fibonacci/{n}`: the naive recursion, on the compute pool's threads
/// so that it never stalls the I/O threads.
pub async fn fibonacci(pool: &ComputePool, raw_n: &str) -> Result<Response<Body>, ApiError> {
    let n = params::path_integer(raw_n, "n", 0, 40)? as u32;
    let result = pool.fib(n).await?;
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(br#"{"result":"#);
    write_int(&mut out, result);
    out.push(b'}');
    Ok(response::ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_body_is_the_package_version() {
        assert_eq!(
            VERSION_BODY,
            format!("{{\"version\":\"{}\"}}", env!("CARGO_PKG_VERSION"))
        );
    }
}
