//! The database: bb8 pools of tokio-postgres connections, each opened with
//! the statements of `sql/` it serves prepared on it, and lent to requests
//! by handle.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bb8::{ErrorSink, ManageConnection, Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use futures_util::future::try_join_all;
use futures_util::{TryStreamExt, pin_mut};
use postgres_types::Type;
use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, RowStream, Statement};

use crate::error::ApiError;
use crate::log;
use crate::metrics;

/// A statement of `sql/`, one per kind of database request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `sql/types.sql`: no parameters.
    Types,
    /// `sql/contact.sql`: `$1 int4` contact_id.
    Contact,
    /// `sql/page.sql`: `$1 int8` limit, `$2 int8` offset.
    Page,
    /// `sql/page_starts.sql`: `$1 int8` limit, `$2 int8` offset, `$3 text` starts.
    PageStarts,
}

impl Query {
    /// The statement's text, embedded from `sql/` at build time.
    pub fn sql(self) -> &'static str {
        match self {
            Query::Types => include_str!("../sql/types.sql"),
            Query::Contact => include_str!("../sql/contact.sql"),
            Query::Page => include_str!("../sql/page.sql"),
            Query::PageStarts => include_str!("../sql/page_starts.sql"),
        }
    }

    /// The parameter types, given to PostgreSQL rather than inferred.
    pub fn parameter_types(self) -> &'static [Type] {
        match self {
            Query::Types => &[],
            Query::Contact => &[Type::INT4],
            Query::Page => &[Type::INT8, Type::INT8],
            Query::PageStarts => &[Type::INT8, Type::INT8, Type::TEXT],
        }
    }

    /// Where a connection keeps its prepared statement.
    fn index(self) -> usize {
        self as usize
    }

    /// Whether the statement should be planned for its own parameters on
    /// every call rather than by PostgreSQL's plan cache.
    ///
    /// `PageStarts` should: its best plan depends on how common the prefix
    /// is. Left to the plan cache, a prepared statement switches to the
    /// generic plan once a few costlier calls (a large limit or offset) have
    /// raised the average cost of its custom plans, and keeps it for the
    /// life of the connection: the generic plan reads every contact matching
    /// the prefix and sorts them, where a custom plan walks the primary key
    /// and stops after `limit` matches. pgbench (`starts=m`, `limit=10`, 16
    /// clients): custom plans 10.3–10.5k/s, stuck on the generic plan
    /// 2.8k/s. The other statements have one good plan whatever their
    /// parameters, which the plan cache keeps (forcing custom plans on
    /// `Contact` costs it 2.5×).
    pub fn plans_per_call(self) -> bool {
        self == Query::PageStarts
    }
}

/// How statements reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatementMode {
    /// Prepared once per connection when the pool opens it, then executed by
    /// handle: the fastest, and what a direct connection should use.
    Prepared,
    /// Sent with every execution as the unnamed statement (Parse, Bind,
    /// Execute in one round trip): what a transaction-pooling PgBouncer
    /// older than 1.21 (Debian's 1.18) or RDS Proxy can carry, since a named
    /// statement lives on one server connection only.
    Unnamed,
}

/// A pooled connection: the client and its prepared statements side by side.
pub struct Connection {
    /// The tokio-postgres client; its connection task runs on the runtime
    /// that opened it.
    pub client: Client,
    /// The statements prepared on this client, by [`Query::index`]; a
    /// query without one here is sent as the unnamed statement.
    statements: [Option<Statement>; 4],
}

impl Connection {
    /// The prepared statement for `query`, if it has one on this connection.
    #[inline]
    fn prepared(&self, query: Query) -> Option<&Statement> {
        self.statements[query.index()].as_ref()
    }

    /// Runs `query` and returns its rows as a stream, read as they arrive.
    #[inline]
    pub async fn query_raw(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream, tokio_postgres::Error> {
        match self.prepared(query) {
            Some(statement) => {
                self.client
                    .query_raw(statement, parameters.iter().copied())
                    .await
            }
            None => {
                let typed = parameters
                    .iter()
                    .copied()
                    .zip(query.parameter_types().iter().cloned());
                self.client.query_typed_raw(query.sql(), typed).await
            }
        }
    }

    /// Runs `query` and collects all its rows at once.
    #[inline]
    pub async fn query(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self.prepared(query) {
            Some(statement) => self.client.query(statement, parameters).await,
            None => self.query_raw(query, parameters).await?.try_collect().await,
        }
    }

    /// Runs `query`, which returns at most one row, and returns that row.
    #[inline]
    pub async fn query_opt(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let rows = self.query_raw(query, parameters).await?;
        pin_mut!(rows);
        let row = rows.try_next().await?;
        if row.is_some() {
            // Read to the end, so the command's completion is consumed here.
            // (A stream that has ended must not be polled again.)
            while rows.try_next().await?.is_some() {}
        }
        Ok(row)
    }
}

/// Opens connections for bb8, sets their session up and prepares the
/// statements on each.
pub struct Manager {
    inner: PostgresConnectionManager<NoTls>,
    /// The statements each connection prepares when it opens.
    prepare: &'static [Query],
    /// `SET …` sent when a connection opens, or empty. A `SET` after connect
    /// rather than a startup option, which PgBouncer refuses.
    session_settings: String,
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Connection, tokio_postgres::Error> {
        let client = self.inner.connect().await?;
        // Set and prepared concurrently: tokio-postgres pipelines the
        // messages into one round trip.
        let settings = async {
            match self.session_settings.is_empty() {
                true => Ok(()),
                false => client.batch_execute(&self.session_settings).await,
            }
        };
        let prepared = try_join_all(self.prepare.iter().map(|&query| {
            let client = &client;
            async move {
                let statement = client
                    .prepare_typed(query.sql(), query.parameter_types())
                    .await?;
                Ok::<_, tokio_postgres::Error>((query, statement))
            }
        }));
        let ((), prepared) = tokio::try_join!(settings, prepared)?;
        let mut statements = [None, None, None, None];
        for (query, statement) in prepared {
            statements[query.index()] = Some(statement);
        }
        Ok(Connection { client, statements })
    }

    async fn is_valid(&self, connection: &mut Connection) -> Result<(), tokio_postgres::Error> {
        connection.client.simple_query("").await.map(|_| ())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.client.is_closed()
    }
}

/// How requests share the database connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolMode {
    /// bb8's model: a request checks a connection out and has it to itself
    /// until its rows are read.
    Exclusive,
    /// Every connection serves many requests at once: their queries queue on
    /// one tokio-postgres `Client`, which pipelines them into one write, so
    /// the database is never idle waiting for the next round trip.
    Shared,
}

/// How the pool is shaped.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections kept open; the pool is fixed at this size.
    pub size: u32,
    /// How long a request waits for a connection before its 503.
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
    /// (see [`Db::new`]); none otherwise.
    pub fn per_call_plans_size(&self) -> u32 {
        match (self.mode, self.statements) {
            (PoolMode::Shared, StatementMode::Prepared) => self.size.div_ceil(4),
            _ => 0,
        }
    }
}

/// The pool the handlers take connections from.
pub struct Db {
    pool: Pool<Manager>,
    shared: Option<Arc<SharedSlots>>,
    checkout_timeout: Duration,
    /// The most a database request may take, from checkout to last row.
    deadline: Duration,
    size: u32,
    /// In shared, prepared mode: a few connections whose sessions plan every
    /// statement for its parameters, for the queries that need it
    /// ([`Query::plans_per_call`]), prepared there.
    per_call_plans: Option<Box<Db>>,
}

/// What a pool's connections are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sessions {
    /// Every query but those planned per call, prepared in prepared mode.
    Default,
    /// Sessions with `plan_cache_mode = force_custom_plan`, for the queries
    /// planned per call.
    PerCallPlans,
}

/// The connections of shared mode: each slot holds one checked-out bb8
/// connection for as long as it works. bb8 still opens, retries and replaces
/// connections; the slots only let many requests use one at a time.
struct SharedSlots {
    slots: Box<[Slot]>,
    /// Round-robin cursor.
    next: AtomicUsize,
    /// Woken when a slot gets a new connection.
    filled: Notify,
}

struct Slot {
    connection: ArcSwapOption<PooledConnection<'static, Manager>>,
    /// A refill task is running for this slot.
    refilling: AtomicBool,
}

/// A connection lent to one request: its own, or a share of one.
// It lives on the request's stack for one request; boxing the large variant
// would cost an allocation per request to save a few bytes of stack.
#[allow(clippy::large_enum_variant)]
pub enum Lease<'a> {
    /// Checked out of bb8; back in the pool when dropped.
    Exclusive(PooledConnection<'a, Manager>),
    /// A shared connection; others may be querying it at the same time.
    Shared(Arc<PooledConnection<'static, Manager>>),
}

impl Deref for Lease<'_> {
    type Target = Connection;

    #[inline]
    fn deref(&self) -> &Connection {
        match self {
            Lease::Exclusive(connection) => connection,
            Lease::Shared(connection) => connection,
        }
    }
}

impl Db {
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
    ///
    /// The queries planned per call ([`Query::plans_per_call`]) get their
    /// own connections in shared, prepared mode: a quarter of the pool's
    /// size, at least one, in sessions that plan every statement for its
    /// parameters, where they are prepared. A shared connection carries many
    /// requests at once, so one is plenty for the one query that needs it.
    /// In exclusive mode, where a request holds its connection, and in
    /// unnamed mode, those queries are sent as the unnamed statement, which
    /// PostgreSQL plans for its parameters too (at the price of a parse per
    /// call: pgbench 7.5–7.9k/s against 10.3–10.5k for the `starts` page).
    pub fn new(config: tokio_postgres::Config, options: &PoolOptions) -> Db {
        let per_call_plans = match options.per_call_plans_size() {
            0 => None,
            size => Some(Box::new(Db::build(
                config.clone(),
                options,
                size,
                Sessions::PerCallPlans,
            ))),
        };
        Db {
            per_call_plans,
            ..Db::build(config, options, options.size, Sessions::Default)
        }
    }

    fn build(
        config: tokio_postgres::Config,
        options: &PoolOptions,
        size: u32,
        sessions: Sessions,
    ) -> Db {
        let statement_timeout = format!(
            "SET statement_timeout = {}",
            options.statement_timeout.as_millis()
        );
        let (prepare, session_settings): (&'static [Query], String) =
            match (options.statements, sessions) {
                (StatementMode::Unnamed, _) => (&[], String::new()),
                (StatementMode::Prepared, Sessions::Default) => (
                    &[Query::Types, Query::Contact, Query::Page],
                    statement_timeout,
                ),
                (StatementMode::Prepared, Sessions::PerCallPlans) => (
                    &[Query::PageStarts],
                    format!("{statement_timeout}; SET plan_cache_mode = force_custom_plan"),
                ),
            };
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(size))
            .test_on_check_out(false)
            .max_lifetime(None)
            .idle_timeout(None)
            .connection_timeout(options.checkout_timeout)
            .error_sink(Box::new(LogErrors))
            .build_unchecked(Manager {
                inner: PostgresConnectionManager::new(config, NoTls),
                prepare,
                session_settings,
            });
        let shared = (options.mode == PoolMode::Shared).then(|| {
            Arc::new(SharedSlots {
                slots: (0..size)
                    .map(|_| Slot {
                        connection: ArcSwapOption::empty(),
                        refilling: AtomicBool::new(false),
                    })
                    .collect(),
                next: AtomicUsize::new(0),
                filled: Notify::new(),
            })
        });
        let db = Db {
            pool,
            shared,
            checkout_timeout: options.checkout_timeout,
            // The checkout, the statement timeout, and a second for the
            // network: past that, PostgreSQL is not answering at all (a
            // frozen proxy, a lost host), which no server-side timeout sees.
            deadline: options.checkout_timeout + options.statement_timeout + Duration::from_secs(1),
            size,
            per_call_plans: None,
        };
        if let Some(shared) = &db.shared {
            for index in 0..shared.slots.len() {
                db.refill(shared, index);
            }
        }
        db
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
        match &self.per_call_plans {
            Some(per_call_plans) if query.plans_per_call() => per_call_plans.connection().await,
            _ => self.connection().await,
        }
    }

    /// A connection of the main pool, or 503 when none is usable in time.
    #[inline]
    pub async fn connection(&self) -> Result<Lease<'_>, ApiError> {
        match &self.shared {
            None => {
                metrics::add_waiting_for_database(1);
                let connection = self.exclusive().await;
                metrics::add_waiting_for_database(-1);
                connection.map(Lease::Exclusive)
            }
            Some(shared) => match self.live_slot(shared) {
                Some(connection) => Ok(Lease::Shared(connection)),
                None => {
                    metrics::add_waiting_for_database(1);
                    let connection = self.wait_for_slot(shared).await;
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
            let connection = self.pool.get().await.map_err(unavailable)?;
            if !connection.client.is_closed() {
                return Ok(connection);
            }
        }
        Err(ApiError::Unavailable)
    }

    /// The next live shared connection in round-robin order. Slots found
    /// empty or closed get a refill started.
    #[inline]
    fn live_slot(
        &self,
        shared: &Arc<SharedSlots>,
    ) -> Option<Arc<PooledConnection<'static, Manager>>> {
        let count = shared.slots.len();
        let start = shared.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            let index = (start + offset) % count;
            let slot = &shared.slots[index];
            match slot.connection.load_full() {
                Some(connection) if !connection.client.is_closed() => return Some(connection),
                Some(closed) => {
                    slot.connection.compare_and_swap(&closed, None);
                    self.refill(shared, index);
                }
                None => self.refill(shared, index),
            }
        }
        None
    }

    /// Every slot is empty: wait, at most the checkout timeout, for a refill.
    #[cold]
    async fn wait_for_slot(
        &self,
        shared: &Arc<SharedSlots>,
    ) -> Result<Arc<PooledConnection<'static, Manager>>, ApiError> {
        let deadline = tokio::time::Instant::now() + self.checkout_timeout;
        loop {
            let filled = shared.filled.notified();
            tokio::pin!(filled);
            // Registered before the second look, so a refill that lands in
            // between still wakes us.
            filled.as_mut().enable();
            if let Some(connection) = self.live_slot(shared) {
                return Ok(connection);
            }
            if tokio::time::timeout_at(deadline, filled).await.is_err() {
                return Err(ApiError::Unavailable);
            }
        }
    }

    /// Starts a task that fills slot `index` from bb8, unless one runs.
    fn refill(&self, shared: &Arc<SharedSlots>, index: usize) {
        if shared.slots[index].refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, shared) = (self.pool.clone(), Arc::clone(shared));
        tokio::spawn(async move {
            let slot = &shared.slots[index];
            loop {
                match pool.get_owned().await {
                    // A connection that closed while idle in bb8 is dropped
                    // (bb8 replaces it) and another one asked for.
                    Ok(connection) if connection.client.is_closed() => continue,
                    Ok(connection) => {
                        slot.connection.store(Some(Arc::new(connection)));
                        break;
                    }
                    // bb8 waited its timeout and logged why; try again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            slot.refilling.store(false, Ordering::Release);
            shared.filled.notify_waiters();
        });
    }

    /// The pool's open and idle connections and its statistics.
    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }

    /// Connections the pool keeps open.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The pool of connections that plan per call, if there is one.
    pub fn per_call_plans(&self) -> Option<&Db> {
        self.per_call_plans.as_deref()
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
    if log::once_a_second(&LAST_LOGGED) {
        match std::error::Error::source(error) {
            Some(cause) => eprintln!("bakeoff: database: {error}: {cause}"),
            None => eprintln!("bakeoff: database: {error}"),
        }
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
