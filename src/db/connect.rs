//! Opening one PostgreSQL session: the hosts of the connection string tried
//! in turn (libpq's multi-host syntax), each session checked against
//! libpq's `target_session_attrs`, and the socket counted for the
//! per-runtime metrics.
//!
//! tokio-postgres 0.7 parses several hosts and `load_balance_hosts`, but of
//! `target_session_attrs` it knows only `any`, `read-write` and `read-only`,
//! which it checks with `SHOW transaction_read_only`. That answer follows
//! the *role's* `default_transaction_read_only` as much as the server's
//! role in replication: the read-only role of `sql/roles.sql` is refused by
//! `read-write` on every host, primary included. libpq's `primary`,
//! `standby` and `prefer-standby` ask whether the server is in recovery
//! instead, which is what a read-only API behind a failover needs. So the
//! server opens its sessions itself, with `Config::connect_raw` on a socket
//! of its own, and checks all six values here; the same socket is where the
//! per-runtime counters of `/metrics` count PostgreSQL reads and writes.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, LoadBalanceHosts};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::metrics;

/// libpq's `target_session_attrs`: which of the listed hosts a session may
/// be opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTarget {
    /// Any host that accepts the connection (the default).
    Any,
    /// A session that may write: `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// A session that may not write: `transaction_read_only` is `on`.
    ReadOnly,
    /// A server not in recovery: the primary.
    Primary,
    /// A server in recovery: a hot standby.
    Standby,
    /// A standby if one of the hosts is, else any host.
    PreferStandby,
}

impl SessionTarget {
    /// The value as libpq spells it, or `None` for an unknown one.
    pub fn parse(word: &str) -> Option<SessionTarget> {
        Some(match word {
            "any" => SessionTarget::Any,
            "read-write" => SessionTarget::ReadWrite,
            "read-only" => SessionTarget::ReadOnly,
            "primary" => SessionTarget::Primary,
            "standby" => SessionTarget::Standby,
            "prefer-standby" => SessionTarget::PreferStandby,
            _ => return None,
        })
    }

    /// The value as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionTarget::Any => "any",
            SessionTarget::ReadWrite => "read-write",
            SessionTarget::ReadOnly => "read-only",
            SessionTarget::Primary => "primary",
            SessionTarget::Standby => "standby",
            SessionTarget::PreferStandby => "prefer-standby",
        }
    }

    /// The passes over the host list: `prefer-standby` looks for a standby
    /// first and takes any host on a second pass, as libpq does.
    fn passes(self) -> &'static [SessionTarget] {
        match self {
            SessionTarget::PreferStandby => &[SessionTarget::Standby, SessionTarget::Any],
            SessionTarget::Any => &[SessionTarget::Any],
            SessionTarget::ReadWrite => &[SessionTarget::ReadWrite],
            SessionTarget::ReadOnly => &[SessionTarget::ReadOnly],
            SessionTarget::Primary => &[SessionTarget::Primary],
            SessionTarget::Standby => &[SessionTarget::Standby],
        }
    }
}

/// What connects: the parsed connection string and the session target.
#[derive(Clone)]
pub struct Connector {
    /// Everything but `target_session_attrs`, which tokio-postgres never
    /// sees (it would refuse the values it does not know).
    pub config: tokio_postgres::Config,
    /// Which host a session may be opened on.
    pub target: SessionTarget,
}

/// Why no session could be opened: the last host's reason. Holds no
/// password (hosts and ports only).
#[derive(Debug)]
pub enum ConnectError {
    /// The connection string names no host.
    NoHost,
    /// The socket could not be opened (refused, unreachable, timed out).
    Socket {
        /// `host:port` or the socket directory.
        host: String,
        /// The operating system's reason.
        error: io::Error,
    },
    /// The session could not be started, or a query on it failed.
    Postgres(tokio_postgres::Error),
    /// The session opened, but the host is not what the target asks for.
    NotTarget {
        /// `host:port` or the socket directory.
        host: String,
        /// The target it missed.
        target: SessionTarget,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoHost => f.write_str("the connection string names no host"),
            ConnectError::Socket { host, error } => write!(f, "{host}: {error}"),
            ConnectError::Postgres(error) => match std::error::Error::source(error) {
                Some(cause) => write!(f, "{error}: {cause}"),
                None => write!(f, "{error}"),
            },
            ConnectError::NotTarget { host, target } => write!(
                f,
                "{host}: not a session for target_session_attrs={}",
                target.as_str()
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(error: tokio_postgres::Error) -> ConnectError {
        ConnectError::Postgres(error)
    }
}

/// One host of the list: where to connect, and its name for messages.
struct Endpoint {
    /// A TCP host name or address, or a socket directory.
    host: Host,
    /// `hostaddr`, which wins over resolving `host`.
    hostaddr: Option<IpAddr>,
    /// Its port, or the one port given for every host (5432 by default).
    port: u16,
}

impl Endpoint {
    /// `host:port` (or the socket directory and port), for messages.
    fn describe(&self) -> String {
        match (&self.host, self.hostaddr) {
            (_, Some(address)) => SocketAddr::new(address, self.port).to_string(),
            (Host::Tcp(name), None) => format!("{name}:{}", self.port),
            (Host::Unix(path), None) => format!("{}:{}", path.display(), self.port),
        }
    }
}

impl Connector {
    /// Opens a session on the first host, in the connection string's order
    /// (or shuffled, with `load_balance_hosts=random`), that connects and
    /// meets the target; its connection task is spawned on the current
    /// runtime. The error is the last host's.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let mut endpoints = self.endpoints()?;
        if self.config.get_load_balance_hosts() == LoadBalanceHosts::Random {
            shuffle(&mut endpoints);
        }
        let mut last = ConnectError::NoHost;
        for &pass in self.target.passes() {
            for endpoint in &endpoints {
                match self.connect_to(endpoint, pass).await {
                    Ok(client) => return Ok(client),
                    Err(error) => last = error,
                }
            }
        }
        Err(last)
    }

    /// The hosts, with libpq's pairing rules: `host` and `hostaddr` lists of
    /// one length; one port for all, or one per host.
    fn endpoints(&self) -> Result<Vec<Endpoint>, ConnectError> {
        let (hosts, hostaddrs, ports) = (
            self.config.get_hosts(),
            self.config.get_hostaddrs(),
            self.config.get_ports(),
        );
        let count = hosts.len().max(hostaddrs.len());
        (0..count)
            .map(|index| {
                let hostaddr = hostaddrs.get(index).copied();
                let host = match (hosts.get(index), hostaddr) {
                    (Some(host), _) => host.clone(),
                    (None, Some(address)) => Host::Tcp(address.to_string()),
                    (None, None) => return Err(ConnectError::NoHost),
                };
                let port = ports
                    .get(index)
                    .or_else(|| ports.first())
                    .copied()
                    .unwrap_or(5432);
                Ok(Endpoint {
                    host,
                    hostaddr,
                    port,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|endpoints| match endpoints.is_empty() {
                true => Err(ConnectError::NoHost),
                false => Ok(endpoints),
            })
    }

    /// A session on one host that meets `target`, or why not.
    async fn connect_to(
        &self,
        endpoint: &Endpoint,
        target: SessionTarget,
    ) -> Result<Client, ConnectError> {
        let socket = self.socket(endpoint).await?;
        let (client, connection) = self.config.connect_raw(socket, NoTls).await?;
        tokio::spawn(Driver(connection));
        metrics::database_connected();
        if !meets(&client, target).await? {
            // Dropping the client ends its connection task, which closes
            // the session politely.
            return Err(ConnectError::NotTarget {
                host: endpoint.describe(),
                target,
            });
        }
        Ok(client)
    }

    /// The socket to one host: each of its addresses in turn, each attempt
    /// bounded by `connect_timeout`; TCP sockets get no delay, the
    /// configured keepalive and user timeout (as tokio-postgres sets them).
    async fn socket(&self, endpoint: &Endpoint) -> Result<DatabaseSocket, ConnectError> {
        let timeout = self.config.get_connect_timeout().copied();
        let failed = |error| ConnectError::Socket {
            host: endpoint.describe(),
            error,
        };
        let name = match &endpoint.host {
            Host::Unix(directory) => {
                let path: PathBuf = directory.join(format!(".s.PGSQL.{}", endpoint.port));
                let stream = bounded(timeout, UnixStream::connect(path))
                    .await
                    .map_err(failed)?;
                return Ok(DatabaseSocket::Unix(stream));
            }
            Host::Tcp(name) => name,
        };
        let addresses: Vec<SocketAddr> = match endpoint.hostaddr {
            Some(address) => vec![SocketAddr::new(address, endpoint.port)],
            None => tokio::net::lookup_host((name.as_str(), endpoint.port))
                .await
                .map_err(failed)?
                .collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for address in addresses {
            match bounded(timeout, TcpStream::connect(address)).await {
                Ok(stream) => {
                    self.configure(&stream).map_err(failed)?;
                    return Ok(DatabaseSocket::Tcp(stream));
                }
                Err(error) => last = error,
            }
        }
        Err(failed(last))
    }

    /// What tokio-postgres's own connect sets on a TCP socket.
    fn configure(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let socket = SockRef::from(stream);
        if let Some(timeout) = self.config.get_tcp_user_timeout() {
            socket.set_tcp_user_timeout(Some(*timeout))?;
        }
        if self.config.get_keepalives() {
            let mut keepalive = TcpKeepalive::new().with_time(self.config.get_keepalives_idle());
            if let Some(interval) = self.config.get_keepalives_interval() {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(retries) = self.config.get_keepalives_retries() {
                keepalive = keepalive.with_retries(retries);
            }
            socket.set_tcp_keepalive(&keepalive)?;
        }
        Ok(())
    }
}

/// Whether the session meets `target`: one round trip, as libpq makes for
/// a server that does not report these settings itself.
async fn meets(client: &Client, target: SessionTarget) -> Result<bool, ConnectError> {
    let (question, wanted) = match target {
        SessionTarget::Any | SessionTarget::PreferStandby => return Ok(true),
        SessionTarget::ReadWrite => ("SHOW transaction_read_only", "off"),
        SessionTarget::ReadOnly => ("SHOW transaction_read_only", "on"),
        SessionTarget::Primary => ("SELECT pg_catalog.pg_is_in_recovery()", "f"),
        SessionTarget::Standby => ("SELECT pg_catalog.pg_is_in_recovery()", "t"),
    };
    let answer = client.simple_query(question).await?;
    Ok(answer.iter().any(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0) == Some(wanted),
        _ => false,
    }))
}

/// A connect that gives up after `timeout`, when there is one.
async fn bounded<T>(
    timeout: Option<Duration>,
    connect: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout {
        None => connect.await,
        Some(timeout) => tokio::time::timeout(timeout, connect)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out",
                ))
            }),
    }
}

/// `load_balance_hosts=random`: a shuffle seeded by std's per-process
/// random hash keys and a counter (no random-number crate for a shuffle of
/// a few hosts).
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let seed = RandomState::new().hash_one(DRAWS.fetch_add(1, Ordering::Relaxed));
    for index in (1..items.len()).rev() {
        let other = RandomState::new().hash_one(seed ^ index as u64) % (index as u64 + 1);
        items.swap(index, other as usize);
    }
}

/// The task that drives a session's socket (tokio-postgres's `Connection`),
/// counting each time it is polled: a wake-up of the runtime for the
/// database.
struct Driver<F>(F);

impl<F: Future + Unpin> Future for Driver<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        metrics::database_driver_polled();
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A socket to PostgreSQL, counting the reads and writes that move bytes
/// (each one system call) for the per-runtime metrics.
pub enum DatabaseSocket {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix socket.
    Unix(UnixStream),
}

impl AsyncRead for DatabaseSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = poll {
            metrics::database_read(buf.filled().len() - before);
        }
        poll
    }
}

impl AsyncWrite for DatabaseSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_write(cx, data),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_write(cx, data),
        };
        if let Poll::Ready(Ok(written)) = poll {
            metrics::database_written(written);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, slices),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, slices),
        };
        if let Poll::Ready(Ok(written)) = poll {
            metrics::database_written(written);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DatabaseSocket::Tcp(stream) => stream.is_write_vectored(),
            DatabaseSocket::Unix(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_value_parses_and_spells_back() {
        for word in [
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ] {
            assert_eq!(
                SessionTarget::parse(word).map(SessionTarget::as_str),
                Some(word)
            );
        }
        assert_eq!(SessionTarget::parse("master"), None);
    }

    #[test]
    fn a_shuffle_keeps_every_host() {
        let mut hosts = [1, 2, 3, 4, 5];
        shuffle(&mut hosts);
        hosts.sort();
        assert_eq!(hosts, [1, 2, 3, 4, 5]);
    }
}
