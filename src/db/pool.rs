//! One pool of connections to one database, all set up alike: bb8 opens
//! them; requests check one out (exclusive) or share the slots (shared).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bb8::{PooledConnection, RunError};

use super::connect::{ConnectError, Connector};
use super::connection::{Connection, Manager};
use super::health::Health;
use super::shared::{SharedConnection, SharedSlots};
use super::statements::{Sessions, StatementMode};
use super::{LogErrors, log_database_error};
use crate::error::ApiError;
use crate::metrics::{self, PoolGauges};

/// How requests share the database connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// bb8's model: a request checks a connection out and has it to itself
    /// until its rows are read.
    Exclusive,
    /// Every connection serves many requests at once: their queries queue on
    /// one tokio-postgres `Client`, which pipelines them into one write, so
    /// the database is never idle waiting for the next round trip.
    Shared,
}

/// How the pools are shaped.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections kept open; the main pool is fixed at this size.
    pub size: u32,
    /// How long a request waits for a connection before its 503, while the
    /// database is up (when it is known to be down, the 503 comes at once).
    pub checkout_timeout: Duration,
    /// Exclusive checkouts or shared, pipelined connections.
    pub mode: PoolMode,
    /// Prepared or unnamed statements.
    pub statements: StatementMode,
    /// How long PostgreSQL lets a statement run before cancelling it, set
    /// on each connection in prepared mode (in unnamed mode, behind a
    /// transaction pooler, session settings do not stick: set it on the
    /// role, see `sql/roles.sql`).
    pub statement_timeout: Duration,
}

impl PoolOptions {
    /// The connections kept, beside `size`, for the queries planned per
    /// call: a quarter of `size`, at least one, in shared, prepared mode
    /// (see `Database::new`); none otherwise.
    pub fn per_call_plans_size(&self) -> u32 {
        match (self.mode, self.statements) {
            (PoolMode::Shared, StatementMode::Prepared) => self.size.div_ceil(4),
            _ => 0,
        }
    }
}

/// One pool: connections to one database, set up for one kind of session.
pub struct Pool {
    pool: bb8::Pool<Manager>,
    /// In shared mode, the slots requests share.
    shared: Option<Arc<SharedSlots>>,
    health: Arc<Health>,
    checkout_timeout: Duration,
    size: u32,
    /// In exclusive mode, a task is trying to reconnect while requests fail
    /// fast (in shared mode the slots' refills do that).
    probing: Arc<AtomicBool>,
}

/// A connection lent to one request: its own, or a share of one.
// It lives on the request's stack for one request; boxing the large variant
// would cost an allocation per request to save a few bytes of stack.
#[allow(clippy::large_enum_variant)]
pub enum Lease<'a> {
    /// Checked out of bb8; back in the pool when dropped.
    Exclusive(PooledConnection<'a, Manager>),
    /// A shared connection; others may be querying it at the same time.
    Shared(SharedConnection),
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;

    #[inline]
    fn deref(&self) -> &Connection {
        match self {
            Lease::Exclusive(connection) => connection,
            Lease::Shared(connection) => connection,
        }
    }
}

impl Pool {
    /// Builds the pool without waiting for the database: the server starts
    /// while PostgreSQL is down, answers 503, and bb8 keeps trying to open
    /// the connections in the background. Must run inside a tokio runtime,
    /// whose tasks then own the connections.
    ///
    /// Deliberate settings: a fixed size (no idle reaping, no lifetime
    /// recycling, which would only add reconnects under a steady load); no
    /// `test_on_check_out`, which costs a round trip per request; instead a
    /// connection whose socket has closed is noticed without any I/O (the
    /// client's closed flag) when it is lent, and replaced.
    pub fn open(
        connector: Connector,
        options: &PoolOptions,
        size: u32,
        sessions: Sessions,
        health: Arc<Health>,
    ) -> Pool {
        let pool = bb8::Pool::builder()
            .max_size(size)
            .min_idle(Some(size))
            .test_on_check_out(false)
            .max_lifetime(None)
            .idle_timeout(None)
            .connection_timeout(options.checkout_timeout)
            .error_sink(Box::new(LogErrors))
            .build_unchecked(Manager {
                connector,
                prepare: sessions.prepared(options.statements),
                session_settings: sessions
                    .settings(options.statements, options.statement_timeout.as_millis()),
                health: Arc::clone(&health),
            });
        let shared = (options.mode == PoolMode::Shared)
            .then(|| SharedSlots::new(size, pool.clone(), Arc::clone(&health)));
        if let Some(shared) = &shared {
            tokio::spawn(sweep(Arc::clone(shared)));
        }
        Pool {
            pool,
            shared,
            health,
            checkout_timeout: options.checkout_timeout,
            size,
            probing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A connection, or 503: at once when the database is known to be down
    /// and no connection is usable, else after the checkout timeout. In
    /// shared mode, `depth` says how to pick among the connections (see
    /// `Query::pipeline_depth`; 1: the least loaded).
    #[inline]
    pub async fn connection(&self, depth: usize) -> Result<Lease<'_>, ApiError> {
        match &self.shared {
            None => {
                metrics::add_waiting_for_database(1);
                let connection = self.exclusive().await;
                metrics::add_waiting_for_database(-1);
                connection.map(Lease::Exclusive)
            }
            Some(shared) => match shared.live(depth) {
                Some(connection) => Ok(Lease::Shared(connection)),
                None if self.health.is_down() => Err(ApiError::Unavailable),
                None => {
                    metrics::add_waiting_for_database(1);
                    let connection = shared.wait(self.checkout_timeout, depth).await;
                    metrics::add_waiting_for_database(-1);
                    connection.map(Lease::Shared)
                }
            },
        }
    }

    async fn exclusive(&self) -> Result<PooledConnection<'_, Manager>, ApiError> {
        // A restart of PostgreSQL closes every idle connection; each one is
        // seen closed here (a flag, no round trip) and dropped, and bb8
        // replaces it because `has_broken` says so.
        for _ in 0..=self.pool.state().connections {
            if self.health.is_down() && self.pool.state().connections == 0 {
                self.probe();
                return Err(ApiError::Unavailable);
            }
            // Biased: a connection at hand wins even while the last attempt
            // to open one failed (a database refusing new connections, say).
            let connection = tokio::select! {
                biased;
                connection = self.pool.get() => connection.map_err(unavailable)?,
                () = self.health.until_down() => return Err(ApiError::Unavailable),
            };
            if !connection.is_closed() {
                return Ok(connection);
            }
        }
        Err(ApiError::Unavailable)
    }

    /// Exclusive mode, database down: requests no longer ask bb8 for
    /// connections, so a task of its own keeps asking until one opens.
    #[cold]
    fn probe(&self) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, probing) = (self.pool.clone(), Arc::clone(&self.probing));
        tokio::spawn(async move {
            loop {
                match pool.get().await {
                    Ok(connection) if !connection.is_closed() => break,
                    Ok(_closed) => continue,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            probing.store(false, Ordering::Release);
        });
    }

    /// What `/metrics` shows of this pool.
    pub fn gauges(&self) -> PoolGauges {
        let state = self.pool.state();
        PoolGauges {
            size: u64::from(self.size),
            connections: u64::from(state.connections),
            idle: u64::from(state.idle_connections),
            waited: state.statistics.get_waited,
            timed_out: state.statistics.get_timed_out,
            down: u64::from(self.health.is_down()),
        }
    }
}

/// How often shared slots are looked at for connections that closed while
/// no request used them.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Replaces, once a second, the shared connections that closed while no
/// request used them (a restart of the database, a killed backend): without
/// it, a pool no request asks for would keep dead connections, and count
/// them open in `/metrics`, until a request came. A flag read per slot, no
/// round trip. Ends with its runtime. (An exclusive pool finds its closed
/// connections when a request checks one out, and replaces them then.)
async fn sweep(shared: Arc<SharedSlots>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        shared.sweep();
    }
}

#[cold]
fn unavailable(error: RunError<ConnectError>) -> ApiError {
    if let RunError::User(error) = error {
        log_database_error(&error);
    }
    ApiError::Unavailable
}
