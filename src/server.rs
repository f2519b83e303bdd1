//! Sockets, the accept loop, hyper's HTTP/1.1 connections, request dispatch
//! and graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::db::Db;
use crate::error::ApiError;
use crate::handlers::{self, FibPool};
use crate::io::Coalescing;
use crate::log;
use crate::memory;
use crate::metrics::{self, RouteLabel};
use crate::response::Body;
use crate::router::{self, Route};

/// What a request handler can reach. One per runtime (so one per core in
/// the per-core shape), leaked at start: it lives as long as the process,
/// and a `&'static` costs no reference counting per request.
pub struct State {
    /// This runtime's connection pool.
    pub db: Db,
    /// The process-wide limits of `/fibonacci`.
    pub fib: &'static FibPool,
}

/// Knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time a client has to send a request's headers. Default is 10 s.
    /// hyper starts it again whenever a kept-alive connection waits for its
    /// next request, so it is also the idle timeout of keep-alive.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    /// Default is 10 s.
    pub drain_timeout: Duration,
    /// Open connections allowed, shared by every accept loop of the process
    /// (one, or one per core): a permit each. Default is 10000.
    pub connection_slots: Arc<Semaphore>,
}

/// Listen backlog: sized for thousands of connections arriving at once (the
/// kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Opens a listening socket. `reuse_port` lets several per-core listeners
/// share one address, the kernel spreading connections between them.
pub fn bind(address: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Accepts and serves connections until `shutdown` turns true, then stops
/// accepting and gives open connections `drain_timeout` to finish.
pub async fn serve(
    listener: std::net::TcpListener,
    state: &'static State,
    options: HttpOptions,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let mut http = http1::Builder::new();
    // Without a timer, hyper ignores `header_read_timeout`: a client that
    // sends its headers a byte at a time (slowloris) would hold the
    // connection for ever.
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // Not hyper's `pipeline_flush(true)`: while unparsed bytes wait in its
        // read buffer it neither flushes nor caps its write buffer (hyper
        // 1.x). A client that pipelined pages and never read made one
        // connection hold every answer in memory (150 MB from 200 KB of
        // requests, without bound); the answer to a complete request waited
        // for the next, partial one; a parse error's 400/414/431 was never
        // sent. `io::Coalescing` (below) batches pipelined answers instead,
        // within a bounded buffer (tests/reliability.rs checks all three).
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // A permit per open connection, held by the connection's task: past the
    // limit, the loop stops accepting and new connections wait in the
    // kernel's listen backlog (backpressure) instead of running the process
    // out of file descriptors and memory. The permit is taken just after
    // accepting, so a loop holds at most one socket it cannot serve yet, and
    // the per-core loops can share one limit without one of them parking a
    // permit while the waiting connection sits in another's queue. One
    // permit per connection, none per request.
    let slots = options.connection_slots;

    'serving: loop {
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                // The only value ever sent is `true`; a dropped sender means stop too.
                _ = shutdown.changed() => break 'serving,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => break accepted,
                    Err(error) => accept_failed(error).await,
                },
            }
        };
        let permit = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        // Answers are written whole; Nagle's algorithm would only hold them
        // back waiting for an ACK, which stalls pipelined clients.
        let _ = stream.set_nodelay(true);
        let service = service_fn(move |request| handle(request, state, peer));
        let connection = http.serve_connection(TokioIo::new(Coalescing::new(stream)), service);
        let connection = graceful.watch(connection);
        metrics::add_open_connections(1);
        memory::connection_opened();
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
            metrics::add_open_connections(-1);
            drop(permit);
            memory::connection_closed();
        });
    }

    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("bakeoff: drain timeout reached, closing the remaining connections");
    }
    Ok(())
}

/// Running out of file descriptors, or a connection reset before accept,
/// must not end the server: wait a moment, as trusted servers do, and retry.
#[cold]
async fn accept_failed(error: io::Error) {
    // Logged at most once a second: out of descriptors, every retry fails
    // the same way, and a line per retry would flood the log.
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    if log::once_a_second(&LAST_LOGGED) {
        eprintln!("bakeoff: accept failed: {error}");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Answers one request. Never fails: every error becomes its response, and
/// a panic in a handler becomes a 500 for that request only. Each answer is
/// counted in the metrics, and logged when the access log is on.
async fn handle(
    request: Request<Incoming>,
    state: &'static State,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let counted = metrics::enabled() || ACCESS_LOG.load(Ordering::Relaxed);
    let started = counted.then(Instant::now);
    let (label, response) = match router::route(request.method(), request.uri().path()) {
        Ok(route) => {
            let answer = AssertUnwindSafe(dispatch(route, request.uri().query(), state))
                .catch_unwind()
                .await;
            let response = match answer {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => error.into_response(),
                Err(_panic) => ApiError::Internal.into_response(),
            };
            (RouteLabel::from(route), response)
        }
        Err(error) => (RouteLabel::Unmatched, error.into_response()),
    };
    if let Some(started) = started {
        let elapsed = started.elapsed();
        if metrics::enabled() {
            metrics::record_request(label, response.status().as_u16(), elapsed);
        }
        if ACCESS_LOG.load(Ordering::Relaxed) {
            log_access(&request, &response, peer, elapsed);
        }
    }
    Ok(response)
}

async fn dispatch(
    route: Route<'_>,
    query: Option<&str>,
    state: &'static State,
) -> Result<Response<Body>, ApiError> {
    let db = &state.db;
    match route {
        Route::Version => Ok(handlers::version()),
        Route::Types => db.bounded(handlers::types(db)).await,
        Route::ContactsFetch => db.bounded(handlers::contacts_fetch(db, query)).await,
        Route::ContactsFor => db.bounded(handlers::contacts_for(db, query)).await,
        Route::Contact(raw_id) => db.bounded(handlers::contact(db, raw_id)).await,
        Route::Fibonacci(raw_n) => handlers::fibonacci(state.fib, raw_n).await,
        Route::Healthz => Ok(handlers::healthz()),
        Route::Readyz => db.bounded(handlers::readyz(db)).await,
        Route::OpenApi => Ok(handlers::openapi()),
        Route::Metrics => Ok(handlers::metrics()),
    }
}

/// Whether each request gets an access log line. Off by default: one relaxed
/// load per request when off.
static ACCESS_LOG: AtomicBool = AtomicBool::new(false);

/// Turns the access log on (`--access-log`).
pub fn enable_access_log() {
    ACCESS_LOG.store(true, Ordering::Relaxed);
}

/// One line per request on stderr: peer, request line, status, body bytes,
/// duration. Written with one `write` so lines from threads never mix.
#[cold]
fn log_access(
    request: &Request<Incoming>,
    response: &Response<Body>,
    peer: SocketAddr,
    elapsed: Duration,
) {
    use std::io::Write;
    let line = format!(
        "{peer} \"{} {} {:?}\" {} {} {:.6}\n",
        request.method(),
        request.uri(),
        request.version(),
        response.status().as_u16(),
        hyper::body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0),
        elapsed.as_secs_f64(),
    );
    let _ = io::stderr().lock().write_all(line.as_bytes());
}
