//! Shared connections: each slot holds one bb8 connection for as long as it
//! works, and many requests query it at once.
//!
//! Requests queued on one tokio-postgres `Client` go out in one write, so
//! PostgreSQL never waits for the next round trip: on `/types`, 1.6–1.8× the
//! throughput of a checkout per request (docs/PERFORMANCE.md, connection
//! strategy). bb8 still opens, retries and replaces connections; the slots
//! only let many requests use one at a time, and hand a connection back to
//! bb8 (by dropping it) when it breaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bb8::{Pool, PooledConnection};

use super::connection::Manager;
use super::health::Health;
use crate::error::ApiError;

/// A connection lent to many requests at once.
pub type SharedConnection = Arc<PooledConnection<'static, Manager>>;

/// The slots of one pool, and what refills them.
pub struct SharedSlots {
    slots: Box<[Slot]>,
    /// Round-robin cursor.
    next: AtomicUsize,
    /// Where connections come from.
    pool: Pool<Manager>,
    /// The pool's reachability; its notification also says a slot was filled.
    health: Arc<Health>,
}

struct Slot {
    connection: ArcSwapOption<PooledConnection<'static, Manager>>,
    /// A refill task is running for this slot.
    refilling: AtomicBool,
}

impl SharedSlots {
    /// `count` empty slots, each refilled from `pool` at once (in the
    /// background: this returns without waiting for the database).
    pub fn new(count: u32, pool: Pool<Manager>, health: Arc<Health>) -> Arc<SharedSlots> {
        let shared = Arc::new(SharedSlots {
            slots: (0..count)
                .map(|_| Slot {
                    connection: ArcSwapOption::empty(),
                    refilling: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            pool,
            health,
        });
        for index in 0..shared.slots.len() {
            shared.refill(index);
        }
        shared
    }

    /// The next live connection in round-robin order, or `None` when every
    /// slot is empty or closed. Slots found empty or closed get a refill
    /// started: while the database is down, those refills are the probe
    /// that notices it is back.
    #[inline]
    pub fn live(self: &Arc<Self>) -> Option<SharedConnection> {
        let count = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            let index = (start + offset) % count;
            let slot = &self.slots[index];
            match slot.connection.load_full() {
                Some(connection) if !connection.is_closed() => return Some(connection),
                Some(closed) => {
                    slot.connection.compare_and_swap(&closed, None);
                    self.refill(index);
                }
                None => self.refill(index),
            }
        }
        None
    }

    /// Every slot is empty: wait, at most `timeout`, for a refill. Gives up
    /// at once when a connection attempt fails meanwhile (the database is
    /// down: see `Health`).
    #[cold]
    pub async fn wait(self: &Arc<Self>, timeout: Duration) -> Result<SharedConnection, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.health.next_change();
            tokio::pin!(changed);
            // Registered before the second look, so a refill that lands in
            // between still wakes us.
            changed.as_mut().enable();
            if let Some(connection) = self.live() {
                return Ok(connection);
            }
            if self.health.is_down() {
                return Err(ApiError::Unavailable);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(ApiError::Unavailable);
            }
        }
    }

    /// Empties the slots whose connection has closed and refills them. Run
    /// by the pool's sweeper, so that a pool no request uses still notices a
    /// restart of the database and reconnects.
    pub fn sweep(self: &Arc<Self>) {
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(closed) = slot.connection.load_full().filter(|c| c.is_closed()) {
                slot.connection.compare_and_swap(&closed, None);
                self.refill(index);
            }
        }
    }

    /// Starts a task that fills slot `index` from bb8, unless one runs.
    fn refill(self: &Arc<Self>, index: usize) {
        if self.slots[index].refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let slot = &shared.slots[index];
            loop {
                match shared.pool.get_owned().await {
                    // A connection that closed while idle in bb8 is dropped
                    // (bb8 replaces it) and another one asked for.
                    Ok(connection) if connection.is_closed() => continue,
                    Ok(connection) => {
                        slot.connection.store(Some(Arc::new(connection)));
                        break;
                    }
                    // bb8 waited its timeout and logged why; try again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            slot.refilling.store(false, Ordering::Release);
            shared.health.notify();
        });
    }
}
