//! Logging to stderr: throttled where a fault repeats at request rate, and
//! the access log.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::response::Body;

/// One line a second at most for each call site: `last` is that site's
/// static. A database outage under load, or an accept loop out of file
/// descriptors, fails the same way thousands of times a second, and a line
/// each would flood the log.
pub fn once_a_second(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    last.swap(now, Ordering::Relaxed) != now
}

/// Whether each request gets an access log line. Off by default: one relaxed
/// load per request when off.
static ACCESS_LOG: AtomicBool = AtomicBool::new(false);

/// Turns the access log on (`--access-log`).
pub fn enable_access_log() {
    ACCESS_LOG.store(true, Ordering::Relaxed);
}

/// Whether the access log is on.
#[inline]
pub fn access_log_enabled() -> bool {
    ACCESS_LOG.load(Ordering::Relaxed)
}

/// One line per request on stderr: peer, request line, status, body bytes,
/// duration. Written with one `write` so lines from threads never mix.
/// Costs `version` about 0.69× and `types` 0.89× when on
/// (docs/PERFORMANCE.md), hence off by default.
#[cold]
pub fn access(
    request: &Request<Incoming>,
    response: &Response<Body>,
    peer: SocketAddr,
    elapsed: Duration,
) {
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
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
