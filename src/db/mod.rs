//! The database, as the handlers see it: a [`Database`] is the pools of one
//! PostgreSQL database, and lends a connection for each statement of `sql/`.
//!
//! - [`statements`]: the statements and their planning rules.
//! - [`address`]: the connection string: several hosts,
//!   `target_session_attrs` taken out, the server's connection defaults.
//! - [`connect`]: opening a session: the hosts in turn, each socket
//!   opened and configured.
//! - [`session_target`]: libpq's `target_session_attrs`, and the check of
//!   a session against it.
//! - [`socket`]: a session's socket and connection task, counted for
//!   `/metrics`.
//! - [`connection`]: a connection with its prepared statements; bb8's manager.
//! - [`pool`]: one pool, exclusive or shared, failing fast during an outage.
//! - [`shared`]: the shared slots, many requests on one connection.
//! - [`health`]: whether the database is known to be unreachable.
//! - [`sync_batching`]: one Sync per batch of statements on a shared
//!   connection.

pub mod address;
pub mod connect;
pub mod connection;
pub mod health;
pub mod pool;
pub mod session_target;
pub mod shared;
pub mod socket;
pub mod statements;
pub mod sync_batching;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bb8::ErrorSink;

pub use connect::{ConnectError, Connector};
pub use connection::Connection;
pub use health::Health;
pub use pool::{Lease, Pool, PoolMode, PoolOptions};
pub use session_target::SessionTarget;
pub use statements::{Query, StatementMode};

use crate::error::ApiError;
use crate::log;
use crate::metrics::{PoolGaugeSource, PoolGauges};
use statements::Sessions;

/// The pools of one database: the main pool, and in shared, prepared mode a
/// small one for the statements PostgreSQL must plan per call.
pub struct Database {
    main: Pool,
    /// Connections whose sessions plan every statement for its parameters,
    /// for [`Query::plans_per_call`] (see `statements.rs` for why).
    per_call_plans: Option<Pool>,
    /// The most a database request may take, from checkout to last row.
    deadline: Duration,
}

impl Database {
    /// Opens the pools, without waiting for the database (see [`Pool::open`]).
    ///
    /// The queries planned per call get their own connections in shared,
    /// prepared mode: a quarter of the pool's size, at least one, in sessions
    /// that plan every statement for its parameters, where they are prepared.
    /// A shared connection carries many requests at once, so one is plenty
    /// for the one query that needs it. In exclusive mode, where a request
    /// holds its connection, and in unnamed mode, those queries are sent as
    /// the unnamed statement, which PostgreSQL plans for its parameters too
    /// (at the price of a parse per call: pgbench 7.5–7.9k/s against
    /// 10.3–10.5k for the `starts` page).
    ///
    /// `health` is the process's one view of the database's reachability,
    /// shared by every pool (see `health.rs`).
    pub fn new(mut connector: Connector, options: &PoolOptions, health: &Arc<Health>) -> Database {
        // Only a shared connection carries several requests' statements in
        // one write; an exclusive one has one statement at a time.
        connector.batch_syncs = options.mode == PoolMode::Shared;
        let per_call_plans = match options.per_call_plans_size() {
            0 => None,
            size => Some(Pool::open(
                connector.clone(),
                options,
                size,
                Sessions::PerCallPlans,
                Arc::clone(health),
            )),
        };
        Database {
            main: Pool::open(
                connector,
                options,
                options.size,
                Sessions::Default,
                Arc::clone(health),
            ),
            per_call_plans,
            // The checkout, the statement timeout, and a second for the
            // network: past that, PostgreSQL is not answering at all (a
            // frozen proxy, a lost host), which no server-side timeout sees.
            deadline: options.checkout_timeout + options.statement_timeout + Duration::from_secs(1),
        }
    }

    /// Runs one request's database work, bounded by the deadline: 503 when
    /// it passes. tokio-postgres has no query timeout of its own.
    #[inline]
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.deadline, work).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ApiError::Unavailable),
        }
    }

    /// A connection to run `query` on, or 503 when none is usable in time.
    #[inline]
    pub async fn connection_for(&self, query: Query) -> Result<Lease<'_>, ApiError> {
        let depth = query.pipeline_depth();
        match &self.per_call_plans {
            Some(per_call_plans) if query.plans_per_call() => {
                per_call_plans.connection(depth).await
            }
            _ => self.main.connection(depth).await,
        }
    }

    /// Every pool of this database, the main one first.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        std::iter::once(&self.main).chain(&self.per_call_plans)
    }
}

impl PoolGaugeSource for Database {
    fn pool_gauges(&self) -> PoolGauges {
        self.pools().map(Pool::gauges).sum()
    }
}

/// A query failed: the connection broke, a timeout cancelled it, or the
/// database refused it. The client sees a 503; the log gets the reason.
#[cold]
pub fn query_failed(error: tokio_postgres::Error) -> ApiError {
    log_database_error(&ConnectError::Postgres(error));
    ApiError::Unavailable
}

/// Logs database errors at most once a second, so a database outage under
/// load does not flood stderr. They name the failure and the host, never
/// the password.
fn log_database_error(error: &ConnectError) {
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    if log::once_a_second(&LAST_LOGGED) {
        eprintln!("bakeoff: database: {error}");
    }
}

/// bb8's errors (failed connection attempts) go to the throttled log.
#[derive(Debug, Clone, Copy)]
struct LogErrors;

impl ErrorSink<ConnectError> for LogErrors {
    fn sink(&self, error: ConnectError) {
        log_database_error(&error);
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<ConnectError>> {
        Box::new(*self)
    }
}
