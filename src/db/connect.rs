//! Opening one PostgreSQL session: the hosts of the connection string tried
//! in turn (libpq's multi-host syntax) until one accepts and its session
//! meets libpq's `target_session_attrs` (`session_target.rs`).
//!
//! tokio-postgres 0.7 parses several hosts and `load_balance_hosts`, but of
//! `target_session_attrs` it knows only three values of six, and checks
//! them in a way a failover cannot use (`session_target.rs` says why). So
//! the server opens its sessions itself, with `Config::connect_raw` on a
//! socket of its own; that socket (`socket.rs`) is where the per-runtime
//! counters of `/metrics` count PostgreSQL reads and writes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, LoadBalanceHosts};
use tokio_postgres::{Client, NoTls};

use super::session_target::{SessionTarget, meets};
use super::socket::{DatabaseSocket, Driver};
use super::sync_batching::SyncBatching;
use crate::metrics;

/// What connects: the parsed connection string and the session target.
#[derive(Clone)]
pub struct Connector {
    /// Everything but `target_session_attrs`, which tokio-postgres never
    /// sees (it would refuse the values it does not know).
    pub config: tokio_postgres::Config,
    /// Which host a session may be opened on.
    pub target: SessionTarget,
    /// Whether sessions batch their statements under one Sync per write
    /// (`sync_batching/`): for shared connections, where many requests'
    /// statements go out together.
    pub batch_syncs: bool,
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
        let client = match self.batch_syncs {
            true => self.start(SyncBatching::new(socket)).await?,
            false => self.start(socket).await?,
        };
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

    /// Starts a session on an open socket and spawns its connection task.
    async fn start<S>(&self, socket: S) -> Result<Client, tokio_postgres::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (client, connection) = self.config.connect_raw(socket, NoTls).await?;
        tokio::spawn(Driver(connection));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_keeps_every_host() {
        let mut hosts = [1, 2, 3, 4, 5];
        shuffle(&mut hosts);
        hosts.sort();
        assert_eq!(hosts, [1, 2, 3, 4, 5]);
    }
}
