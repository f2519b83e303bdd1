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
use std::sync::atomic::{AtomicBool, Ordering};
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
            pool,
            health,
        });
        for index in 0..shared.slots.len() {
            shared.refill(index);
        }
        shared
    }

    /// A live connection for a query of the given pipeline `depth` (see
    /// `Query::pipeline_depth`): the first slot, in slot order, whose
    /// connection has fewer than `depth` requests on it; when every one has
    /// that many, the least loaded. `None` when every slot is empty or
    /// closed. Slots found empty or closed get a refill started: while the
    /// database is down, those refills are the probe that notices it is
    /// back.
    ///
    /// Why fill the first connection first, instead of taking turns: the
    /// queries a runtime issues in one turn of its scheduler then go out in
    /// one write on one connection, and one PostgreSQL backend reads them in
    /// one wake-up, where taking turns split every batch over all the
    /// connections and woke every backend for a part of it. Measured under
    /// `contact_random` (docs/PERFORMANCE.md, issue #22): PostgreSQL's
    /// wake-ups per request fell from 0.16 to 0.04, queries per write rose
    /// at a fixed rate from 2.1 to 3.3. Past `depth`, the load spreads, so a
    /// slow connection does not collect every request.
    #[inline]
    pub fn live(self: &Arc<Self>, depth: usize) -> Option<SharedConnection> {
        let mut choice = Choice::default();
        for (index, slot) in self.slots.iter().enumerate() {
            match slot.connection.load_full() {
                Some(connection) if !connection.is_closed() => {
                    // The slot holds one reference and this look another;
                    // the others are the requests on the connection now.
                    let in_flight = Arc::strong_count(&connection).saturating_sub(2);
                    if let Some(connection) = choice.offer(in_flight, depth, connection) {
                        return Some(connection);
                    }
                }
                Some(closed) => {
                    slot.connection.compare_and_swap(&closed, None);
                    self.refill(index);
                }
                None => self.refill(index),
            }
        }
        choice.least()
    }

    /// Every slot is empty: wait, at most `timeout`, for a refill. Gives up
    /// at once when a connection attempt fails meanwhile (the database is
    /// down: see `Health`).
    #[cold]
    pub async fn wait(
        self: &Arc<Self>,
        timeout: Duration,
        depth: usize,
    ) -> Result<SharedConnection, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.health.next_change();
            tokio::pin!(changed);
            // Registered before the second look, so a refill that lands in
            // between still wakes us.
            changed.as_mut().enable();
            if let Some(connection) = self.live(depth) {
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

/// The choice among live connections, offered in slot order: the first with
/// fewer than `depth` requests in flight is taken at once; otherwise the
/// least loaded one (the first of equals).
struct Choice<T> {
    /// The least loaded connection offered so far, with its load.
    least: Option<(usize, T)>,
}

impl<T> Default for Choice<T> {
    fn default() -> Choice<T> {
        Choice { least: None }
    }
}

impl<T> Choice<T> {
    /// Offers a connection with `in_flight` requests on it: returned when it
    /// is the one to take now, kept in mind otherwise.
    #[inline]
    fn offer(&mut self, in_flight: usize, depth: usize, candidate: T) -> Option<T> {
        if in_flight < depth {
            return Some(candidate);
        }
        if self
            .least
            .as_ref()
            .is_none_or(|(fewest, _)| in_flight < *fewest)
        {
            self.least = Some((in_flight, candidate));
        }
        None
    }

    /// The least loaded connection offered, when none was taken at once.
    fn least(self) -> Option<T> {
        self.least.map(|(_, candidate)| candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot chosen among connections with these requests in flight.
    fn chosen(in_flight: &[usize], depth: usize) -> Option<usize> {
        let mut choice = Choice::default();
        for (slot, load) in in_flight.iter().enumerate() {
            if let Some(slot) = choice.offer(*load, depth, slot) {
                return Some(slot);
            }
        }
        choice.least()
    }

    #[test]
    fn the_first_connection_fills_up_to_the_depth_then_the_least_loaded_is_used() {
        assert_eq!(chosen(&[0, 0], 8), Some(0));
        assert_eq!(chosen(&[7, 0], 8), Some(0));
        assert_eq!(chosen(&[8, 0], 8), Some(1));
        assert_eq!(chosen(&[8, 9], 8), Some(0));
        assert_eq!(chosen(&[12, 9, 9], 8), Some(1));
        // Depth 1: the first idle connection, else the least loaded.
        assert_eq!(chosen(&[1, 0], 1), Some(1));
        assert_eq!(chosen(&[3, 2], 1), Some(1));
        assert_eq!(chosen(&[], 8), None);
    }
}
