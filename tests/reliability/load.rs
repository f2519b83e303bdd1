//! A steady load of clients, each request recorded as a timed sample.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};

use crate::helpers::try_connect;

/// One request the load generator made.
pub(crate) struct Sample {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) target: &'static str,
    /// A database endpoint (503 while the database is down).
    pub(crate) db: bool,
    /// The response, or why there was none (a hang shows as a timeout).
    pub(crate) result: Result<Response, String>,
}

impl Sample {
    pub(crate) fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|response| response.status)
    }

    pub(crate) fn latency(&self) -> Duration {
        self.end - self.start
    }

    pub(crate) fn describe(&self) -> String {
        match &self.result {
            Ok(response) => format!("{} → {response}", self.target),
            Err(error) => format!("{} → no response: {error}", self.target),
        }
    }
}

/// What the load generator asks for: database endpoints and the two that
/// need no database.
const LOAD_TARGETS: &[(&str, bool)] = &[
    ("/types", true),
    ("/version", false),
    ("/contacts/7", true),
    ("/contacts/fetch?limit=5&offset=10", true),
    ("/fibonacci/12", false),
    ("/contacts/for?limit=5&starts=m", true),
    ("/readyz", true),
    ("/healthz", false),
];

/// Closed-loop clients on keep-alive connections (a new connection after
/// any error), each request timed; stopped by [`Load::finish`].
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// `clients` threads; each pauses `pause` between requests. Bounded:
    /// every thread also stops after 60 s or 100,000 requests.
    pub(crate) fn start(addr: SocketAddr, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|index| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || load_client(addr, index, pause, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients and returns every sample, in start order.
    pub(crate) fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples: Vec<Sample> = self
            .threads
            .into_iter()
            .flat_map(|handle| handle.join().expect("a load client panicked"))
            .collect();
        samples.sort_by_key(|sample| sample.start);
        samples
    }
}

fn load_client(addr: SocketAddr, index: usize, pause: Duration, stop: &AtomicBool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut samples = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut next = index;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && samples.len() < 100_000 {
        let (target, db) = LOAD_TARGETS[next % LOAD_TARGETS.len()];
        next += 1;
        let start = Instant::now();
        let result = (|| {
            let connection = match &mut conn {
                Some(connection) => connection,
                None => conn.insert(try_connect(addr, Duration::from_secs(5))?),
            };
            connection.try_send(&http::request_bytes("GET", target))?;
            connection.read_response(false)
        })();
        let end = Instant::now();
        let close = match &result {
            Ok(response) => response
                .header("connection")
                .is_some_and(|value| value.eq_ignore_ascii_case("close")),
            Err(_) => true,
        };
        if close {
            conn = None;
        }
        samples.push(Sample {
            start,
            end,
            target,
            db,
            result: result.map_err(|error| error.to_string()),
        });
        thread::sleep(pause);
    }
    samples
}

/// Samples that started in `[from, to)`.
pub(crate) fn between(
    samples: &[Sample],
    from: Instant,
    to: Instant,
) -> impl Iterator<Item = &Sample> {
    samples
        .iter()
        .filter(move |sample| sample.start >= from && sample.start < to)
}
