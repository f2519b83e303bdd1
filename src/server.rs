//! Sockets, the accept loop, hyper's HTTP/1.1 connections and graceful
//! shutdown. A request goes from here to [`handlers::handle`] and never
//! comes back.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::activity::{self, Activity, InFlight};
use crate::handlers::{self, State};
use crate::io::{Coalescing, Limits};
use crate::log;
use crate::memory;
use crate::metrics;

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
    /// The head bound and the write timeout. Defaults are 16 KB and 30 s.
    pub limits: Limits,
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

/// Accepts and serves connections until `shutdown` turns true. Then it stops
/// accepting, closes at once every connection with no request in flight
/// (idle keep-alive and unfinished heads alike), lets the others finish
/// their requests within `drain_timeout`, and returns as soon as the last
/// one is answered.
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
        // A backstop only: `io::Coalescing` refuses a head past the bound
        // before hyper's buffer gets there, with a lingering close.
        .max_buf_size(2 * options.limits.max_head_bytes.max(8192))
        // Not hyper's `pipeline_flush(true)`: while unparsed bytes wait in its
        // read buffer it neither flushes nor caps its write buffer (hyper
        // 1.x). A client that pipelined pages and never read made one
        // connection hold every answer in memory (150 MB from 200 KB of
        // requests, without bound). `io::Coalescing` batches pipelined
        // answers instead, within a bounded buffer.
        .keep_alive(true);
    // A permit per open connection, held by the connection's task: past the
    // limit, the loop stops accepting and new connections wait in the
    // kernel's listen backlog (backpressure) instead of running the process
    // out of file descriptors and memory. The permit is taken just after
    // accepting, so a loop holds at most one socket it cannot serve yet, and
    // the per-core loops can share one limit. One permit per connection,
    // none per request.
    let slots = options.connection_slots;
    let mut connections = JoinSet::new();
    // Told to each of this loop's connections when the server stops. Its
    // own channel, not `shutdown`: a connection's task polls it on every
    // wake-up, which takes the channel's lock, and one channel per loop
    // keeps that lock on this loop's core.
    let (closing, closed) = watch::channel(false);

    'serving: loop {
        // Finished connections are reaped as the loop goes, so the set
        // holds only live ones.
        while connections.try_join_next().is_some() {}
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
        let activity = Arc::new(Activity::default());
        let service = {
            let activity = Arc::clone(&activity);
            service_fn(move |request| {
                let in_flight = InFlight::new(&activity);
                async move {
                    let mut response = handlers::handle(request, state, peer).await;
                    drop(in_flight);
                    if activity::is_draining()
                        && let Ok(response) = &mut response
                    {
                        close_after(response);
                    }
                    response
                }
            })
        };
        let socket = Coalescing::new(stream, options.limits, Arc::clone(&activity));
        let connection = http.serve_connection(TokioIo::new(socket), service);
        let mut stopping = closed.clone();
        metrics::add_open_connections(1);
        metrics::count(metrics::Counter::ConnectionsAccepted, 1);
        memory::connection_opened();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                // A client that goes away mid-request is its own business.
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    // No keep-alive after the answer in progress, if any.
                    connection.as_mut().graceful_shutdown();
                    // One more turn, so that a request already read is
                    // seen as in flight, then close the idle at once.
                    let finished = futures_util::poll!(connection.as_mut()).is_ready();
                    if !finished && !activity.is_idle() {
                        let _ = connection.await;
                    }
                }
            }
            metrics::add_open_connections(-1);
            drop(permit);
            memory::connection_closed();
        });
    }

    drop(listener);
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.drain_timeout, drained)
        .await
        .is_err()
    {
        eprintln!("bakeoff: drain timeout reached, closing the remaining connections");
        connections.shutdown().await;
    }
    Ok(())
}

/// While the process drains (`--shutdown-delay-ms`), every answer asks its
/// client to close the connection after it, and hyper closes it once the
/// answer is written.
///
/// Why: a load balancer keeps idle keep-alive connections to its targets
/// and may reuse one at any moment. If the server closed them only when it
/// stops accepting, a request sent on one just as it closes is lost (a 502,
/// or a retry the balancer may not make for a non-idempotent method). Closed
/// right after an answer, with `Connection: close`, no request can be in
/// the way: the client knows not to reuse the connection and opens a new
/// one, which the balancer, having seen `/readyz` fail, sends to another
/// instance. The cost is one TCP handshake per request during the delay.
#[cold]
fn close_after(response: &mut hyper::Response<crate::response::Body>) {
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
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
