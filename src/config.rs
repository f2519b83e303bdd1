//! The command line and environment: every setting is an environment
//! variable (twelve-factor) and a flag of the same name; the flag wins. The
//! words of the command line become the other modules' types here.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::{PoolMode, PoolOptions, StatementMode};
use crate::io::Limits;

/// The hand-tuned Rust reference server of the contacts API bake-off.
#[derive(Debug, Parser)]
#[command(name = "bakeoff", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; a bare `bakeoff` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings, for a bare `bakeoff`.
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(ServeConfig),
    /// Create the schema and load the deterministic sample data.
    Seed(SeedConfig),
}

/// How the server runs its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeShape {
    /// One work-stealing tokio runtime with `worker-threads` threads.
    Multi,
    /// One single-threaded runtime per worker thread, each with its own
    /// SO_REUSEPORT listener and its own pool.
    PerCore,
}

/// The Linux scheduling policy of the threads that serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheduling {
    /// `SCHED_BATCH`: a serving thread woken by a socket does not preempt
    /// the thread running on its CPU (PostgreSQL, the load generator), so
    /// that thread finishes its batch and the server takes a whole batch per
    /// wake-up (docs/PERFORMANCE.md, issue #22).
    Batch,
    /// `SCHED_OTHER`, the default of every thread: a woken thread may
    /// preempt the running one at once.
    Normal,
}

/// Settings of `bakeoff serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// PostgreSQL connection string, URL or key=value (`host=/dir` for a
    /// Unix socket). Default is `postgresql://postgres@localhost/bakeoff`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// PostgreSQL connections, in all. Default is twice the cores.
    #[arg(long, env = "POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pool_size: Option<u32>,
    /// Threads serving requests. Default is the number of cores.
    #[arg(long, env = "WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Milliseconds a request waits for a pooled connection before its 503.
    #[arg(long, env = "POOL_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub pool_timeout_ms: u64,
    /// Milliseconds a statement may run before PostgreSQL cancels it (503);
    /// set on each connection in prepared mode.
    #[arg(long, env = "STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub statement_timeout_ms: u64,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "HEADER_READ_TIMEOUT_S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_s: u64,
    /// Bytes a request head may take, request line included; past that the
    /// request is answered 414 (an unfinished request line) or 431 and the
    /// connection closed. At least 8192.
    // Every open connection may hold one head: the bound is what a
    // connection can pin in memory (docs/RELIABILITY.md).
    #[arg(long, env = "MAX_HEAD_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    pub max_head_bytes: u32,
    /// Seconds a client may leave answers unread (the socket taking no
    /// bytes) before its connection is closed and its buffers freed.
    #[arg(long, env = "WRITE_TIMEOUT_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_s: u64,
    /// Milliseconds the server keeps accepting and serving after SIGTERM or
    /// SIGINT while `/readyz` answers 503 and every answer closes its
    /// connection, so that a load balancer takes it out of rotation before
    /// it stops accepting. Default is 0: it stops accepting at once.
    #[arg(long, env = "SHUTDOWN_DELAY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub shutdown_delay_ms: u64,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "DRAIN_TIMEOUT_S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_timeout_s: u64,
    /// Connections served at once; past that, new ones wait in the listen
    /// backlog until one closes.
    // A bound below the open-file limit turns a flood of connections into
    // backpressure at accept instead of descriptor and memory exhaustion.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// `/fibonacci` requests admitted at once, running or waiting; past that
    /// they are answered 503. Default is 64 per core.
    // Configurable so that an operator (and the tests) can trade the longest
    // wait in that queue against the share of 503s under a flood.
    #[arg(long, env = "FIB_QUEUE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub fib_queue: Option<u32>,
    /// `shared`: many requests query one connection at once, pipelined;
    /// `exclusive`: bb8's checkout of a connection per request.
    #[arg(long, env = "POOL_MODE", default_value = "shared", value_parser = PossibleValuesParser::new(["shared", "exclusive"]).map(|word| pool_mode(&word)))]
    pub pool_mode: PoolMode,
    /// `prepared`: statements prepared once per connection (direct
    /// connections); `unnamed`: the unnamed statement on every execution,
    /// for transaction-pooling PgBouncer or RDS Proxy. Session settings do
    /// not stick behind such a pooler, so unnamed mode sets no statement
    /// timeout: set it on the role (`sql/roles.sql`) instead.
    #[arg(long, env = "STATEMENTS", default_value = "prepared", value_parser = PossibleValuesParser::new(["prepared", "unnamed"]).map(|word| statement_mode(&word)))]
    pub statements: StatementMode,
    /// Do not count requests for `/metrics` (gauges stay). Exists to
    /// measure what counting costs.
    #[arg(long, env = "NO_METRICS")]
    pub no_metrics: bool,
    /// One line per request on stderr (peer, request line, status, bytes,
    /// seconds). Off by default.
    #[arg(long, env = "ACCESS_LOG")]
    pub access_log: bool,
    /// `multi` (work-stealing) or `per-core` (a runtime, listener and pool
    /// per worker thread).
    #[arg(long, env = "RUNTIME", value_enum, default_value_t = RuntimeShape::PerCore)]
    pub runtime: RuntimeShape,
    /// Scheduling policy of the serving threads: `batch` (Linux's
    /// SCHED_BATCH: woken by a socket, they do not preempt the thread
    /// running on their CPU) or `normal`. Default is `batch`.
    #[arg(long, env = "SCHEDULING", value_enum, default_value_t = Scheduling::Batch)]
    pub scheduling: Scheduling,
}

/// Settings of `bakeoff seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedConfig {
    /// PostgreSQL connection string, as for `serve`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Contacts to generate.
    #[arg(long, env = "CONTACTS", default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(0..))]
    pub contacts: i32,
}

const DEFAULT_DATABASE_URL: &str = "postgresql://postgres@localhost/bakeoff";

impl ServeConfig {
    /// Worker threads, defaulting to the cores this process may use.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads
            .map(usize::from)
            .unwrap_or_else(available_cores)
    }

    /// Pool size in all, defaulting to twice the cores.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
            .unwrap_or_else(|| 2 * available_cores() as u32)
    }

    /// The checkout timeout.
    pub fn pool_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_timeout_ms)
    }

    /// The pool options, for pools of `size` connections.
    pub fn pool_options(&self, size: u32) -> PoolOptions {
        PoolOptions {
            size,
            checkout_timeout: self.pool_timeout(),
            mode: self.pool_mode,
            statements: self.statements,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
        }
    }

    /// What every connection's socket wrapper enforces.
    pub fn connection_limits(&self) -> Limits {
        Limits {
            max_head_bytes: self.max_head_bytes as usize,
            write_timeout: Duration::from_secs(self.write_timeout_s),
        }
    }

    /// The `/fibonacci` admission limit, defaulting to 64 per core.
    pub fn fib_queue(&self) -> usize {
        self.fib_queue
            .map_or_else(|| 64 * available_cores(), |queue| queue as usize)
    }
}

fn pool_mode(word: &str) -> PoolMode {
    match word {
        "exclusive" => PoolMode::Exclusive,
        _ => PoolMode::Shared,
    }
}

fn statement_mode(word: &str) -> StatementMode {
    match word {
        "unnamed" => StatementMode::Unnamed,
        _ => StatementMode::Prepared,
    }
}

/// Cores this process may run on (honours `taskset`).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
