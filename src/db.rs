//! The database: a bb8 pool of tokio-postgres connections, each opened with
//! every statement of `sql/` prepared on it, and checked out by handle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bb8::{ErrorSink, ManageConnection, Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use postgres_types::Type;
use tokio_postgres::{Client, NoTls, Statement};

use crate::error::ApiError;

/// `/types`.
pub const TYPES_SQL: &str = include_str!("../sql/types.sql");
/// `/contacts/{contact_id}`.
pub const CONTACT_SQL: &str = include_str!("../sql/contact.sql");
/// A page of `/contacts/fetch` and `/contacts/for`.
pub const PAGE_SQL: &str = include_str!("../sql/page.sql");
/// A page filtered by `starts`.
pub const PAGE_STARTS_SQL: &str = include_str!("../sql/page_starts.sql");

/// The statements of one connection, prepared when the pool opened it.
pub struct Statements {
    /// [`TYPES_SQL`], no parameters.
    pub types: Statement,
    /// [`CONTACT_SQL`], `$1 int4` contact_id.
    pub contact: Statement,
    /// [`PAGE_SQL`], `$1 int8` limit, `$2 int8` offset.
    pub page: Statement,
    /// [`PAGE_STARTS_SQL`], `$1 int8` limit, `$2 int8` offset, `$3 text` starts.
    pub page_starts: Statement,
}

/// A pooled connection: the client and its prepared statements side by side.
pub struct Connection {
    /// The tokio-postgres client; its connection task runs on the runtime
    /// that opened it.
    pub client: Client,
    /// Statements prepared on this client.
    pub statements: Statements,
}

/// Opens connections for bb8 and prepares the statements on each.
pub struct Manager {
    inner: PostgresConnectionManager<NoTls>,
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Connection, tokio_postgres::Error> {
        let client = self.inner.connect().await?;
        // Prepared concurrently: tokio-postgres pipelines the four Parse
        // messages into one round trip.
        let (types, contact, page, page_starts) = tokio::try_join!(
            client.prepare_typed(TYPES_SQL, &[]),
            client.prepare_typed(CONTACT_SQL, &[Type::INT4]),
            client.prepare_typed(PAGE_SQL, &[Type::INT8, Type::INT8]),
            client.prepare_typed(PAGE_STARTS_SQL, &[Type::INT8, Type::INT8, Type::TEXT]),
        )?;
        let statements = Statements {
            types,
            contact,
            page,
            page_starts,
        };
        Ok(Connection { client, statements })
    }

    async fn is_valid(&self, connection: &mut Connection) -> Result<(), tokio_postgres::Error> {
        connection.client.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.client.is_closed()
    }
}

/// How the pool is shaped.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections kept open; the pool is fixed at this size.
    pub size: u32,
    /// How long a request waits for a free connection before its 503.
    pub checkout_timeout: Duration,
}

/// The pool the handlers take connections from.
pub struct Db {
    pool: Pool<Manager>,
}

impl Db {
    /// Builds the pool without waiting for the database: the server starts
    /// while PostgreSQL is down, answers 503, and bb8 keeps trying to open
    /// the connections in the background.
    ///
    /// Deliberate settings: a fixed size (no idle reaping, no lifetime
    /// recycling, which would only add reconnects under a steady load); no
    /// `test_on_check_out`, which costs a round trip per request; instead a
    /// connection whose socket has closed is noticed without any I/O in
    /// [`Db::connection`] and in bb8's `has_broken`, and replaced.
    pub fn new(config: tokio_postgres::Config, options: &PoolOptions) -> Db {
        let pool = Pool::builder()
            .max_size(options.size)
            .min_idle(Some(options.size))
            .test_on_check_out(false)
            .max_lifetime(None)
            .idle_timeout(None)
            .connection_timeout(options.checkout_timeout)
            .error_sink(Box::new(LogErrors))
            .build_unchecked(Manager {
                inner: PostgresConnectionManager::new(config, NoTls),
            });
        Db { pool }
    }

    /// A connection for one request, or 503 when none frees up in time.
    pub async fn connection(&self) -> Result<PooledConnection<'_, Manager>, ApiError> {
        // A restart of PostgreSQL closes every idle connection; each one is
        // seen closed here (a flag, no round trip) and dropped, and bb8
        // replaces it because `has_broken` says so.
        for _ in 0..=self.pool.state().connections {
            let connection = self.pool.get().await.map_err(unavailable)?;
            if !connection.client.is_closed() {
                return Ok(connection);
            }
        }
        Err(ApiError::Unavailable)
    }

    /// The pool's size and idle count, for `/readyz` and logs.
    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }
}

#[cold]
fn unavailable(error: RunError<tokio_postgres::Error>) -> ApiError {
    if let RunError::User(error) = error {
        log_database_error(&error);
    }
    ApiError::Unavailable
}

/// A query failed: the connection broke, a timeout cancelled it, or the
/// database refused it. The client sees a 503; the log gets the reason.
#[cold]
pub fn query_failed(error: tokio_postgres::Error) -> ApiError {
    log_database_error(&error);
    ApiError::Unavailable
}

/// Logs database errors at most once a second, so a database outage under
/// load does not flood stderr. tokio-postgres errors name the failure, never
/// the password.
fn log_database_error(error: &tokio_postgres::Error) {
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    if LAST_LOGGED.swap(now, Ordering::Relaxed) != now {
        eprintln!("bakeoff: database: {error}");
    }
}

#[derive(Debug, Clone, Copy)]
struct LogErrors;

impl ErrorSink<tokio_postgres::Error> for LogErrors {
    fn sink(&self, error: tokio_postgres::Error) {
        log_database_error(&error);
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<tokio_postgres::Error>> {
        Box::new(*self)
    }
}
