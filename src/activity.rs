//! What a connection is doing, as far as shutdown cares: whether a request
//! is being answered, and whether answers wait to be written. Shared by the
//! connection's socket wrapper (`io`), its service and its task (`server`).
//! And whether the process is draining: told to stop, it still serves for
//! `--shutdown-delay-ms` while `/readyz` fails (see `startup`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set once, when a shutdown signal arrives and a shutdown delay is
/// configured; never cleared. Written once, read per request: the cache
/// line stays shared by every core, so reading it costs no traffic.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// The process is going away: `/readyz` fails from now on, and answers
/// close their connections.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Relaxed);
}

/// Whether [`start_draining`] was called.
#[inline]
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// What the accept loop needs to know of a connection when the server shuts
/// down: whether a request is being answered. Shared by the connection's
/// socket wrapper, its service and its task.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests handed to the service and not yet answered.
    requests: AtomicU32,
    /// Bytes of answers wait to be written: the socket is not taking them,
    /// or they are held for the rest of a pipelined batch.
    unwritten: AtomicBool,
}

impl Activity {
    /// The service took a request.
    #[inline]
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The service answered (or dropped) a request.
    #[inline]
    pub fn request_finished(&self) {
        self.requests.fetch_sub(1, Ordering::Relaxed);
    }

    /// No request is being answered and no answer waits to be written: the
    /// connection is idle, or holds only part of a request head.
    pub fn is_idle(&self) -> bool {
        self.requests.load(Ordering::Relaxed) == 0 && !self.unwritten.load(Ordering::Relaxed)
    }
}

impl Activity {
    /// Whether answers wait to be written.
    #[inline]
    pub fn set_unwritten(&self, unwritten: bool) {
        self.unwritten.store(unwritten, Ordering::Relaxed);
    }
}

/// A request the service is answering: counted in its connection's
/// [`Activity`] from the moment hyper hands it over until the answer is
/// built (or the request is dropped, when the connection goes).
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// Counts a request in.
    pub fn new(activity: &Arc<Activity>) -> InFlight {
        activity.request_started();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}
