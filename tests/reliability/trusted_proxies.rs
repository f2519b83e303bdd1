//! To the standard of the trusted proxies (issue #12): bounded request
//! heads, a shutdown that waits only for work, fast failure while the
//! database is down, and a write timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn};
use testkit::pg;

use crate::KIT;
use crate::database_health::pool_gauge;
use crate::helpers::{
    assert_503, figure, lock_contacts, ms, pg_client, quantile, seed, serial, small_receive_buffer,
    spread, timed_get, unread_bytes, url_with, wait_for_200,
};
use crate::shutdown::wait_for_lock_waiters;

/// Reads until the server closes the connection (end of stream or a reset),
/// at most `limit`; false when it is still open then.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
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

/// Sends `head` (ignoring a reset: the server may refuse before it has it
/// all) and returns the status of the answer, and whether the server then
/// closed the connection.
fn refused_head(addr: SocketAddr, head: &[u8]) -> (Option<u16>, bool) {
    let mut conn = Conn::connect(addr);
    let _ = conn.try_send(head);
    let status = conn
        .read_response(false)
        .ok()
        .map(|response| response.status);
    let mut stream = conn.stream().try_clone().unwrap();
    (status, closed_within(&mut stream, Duration::from_secs(3)))
}

/// Request heads are bounded (16 KB by default): one long header, many
/// headers or a long request line are refused (431, or 414 for the target)
/// and the connection closed, so an open connection cannot pin more.
#[test]
fn request_heads_over_the_bound_are_refused_and_the_connection_closed() {
    let _serial = serial();
    let test = "bounded request heads";
    let address = KIT.addr();
    let long_header = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..90)
            .map(|index| format!("X-Header-{index}: {}\r\n", "b".repeat(200)))
            .collect::<String>()
    );
    let long_target = format!(
        "GET /version?padding={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "c".repeat(20 * 1024)
    );
    for (case, head, expected) in [
        ("a 100 KB header value", long_header, 431),
        ("90 headers of 200 bytes", many_headers, 431),
        ("a 20 KB request target", long_target, 414),
    ] {
        let (status, closed) = refused_head(address, head.as_bytes());
        assert_eq!(status, Some(expected), "{test}: {case}");
        assert!(closed, "{test}: {case}: the connection stayed open");
    }
    // A head just under the bound is served, on a connection kept alive.
    let mut conn = Conn::connect(address);
    let near = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Near: {}\r\n\r\n",
        "d".repeat(15 * 1024)
    );
    conn.send(near.as_bytes());
    let response = conn.read_response(false).unwrap();
    assert_eq!(response.status, 200, "{test}: a 15 KB head: {response}");
    assert_eq!(conn.get("/version").status, 200);
    // The bound is a setting.
    let server = KIT.start_server(&KIT.fixture().database_url, &[("MAX_HEAD_BYTES", "65536")]);
    let (status, _) = refused_head(
        server.addr,
        format!(
            "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
            "e".repeat(40 * 1024)
        )
        .as_bytes(),
    );
    assert_eq!(
        status,
        Some(200),
        "{test}: a 40 KB head with MAX_HEAD_BYTES=65536"
    );
    KIT.assert_bad_setting_refused("MAX_HEAD_BYTES", "4096");
    figure(
        test,
        "a 100 KB header value and 90 × 200-byte headers → 431, a 20 KB target → 414, \
         each connection closed; a 15 KB head → 200 and kept alive; MAX_HEAD_BYTES=65536 \
         serves a 40 KB head",
    );
}

/// SIGTERM with slow requests in flight and clients that never finish their
/// heads or sit idle: those connections close at once, the requests finish,
/// and the process exits as soon as the last one is answered.
#[test]
fn shutdown_closes_idle_and_half_sent_connections_at_once_and_exits_after_the_last_answer() {
    let _serial = serial();
    let test = "shutdown waits only for work";
    let app = "shutdown_idle";
    let mut server = KIT.start_server(
        &url_with(app),
        &[
            ("STATEMENT_TIMEOUT_MS", "20000"),
            ("POOL_SIZE", "2"),
            ("DRAIN_TIMEOUT_S", "10"),
        ],
    );
    let address = server.addr;
    wait_for_200(address, "/contacts/1", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let lock = lock_contacts(&mut locker);
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let answer = timed_get(address, "/contacts/1");
                (Instant::now(), answer)
            })
        })
        .collect();
    let mut half_sent: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut conn = Conn::connect(address);
            assert_eq!(conn.get("/version").status, 200);
            conn.stream().try_clone().unwrap()
        })
        .collect();
    wait_for_lock_waiters(&mut admin, app, |waiting| waiting >= 1);
    thread::sleep(Duration::from_millis(100));

    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    for stream in half_sent.iter_mut().chain(idle.iter_mut()) {
        assert!(
            closed_within(stream, Duration::from_secs(1)),
            "{test}: a connection with no request in flight was still open 1 s after SIGTERM"
        );
    }
    let idle_closed = signalled.elapsed();
    thread::sleep(Duration::from_millis(1500).saturating_sub(signalled.elapsed()));
    lock.commit().unwrap();
    let mut last_answer = signalled;
    for request in in_flight {
        let (answered, (_, response)) = request.join().unwrap();
        let response = response.unwrap_or_else(|error| panic!("{test}: in flight: {error}"));
        assert_eq!(response.status, 200, "{test}: {response}");
        last_answer = last_answer.max(answered);
    }
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s");
    let exited = Instant::now();
    assert_eq!(status.code(), Some(0), "{test}: {status}");
    let after_last = exited.saturating_duration_since(last_answer);
    assert!(
        after_last < Duration::from_secs(1),
        "{test}: exit {after_last:?} after the last in-flight answer (drain timeout 10 s)"
    );
    figure(
        test,
        format!(
            "SIGTERM with 3 requests held by a lock, 3 half-sent heads and 2 idle keep-alive \
             connections: the 5 closed within {:.0} ms; the 3 answered 200 once the lock was \
             released ({:.0} ms after the signal); exit 0 {:.0} ms after the last answer",
            ms(idle_closed),
            ms(last_answer - signalled),
            ms(after_last)
        ),
    );
}

/// While PostgreSQL is down, database requests answer 503 at once instead of
/// each waiting the pool timeout; `/readyz` too; the first 200 comes within
/// a second of PostgreSQL accepting connections again, and none fails after.
fn outage_fails_fast(mode: &'static str) {
    let _serial = serial();
    let test = format!("fast failure during an outage ({mode})");
    let mut cluster = pg::Cluster::start("bakeoff").expect("a second cluster");
    seed(&cluster, 100);
    let url = cluster.url("bakeoff");
    // A long pool timeout, so that waiting it out cannot pass for failing fast.
    let mut server = KIT.start_server(&url, &[("POOL_MODE", mode), ("POOL_TIMEOUT_MS", "3000")]);
    let address = server.addr;
    wait_for_200(address, "/types", Duration::from_secs(10));
    let mut conn = Conn::connect(address);
    assert_eq!(conn.get("/types").status, 200);

    cluster.stop();
    let mut latencies = Vec::new();
    for index in 0..60 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let started = Instant::now();
        let response = conn.get(target);
        latencies.push(started.elapsed());
        assert_503(&format!("{test}: {target}"), &response);
    }
    // The first request or two find out that the database is gone.
    let settled = &latencies[2..];
    let (median, worst) = (quantile(settled, 0.5), quantile(settled, 1.0));
    assert!(
        median <= Duration::from_millis(50),
        "{test}: 503s took {} (p50 / p99 / max) with the database known to be down",
        spread(settled)
    );
    assert!(
        worst < Duration::from_millis(1000),
        "{test}: a 503 took {worst:?} with the database known to be down"
    );
    assert_eq!(conn.get("/version").status, 200);

    cluster.start_again().expect("restart PostgreSQL");
    let up = Instant::now();
    let recovery = wait_for_200(address, "/types", Duration::from_secs(5));
    assert!(
        recovery <= Duration::from_secs(1),
        "{test}: first 200 {recovery:?} after PostgreSQL accepted connections"
    );
    let mut conn = Conn::connect(address);
    for index in 0..200 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let response = conn.get(target);
        assert_eq!(
            response.status, 200,
            "{test}: after recovery, {target}: {response}"
        );
    }
    testkit::assert_alive(&mut server);
    figure(
        &test,
        format!(
            "pool timeout 3 s; database down: 60 requests (incl. /readyz) all 503 + Retry-After, \
             latency {} (first two: {:.1} / {:.1} ms); first 200 {:.0} ms after PostgreSQL \
             accepted connections (polling), then 200 requests all 200",
            spread(settled),
            ms(latencies[0]),
            ms(latencies[1]),
            ms(up.elapsed().min(recovery)),
        ),
    );
}

#[test]
fn while_the_database_is_down_requests_fail_fast_shared_pool() {
    outage_fails_fast("shared");
}

#[test]
fn while_the_database_is_down_requests_fail_fast_exclusive_pool() {
    outage_fails_fast("exclusive");
}

/// A client that stops reading is cut off after the write timeout, freeing
/// what its connection held; a slow reader that keeps reading is not.
#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let _serial = serial();
    let test = "write timeout";
    let server = KIT.start_server(&KIT.fixture().database_url, &[("WRITE_TIMEOUT_S", "1")]);
    let address = server.addr;
    wait_for_200(address, "/types", Duration::from_secs(10));
    let target = "/contacts/for?limit=200";
    let page = http::get(address, target).body.len();
    // Enough answers to fill both sockets' buffers many times over.
    let batch = |count: usize| -> Vec<u8> {
        (0..count)
            .flat_map(|_| http::request_bytes("GET", target))
            .collect()
    };
    let mut stuck = Conn::connect(address);
    // A small receive window, so the server's writes block soon.
    small_receive_buffer(stuck.stream());
    stuck.send(&batch(300));
    let mut slow = Conn::connect(address);
    const SLOW_PAGES: usize = 100;
    slow.send(&batch(SLOW_PAGES));
    let slow_reader = thread::spawn(move || {
        let mut pages = 0;
        while pages < SLOW_PAGES {
            // A page every 100 ms: slower than the server writes, but never
            // a second without taking bytes.
            let response = slow
                .read_response(false)
                .expect("the slow reader was cut off");
            assert_eq!(response.status, 200);
            pages += 1;
            thread::sleep(Duration::from_millis(100));
        }
        pages
    });
    // The server is stuck writing to it once the bytes waiting for it stop
    // growing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut waiting, mut still) = (0, 0);
    while still < 5 {
        thread::sleep(Duration::from_millis(100));
        let now = unread_bytes(stuck.stream());
        (waiting, still) = if now == waiting {
            (now, still + 1)
        } else {
            (now, 0)
        };
        assert!(
            Instant::now() < deadline,
            "{test}: the server never stopped writing"
        );
    }
    let stuck_since = Instant::now() - Duration::from_millis(500);
    // Nothing is read from it now (reading is progress, which the timeout
    // allows): the server's own count must drop, the slow reader's
    // connection still open.
    assert!(
        open_connections_below(address, 3, Duration::from_secs(6)),
        "{test}: the client that stopped reading was not cut off (write timeout 1 s)"
    );
    let cut_off = stuck_since.elapsed();
    assert!(
        !slow_reader.is_finished(),
        "{test}: the slow reader finished first, so the count proves nothing"
    );
    // Its socket: what was sent before, then the end of the stream or a reset.
    let mut stream = stuck.stream().try_clone().unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(4)),
        "{test}: the client that stopped reading still has an open socket"
    );
    assert_eq!(slow_reader.join().unwrap(), SLOW_PAGES);
    figure(
        test,
        format!(
            "WRITE_TIMEOUT_S=1: a client that pipelined 300 pages ({:.1} MB) and never read \
             was cut off {:.1} s after the server got stuck writing to it; a reader taking a \
             page every 100 ms got all {SLOW_PAGES} pages",
            (300 * page) as f64 / 1e6,
            cut_off.as_secs_f64()
        ),
    );
}

/// Polls `/metrics` until it counts fewer than `limit` open connections (its
/// own included), at most `wait`.
fn open_connections_below(address: SocketAddr, limit: u64, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if pool_gauge(address, "bakeoff_open_connections") < limit {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
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
