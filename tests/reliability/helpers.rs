//! What the reliability tests share: the lock that runs them one at a
//! time, figures and latency spreads, connections that report errors
//! instead of panicking, whether the server closed a connection, and probes
//! of PostgreSQL and of the server process.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};
use testkit::{assert_no_leak, pg};

use crate::{KIT, SECRET, SERVICE_UNAVAILABLE};

/// The reliability tests run one at a time: several measure latency or
/// memory, and several saturate both cores on purpose.
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|error| error.into_inner())
}

/// Prints a measured figure (shown with `--nocapture`).
pub(crate) fn figure(test: &str, text: impl std::fmt::Display) {
    eprintln!("[figure] {test}: {text}");
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The quantile at `fraction` (0..=1) of `values`, or zero for none.
pub(crate) fn quantile(values: &[Duration], fraction: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

/// p50 / p99 / max in milliseconds, for figures.
pub(crate) fn spread(values: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
        ms(quantile(values, 0.5)),
        ms(quantile(values, 0.99)),
        ms(quantile(values, 1.0)),
        values.len()
    )
}

/// A connection that reports errors instead of panicking, with a read
/// timeout so that a hang shows as an error.
pub(crate) fn try_connect(addr: SocketAddr, read_timeout: Duration) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    Ok(Conn::from_stream(stream))
}

/// One GET on a fresh connection; any failure is an `Err` with its reason.
pub(crate) fn try_get(
    addr: SocketAddr,
    target: &str,
    read_timeout: Duration,
) -> io::Result<Response> {
    let mut conn = try_connect(addr, read_timeout)?;
    conn.try_send(&http::request_bytes("GET", target))?;
    conn.read_response(false)
}

/// GET on a fresh connection, timed.
pub(crate) fn timed_get(addr: SocketAddr, target: &str) -> (Duration, io::Result<Response>) {
    let start = Instant::now();
    let response = try_get(addr, target, Duration::from_secs(10));
    (start.elapsed(), response)
}

/// Asserts the contract's 503: exact body, `Retry-After` in seconds, no leak.
#[track_caller]
pub(crate) fn assert_503(what: &str, response: &Response) {
    assert_eq!(response.status, 503, "{what}: {response}");
    assert_eq!(
        response.body_str(),
        SERVICE_UNAVAILABLE,
        "{what}: {response}"
    );
    let retry = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After: {response}"));
    assert!(
        !retry.is_empty() && retry.bytes().all(|byte| byte.is_ascii_digit()),
        "{what}: Retry-After {retry:?}"
    );
    assert_no_leak(what, response, &[SECRET]);
}

/// Polls `target` until it answers 200, at most `limit`; the time it took.
pub(crate) fn wait_for_200(addr: SocketAddr, target: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(response) = try_get(addr, target, Duration::from_secs(5))
            && response.status == 200
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{target} did not answer 200 within {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A direct connection to the test database (as `postgres`).
pub(crate) fn pg_client() -> postgres::Client {
    postgres::Client::connect(
        &KIT.fixture().cluster.conn_string("bakeoff"),
        postgres::NoTls,
    )
    .expect("connect to the test database")
}

/// Opens a transaction on `client` that holds an ACCESS EXCLUSIVE lock on
/// `contacts` (every query of that table waits) until it ends.
pub(crate) fn lock_contacts(client: &mut postgres::Client) -> postgres::Transaction<'_> {
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    tx
}

/// `DATABASE_URL` of the shared test cluster with a password (ignored by
/// its trust authentication, so it only travels through the server's
/// configuration and logs) and an application name of the test's own, so
/// that its backends can be found in `pg_stat_activity`.
pub(crate) fn url_with(application_name: &str) -> String {
    format!(
        "postgresql://postgres:{SECRET}@127.0.0.1:{}/bakeoff?application_name={application_name}",
        KIT.fixture().cluster.port
    )
}

/// Backends of `application_name` (the server's pooled connections).
pub(crate) fn backends(client: &mut postgres::Client, application_name: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .unwrap()
        .get(0)
}

/// Resident memory of a process, from /proc, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of a process.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Seeds a cluster of a test's own with `bakeoff seed`.
pub(crate) fn seed(cluster: &pg::Cluster, contacts: u32) {
    let out = std::process::Command::new(KIT.bin())
        .args(["seed", "--contacts", &contacts.to_string()])
        .env("DATABASE_URL", cluster.url("bakeoff"))
        .env_remove("CONTACTS")
        .output()
        .expect("run bakeoff seed");
    assert!(
        out.status.success(),
        "bakeoff seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Shrinks `stream`'s receive buffer (and so the window it advertises), so
/// that a server writing to a client that does not read blocks soon.
pub(crate) fn small_receive_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let small: libc::c_int = 16 * 1024;
    // SAFETY: setsockopt on our own socket with a valid int and its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
}

/// Bytes received on `stream` and not read yet.
pub(crate) fn unread_bytes(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
    n as usize
}

/// Reads until the server closes the connection (end of stream or a reset),
/// at most `limit`; false when it is still open then.
pub(crate) fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut scratch = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
