//! Logging to stderr, throttled where a fault repeats at request rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
