//! The server's view of its database: `/readyz` following it, keepalive on
//! its sockets, `starts` pages planned for their own parameters, and a
//! prepare blocked by a lock not taken for an outage.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use testkit::{http, pg};

use crate::helpers::{
    assert_503, figure, lock_contacts, ms, pg_client, serial, timed_get, url_with, wait_for_200,
};
use crate::{KIT, SECRET};

/// `/healthz` needs no database; `/readyz` is 503 while the database is
/// unreachable and 200 once it is back.
#[test]
fn healthz_is_always_200_and_readyz_follows_the_database() {
    let _serial = serial();
    let fixture = KIT.fixture();
    for mode in ["shared", "exclusive"] {
        let port = pg::free_port();
        let url = format!("postgresql://postgres:{SECRET}@127.0.0.1:{port}/bakeoff");
        let server = KIT.start_server(&url, &[("POOL_MODE", mode), ("POOL_TIMEOUT_MS", "300")]);
        let health = http::get(server.addr, "/healthz");
        assert_eq!(health.status, 200, "{mode}: {health}");
        assert_eq!(health.body_str(), r#"{"status":"ok"}"#);
        let (latency, ready) = timed_get(server.addr, "/readyz");
        assert_503(&format!("{mode}: /readyz, database down"), &ready.unwrap());
        assert!(latency < Duration::from_millis(800), "{mode}: {latency:?}");

        let cluster: SocketAddr = ([127, 0, 0, 1], fixture.cluster.port).into();
        let _proxy = testkit::proxy::Proxy::start(port, cluster).expect("listen on the port");
        let took = wait_for_200(server.addr, "/readyz", Duration::from_secs(5));
        let ready = http::get(server.addr, "/readyz");
        assert_eq!(ready.body_str(), r#"{"status":"ready"}"#);
        assert_eq!(http::get(server.addr, "/healthz").status, 200);
        figure(
            "readyz",
            format!(
                "{mode}: /readyz 503 while down, 200 {:.0} ms after the database came back",
                ms(took)
            ),
        );
    }
}

/// The server's database sockets have TCP keepalive after 10 s and a TCP
/// user timeout, instead of the two hours a vanished host would otherwise
/// hold a connection for. Read from the server's own sockets (duplicated
/// with pidfd_getfd).
#[test]
fn database_sockets_have_keepalive_and_a_user_timeout() {
    let _serial = serial();
    let server = KIT.start_server(&url_with("keepalive"), &[("POOL_SIZE", "2")]);
    wait_for_200(server.addr, "/types", Duration::from_secs(10));
    // tokio-postgres sets the options just after connect() returns, so a
    // socket still being opened may not have them yet: read the sockets once
    // the pools count all their connections as open (bb8 counts one only
    // when its manager has finished with it).
    let size = pool_gauge(server.addr, "bakeoff_pool_size");
    let started = Instant::now();
    while pool_gauge(server.addr, "bakeoff_pool_connections") < size {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pools did not open their {size} connections"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let port = KIT.fixture().cluster.port;
    let sockets = peer_sockets(server.pid(), port);
    assert_eq!(
        sockets.len() as u64,
        size,
        "the server's sockets leading to port {port}"
    );
    for fd in sockets {
        let get = |level, name| {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: fd is a socket we own (a duplicate); value and len are valid.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    level,
                    name,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
            value
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1, "SO_KEEPALIVE");
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            10,
            "TCP_KEEPIDLE"
        );
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            5,
            "TCP_KEEPINTVL"
        );
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3, "TCP_KEEPCNT");
        assert_eq!(
            get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
            30_000,
            "TCP_USER_TIMEOUT"
        );
        // SAFETY: our duplicate, closed once.
        unsafe { libc::close(fd) };
    }
    figure(
        "keepalive",
        "database sockets: keepalive after 10 s idle, every 5 s, 3 probes; TCP user timeout 30 s",
    );
}

/// Scans of `index` (of table `contacts`) counted by PostgreSQL so far.
fn index_scans(client: &mut postgres::Client, index: &str) -> i64 {
    client
        .query_one(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1",
            &[&index],
        )
        .unwrap()
        .get(0)
}

/// A `starts` page is planned for its own parameters whatever came before
/// it. A prepared statement would switch to PostgreSQL's generic plan after
/// a few calls with a large offset (their custom plans cost more than the
/// generic one is estimated to) and keep it for the connection's life: a
/// scan of every contact matching the prefix through the prefix index and a
/// sort, several times slower for a common prefix than the custom plan's walk
/// along the primary key. Told apart by PostgreSQL's own index counters.
#[test]
fn starts_pages_are_planned_for_their_own_parameters_after_heavy_ones() {
    let _serial = serial();
    const HEAVY: &str = "/contacts/fetch?starts=m&limit=10&offset=100";
    const LIGHT: &str = "/contacts/fetch?starts=m&limit=10";
    const CALLS: usize = 40;
    let mut client = pg_client();
    let prefix_index = "contacts_lower_last_name";
    // Shared mode prepares the statement on connections whose sessions plan
    // per call; exclusive mode sends it unnamed.
    for mode in ["shared", "exclusive"] {
        let (prefix_before, pkey_before) = (
            index_scans(&mut client, prefix_index),
            index_scans(&mut client, "contacts_pkey"),
        );
        {
            let server = KIT.start_server(
                &url_with("plans"),
                &[("POOL_SIZE", "1"), ("POOL_MODE", mode)],
            );
            // Fresh connections, so that both per-core pools see the mix.
            for target in [HEAVY, LIGHT] {
                for _ in 0..CALLS {
                    let response = http::get(server.addr, target);
                    assert_eq!(response.status, 200, "{mode}: {target}: {response}");
                }
            }
        } // The server stops; its backends report their counters as they exit.

        // Each page is one scan of either index: wait until all are counted.
        let started = Instant::now();
        let (prefix_scans, pkey_scans) = loop {
            let scans = (
                index_scans(&mut client, prefix_index) - prefix_before,
                index_scans(&mut client, "contacts_pkey") - pkey_before,
            );
            if scans.0 + scans.1 >= 2 * CALLS as i64 {
                break scans;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{mode}: PostgreSQL counted {scans:?} scans of ({prefix_index}, contacts_pkey) \
                 for {} pages",
                2 * CALLS
            );
            thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            prefix_scans, 0,
            "{mode}: {prefix_scans} pages went through {prefix_index} (a generic plan), \
             {pkey_scans} along contacts_pkey"
        );
    }

    // The control: the same calls through one prepared statement do switch
    // to the generic plan, so the sequence above is one that springs the
    // trap.
    let sql = include_str!("../../sql/page_starts.sql");
    let prepared = client.prepare(sql).unwrap();
    for (offset, calls) in [(100_i64, CALLS), (0, CALLS)] {
        for _ in 0..calls {
            client.query(&prepared, &[&10_i64, &offset, &"m"]).unwrap();
        }
    }
    let generic: i64 = client
        .query_one(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .unwrap()
        .get(0);
    assert!(
        generic > 0,
        "the control did not switch to a generic plan: the test proves nothing"
    );
    figure(
        "plans",
        format!(
            "{CALLS} × {HEAVY} then {CALLS} × {LIGHT}: the server's pages never used \
             {prefix_index}, in shared or exclusive pool mode; one prepared statement given the same calls ran \
             {generic} of them on the generic plan"
        ),
    );
}

/// A gauge of `/metrics` (a line `name value`).
pub(crate) fn pool_gauge(addr: SocketAddr, name: &str) -> u64 {
    let metrics = http::get(addr, "/metrics");
    assert_eq!(metrics.status, 200, "{metrics}");
    metrics
        .body_str()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Duplicates (pidfd_getfd) every TCP socket of `pid` whose peer port is `port`.
fn peer_sockets(pid: u32, port: u16) -> Vec<libc::c_int> {
    // SAFETY: plain syscalls; the pidfd is closed below.
    let pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as libc::c_int;
    assert!(pidfd >= 0, "pidfd_open: {}", io::Error::last_os_error());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !link.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Ok(target) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        // SAFETY: duplicates the target's descriptor into this process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as libc::c_int;
        if fd < 0 {
            continue;
        }
        // SAFETY: a zeroed sockaddr_storage is valid; len says its size.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: getpeername writes at most `len` bytes into `addr`.
        let rc = unsafe {
            libc::getpeername(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        let peer_port = if rc == 0 && addr.ss_family == libc::AF_INET as libc::sa_family_t {
            // SAFETY: the family says it is a sockaddr_in.
            let v4 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(v4.sin_port))
        } else {
            None
        };
        if peer_port == Some(port) {
            found.push(fd);
        } else {
            // SAFETY: our duplicate.
            unsafe { libc::close(fd) };
        }
    }
    // SAFETY: ours.
    unsafe { libc::close(pidfd) };
    found
}

/// A database that accepts connections but cannot prepare the statements
/// (a lock held on `contacts` until each prepare's statement timeout) is up,
/// not down: the server must not fail fast for it, and serves as soon as
/// the lock goes.
#[test]
fn a_prepare_blocked_by_a_lock_is_not_an_outage() {
    let _serial = serial();
    let test = "prepare blocked by a lock";
    let mut locker = pg_client();
    let lock = lock_contacts(&mut locker);
    let server = KIT.start_server(
        &url_with("blocked_prepare"),
        &[("STATEMENT_TIMEOUT_MS", "200"), ("POOL_TIMEOUT_MS", "1000")],
    );
    // Several rounds of prepares have failed by now.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        pool_gauge(server.addr, "bakeoff_pool_down"),
        0,
        "{test}: the server takes a prepare that failed on an open connection for an outage"
    );
    lock.commit().unwrap();
    let recovery = wait_for_200(server.addr, "/types", Duration::from_secs(5));
    figure(
        test,
        format!(
            "contacts locked while the pools opened (statement timeout 200 ms): \
             bakeoff_pool_down stayed 0; /types 200 {:.0} ms after the lock went",
            ms(recovery)
        ),
    );
}
