//! Whether PostgreSQL is known to be unreachable, so that requests fail at
//! once during an outage instead of each waiting the checkout timeout.
//!
//! The database is *down* when a connection attempt failed that began after
//! the last one that succeeded (the connection itself: a prepare that fails
//! on an open connection says the database is up); a pool fails fast only when, besides, it
//! holds no usable connection (see `Pool::connection`). One `Health` serves
//! every pool of the process (one per core, and the `starts` pages' own), so
//! that the first connection that succeeds anywhere ends the fast failures
//! everywhere: a pool that has not reconnected yet then waits for its own
//! connection, bounded by the checkout timeout, and no request is lost once
//! the database is back. An attempt that began before that success and
//! failed after it says nothing new, and is ignored. A live database whose connections
//! are all busy is not down: there, requests wait for a connection up to the
//! checkout timeout, which is what that timeout is for. Trusted proxies do
//! the same: they eject an upstream known to be down and fail fast until a
//! probe sees it back; here the probe is the pool itself, which keeps trying
//! to open connections in the background (bb8 retries with a back-off of at
//! most half the checkout timeout).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

/// What the process knows of its database's reachability.
#[derive(Debug)]
pub struct Health {
    /// A connection attempt failed that began after the last success.
    down: AtomicBool,
    /// When the last connection attempt succeeded, in nanoseconds since
    /// `epoch` (0: never).
    last_success: AtomicU64,
    /// The origin of the timestamps.
    epoch: Instant,
    /// Woken whenever a connection attempt ends or a shared slot is filled:
    /// requests waiting for a connection look again.
    changed: Notify,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            down: AtomicBool::new(false),
            last_success: AtomicU64::new(0),
            epoch: Instant::now(),
            changed: Notify::new(),
        }
    }
}

impl Health {
    /// Now, as a timestamp for [`connected`](Health::connected) and
    /// [`connect_failed`](Health::connect_failed); never 0.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) + 1
    }

    /// A connection attempt succeeded.
    pub fn connected(&self) {
        self.last_success.fetch_max(self.now(), Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// A connection attempt that began at `began` (from [`now`](Health::now))
    /// failed.
    #[cold]
    pub fn connect_failed(&self, began: u64) {
        if began > self.last_success.load(Ordering::Relaxed) {
            self.down.store(true, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }

    /// Whether the last connection attempt failed.
    #[inline]
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Something changed that a waiting request should look at.
    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// The notification of the next change; enable it (or poll it) before
    /// looking at the state, so a change in between is not missed.
    pub fn next_change(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Resolves once the pool is down.
    pub async fn until_down(&self) {
        loop {
            let changed = self.next_change();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_down() {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_began_before_the_last_success_does_not_mark_the_database_down() {
        let health = Health::default();
        assert!(!health.is_down());
        let early = health.now();
        health.connect_failed(early);
        assert!(health.is_down());
        let slow_attempt = health.now();
        health.connected();
        assert!(!health.is_down());
        health.connect_failed(slow_attempt);
        assert!(!health.is_down(), "an attempt older than the success");
        health.connect_failed(health.now());
        assert!(health.is_down());
    }
}
