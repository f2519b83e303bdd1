//! The command line and environment: every setting is an environment
//! variable (twelve-factor) and a flag of the same name; the flag wins. The
//! words of the command line become the other modules' types here.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::{Connector, PoolMode, PoolOptions, SessionTarget, StatementMode};
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

/// Parses the connection string, adding what every connection of the
/// server needs: a statement timeout, a connect timeout, an application
/// name, TCP keepalives and a TCP user timeout. Several hosts are libpq's
/// (`host=a,b port=5432,5433`, `postgresql://a:5432,b:5433/db`), and so is
/// `target_session_attrs`, all six of its values (see
/// `db/session_target.rs`). An error names the variable, never the string
/// (it may hold a password).
pub fn postgres_config(database_url: &str, connect_timeout: Duration) -> Result<Connector, String> {
    let (rest, target) = split_session_target(database_url);
    let target = match target {
        None => SessionTarget::Any,
        Some(word) => SessionTarget::parse(&word).ok_or_else(|| {
            format!(
                "invalid DATABASE_URL: target_session_attrs must be any, read-write, read-only, \
                 primary, standby or prefer-standby, not {word:?}"
            )
        })?,
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|error| format!("invalid DATABASE_URL: {error}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("bakeoff");
    }
    // tokio-postgres has no query timeout and leaves the kernel's keepalive
    // at two hours: a database host that vanishes without closing its
    // sockets (power loss, a network partition) would hold a connection, and
    // every request queued on it, for that long. The kernel notices instead:
    // an idle connection is probed after 10 s (then every 5 s, 3 times), and
    // data left unacknowledged for 30 s ends it. No cost per request;
    // settings given in the connection string win.
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok(Connector { config, target })
}

/// The connection string without its `target_session_attrs`, and that
/// value: tokio-postgres refuses the values it does not know (`primary`,
/// `standby`, `prefer-standby`), so the server takes the key out and checks
/// sessions itself. Both of libpq's forms: a URL's query parameter, and a
/// key=value pair (quoted or not). Anything malformed is left as it is, for
/// tokio-postgres's parser to refuse.
fn split_session_target(database_url: &str) -> (String, Option<String>) {
    const KEY: &str = "target_session_attrs";
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let Some((base, query)) = database_url.split_once('?') else {
            return (database_url.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, word) = pair.split_once('=').unwrap_or((pair, ""));
                let ours = crate::params::decoded_eq(key, KEY);
                if ours {
                    value = Some(percent_decoded(word));
                }
                !ours
            })
            .collect();
        return match kept.is_empty() {
            true => (base.to_owned(), value),
            false => (format!("{base}?{}", kept.join("&")), value),
        };
    }
    let mut rest = String::with_capacity(database_url.len());
    let mut value = None;
    let mut pairs = KeywordPairs {
        text: database_url,
        at: 0,
    };
    while let Some(pair) = pairs.next_pair() {
        match pair {
            Some((key, word, _)) if key == KEY => value = Some(word),
            Some((_, _, span)) => {
                rest.push_str(&database_url[span.0..span.1]);
                rest.push(' ');
            }
            None => return (database_url.to_owned(), None),
        }
    }
    (rest.trim_end().to_owned(), value)
}

/// A URL query value, percent-decoded (invalid escapes kept as they are).
fn percent_decoded(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|digit| (*digit as char).to_digit(16))
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's key=value syntax, pair by pair: `key = value`, the value bare or
/// in single quotes, a backslash escaping the next character.
struct KeywordPairs<'a> {
    /// The whole connection string.
    text: &'a str,
    /// Byte offset of the next pair.
    at: usize,
}

impl KeywordPairs<'_> {
    /// `None` at the end; `Some(None)` for a malformed pair; otherwise the
    /// key, the unescaped value and the byte span of the whole pair.
    #[allow(clippy::type_complexity)]
    fn next_pair(&mut self) -> Option<Option<(String, String, (usize, usize))>> {
        let text = self.text;
        let skip_space = |mut at: usize| {
            while text[at..].starts_with(|c: char| c.is_whitespace()) {
                at += text[at..].chars().next().map_or(1, char::len_utf8);
            }
            at
        };
        let start = skip_space(self.at);
        if start >= text.len() {
            return None;
        }
        let key_end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '=')
            .map_or(text.len(), |offset| start + offset);
        let key = text[start..key_end].to_owned();
        let equals = skip_space(key_end);
        if !text[equals..].starts_with('=') {
            return Some(None);
        }
        let mut at = skip_space(equals + 1);
        let mut value = String::new();
        let mut chars = text[at..].chars();
        let quoted = text[at..].starts_with('\'');
        if quoted {
            chars.next();
            at += 1;
        }
        let mut closed = !quoted;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    at += 1;
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                        at += escaped.len_utf8();
                    }
                    continue;
                }
                '\'' if quoted => {
                    at += 1;
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
            at += c.len_utf8();
        }
        if !closed {
            return Some(None);
        }
        self.at = at;
        Some(Some((key, value, (start, at))))
    }
}

/// tokio-postgres's default keepalive idle time, two hours.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// Idle seconds before the first keepalive probe on a database connection.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
/// Seconds between keepalive probes.
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the kernel closes the connection.
pub const KEEPALIVES_RETRIES: u32 = 3;
/// How long data sent to the database may stay unacknowledged by its host.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// `host:port,host:port/dbname` of a connection string, with its
/// `target_session_attrs` when not `any`, for logs: never the user or the
/// password.
pub fn describe_database(connector: &Connector) -> String {
    use tokio_postgres::config::Host;
    let config = &connector.config;
    let ports = config.get_ports();
    let hosts: Vec<String> = match config.get_hosts() {
        [] => vec!["localhost".to_owned()],
        hosts => hosts
            .iter()
            .map(|host| match host {
                Host::Tcp(host) => host.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect(),
    };
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or("(default)");
    match connector.target {
        SessionTarget::Any => format!("{}/{dbname}", hosts.join(",")),
        target => format!(
            "{}/{dbname} target_session_attrs={}",
            hosts.join(","),
            target.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (String, Option<String>) {
        split_session_target(text)
    }

    #[test]
    fn the_target_is_taken_out_of_a_url() {
        assert_eq!(
            split("postgresql://u:p@a:5432,b:5433/db?target_session_attrs=primary"),
            (
                "postgresql://u:p@a:5432,b:5433/db".to_owned(),
                Some("primary".to_owned())
            )
        );
        assert_eq!(
            split(
                "postgres://a/db?application_name=x&target_session_attrs=prefer%2Dstandby&connect_timeout=2"
            ),
            (
                "postgres://a/db?application_name=x&connect_timeout=2".to_owned(),
                Some("prefer-standby".to_owned())
            )
        );
        assert_eq!(
            split("postgresql://a/db"),
            ("postgresql://a/db".to_owned(), None)
        );
    }

    #[test]
    fn the_target_is_taken_out_of_key_value_pairs() {
        assert_eq!(
            split("host=a,b port=5432,5433 target_session_attrs=standby dbname=x"),
            (
                "host=a,b port=5432,5433 dbname=x".to_owned(),
                Some("standby".to_owned())
            )
        );
        assert_eq!(
            split("password='a \\' b' target_session_attrs = 'read-write'"),
            (
                "password='a \\' b'".to_owned(),
                Some("read-write".to_owned())
            )
        );
        assert_eq!(
            split("host=/tmp password=a\\ b"),
            ("host=/tmp password=a\\ b".to_owned(), None)
        );
        // Malformed: left for tokio-postgres to refuse.
        assert_eq!(split("host"), ("host".to_owned(), None));
    }

    #[test]
    fn several_hosts_and_every_target_reach_the_connector_and_the_log_line() {
        let timeout = Duration::from_secs(1);
        let connector = postgres_config(
            "postgresql://u:secret@db1:5432,db2:5433/api?target_session_attrs=primary",
            timeout,
        )
        .unwrap();
        assert_eq!(connector.target, SessionTarget::Primary);
        assert_eq!(connector.config.get_hosts().len(), 2);
        let line = describe_database(&connector);
        assert_eq!(line, "db1:5432,db2:5433/api target_session_attrs=primary");
        assert!(!line.contains("secret"));
        for word in [
            "any",
            "read-write",
            "read-only",
            "standby",
            "prefer-standby",
        ] {
            let connector = postgres_config(
                &format!("host=a,b port=1,2 password=secret target_session_attrs={word}"),
                timeout,
            )
            .unwrap();
            assert_eq!(connector.target.as_str(), word);
            assert!(!describe_database(&connector).contains("secret"));
        }
        let refused = postgres_config("postgresql://a/db?target_session_attrs=master", timeout);
        assert!(refused.is_err_and(|error| error.contains("target_session_attrs")));
    }
}
