//! Slow and broken clients: slowloris, thousands of idle keep-alive
//! connections, a client that never reads, one that stops reading (the
//! write timeout).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use testkit::http::{self, Conn};

use crate::KIT;
use crate::database_health::pool_gauge;
use crate::helpers::{
    closed_within, figure, ms, open_fds, quantile, rss_kib, serial, small_receive_buffer, spread,
    timed_get, try_connect, unread_bytes, url_with, wait_for_200,
};

/// Latencies of `target`, asked `count` times on one keep-alive connection,
/// `pause` apart; panics on anything but 200.
pub(crate) fn latencies(
    addr: SocketAddr,
    target: &str,
    count: usize,
    pause: Duration,
) -> Vec<Duration> {
    let mut conn = Conn::connect(addr);
    (0..count)
        .map(|_| {
            let start = Instant::now();
            let response = conn.get(target);
            assert_eq!(response.status, 200, "{target}: {response}");
            thread::sleep(pause);
            start.elapsed() - pause
        })
        .collect()
}

/// Asks for `target` on fresh connections every `pause` until `stop`; the
/// latencies, and any failure.
pub(crate) fn prober(
    addr: SocketAddr,
    target: &'static str,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(Vec<Duration>, Vec<String>)> {
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut times, mut failures) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let (took, response) = timed_get(addr, target);
            match response {
                Ok(response) if response.status == 200 => times.push(took),
                Ok(response) => failures.push(format!("{target}: {response}")),
                Err(error) => failures.push(format!("{target}: {error}")),
            }
            thread::sleep(pause);
        }
        (times, failures)
    })
}

/// Whether the server has closed `stream` (EOF or reset), without blocking.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Slowloris: hundreds of connections sending a header line every half
/// second are closed after the header-read timeout, and normal requests keep
/// their latency meanwhile.
#[test]
fn slowloris_connections_are_closed_after_the_header_read_timeout() {
    let _serial = serial();
    let test = "slowloris";
    let server = KIT.start_server(&url_with("slowloris"), &[("HEADER_READ_TIMEOUT_S", "2")]);
    let addr = server.addr;
    let timeout = Duration::from_secs(2);
    let baseline = latencies(addr, "/types", 50, Duration::from_millis(10));

    const HELD: usize = 300;
    let opened = Instant::now();
    let mut held: Vec<(TcpStream, Option<Duration>)> = (0..HELD)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /types HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            (stream, None)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(addr, "/types", Duration::from_millis(20), Arc::clone(&stop));
    let mut last_line = Instant::now();
    let mut line = 0;
    while held.iter().any(|(_, closed)| closed.is_none())
        && opened.elapsed() < Duration::from_secs(8)
    {
        let send = last_line.elapsed() >= Duration::from_millis(500);
        if send {
            last_line = Instant::now();
            line += 1;
        }
        for (stream, closed) in held
            .iter_mut()
            .filter(|(_, closed_yet)| closed_yet.is_none())
        {
            let gone = closed_by_peer(stream)
                || (send
                    && stream
                        .write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
                        .is_err());
            if gone {
                *closed = Some(opened.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let (during, failures) = probe.join().unwrap();
    assert!(failures.is_empty(), "normal requests failed: {failures:?}");
    let closed: Vec<Duration> = held
        .iter()
        .filter_map(|(_, closed_yet)| *closed_yet)
        .collect();
    assert_eq!(
        closed.len(),
        HELD,
        "{} slowloris connections still open after {:?}",
        HELD - closed.len(),
        opened.elapsed()
    );
    let last = closed.iter().max().unwrap();
    let first = closed.iter().min().unwrap();
    assert!(
        *last <= timeout + Duration::from_millis(1500),
        "the last slowloris connection was closed after {last:?} (timeout {timeout:?})"
    );
    assert!(
        *first >= timeout - Duration::from_millis(600),
        "a slowloris connection was closed after {first:?}, before the timeout"
    );
    let (p99_before, p99_during) = (quantile(&baseline, 0.99), quantile(&during, 0.99));
    assert!(
        during.len() >= 20 && p99_during <= (p99_before * 5).max(Duration::from_millis(60)),
        "/types p99 {p99_during:?} while slowloris held, {p99_before:?} before"
    );
    figure(
        test,
        format!(
            "{HELD} connections sending a header line every 500 ms, header-read timeout 2 s: \
             all closed {:.0}–{:.0} ms after opening; /types on new connections meanwhile {} \
             (before: {})",
            ms(*first),
            ms(*last),
            spread(&during),
            spread(&baseline)
        ),
    );
}

/// Thousands of idle keep-alive connections: at most MAX_CONNECTIONS are
/// served, the rest wait in the backlog until one closes (backpressure at
/// accept); idle ones are closed after the timeout, and memory returns near
/// where it was.
#[test]
fn idle_keep_alive_connections_are_bounded_time_out_and_give_memory_back() {
    let _serial = serial();
    let test = "idle connections";
    const LIMIT: usize = 2000;
    const EXTRA: usize = 200;
    let idle_timeout = Duration::from_secs(6);
    let server = KIT.start_server(
        &url_with("idle"),
        &[("MAX_CONNECTIONS", "2000"), ("HEADER_READ_TIMEOUT_S", "6")],
    );
    let (addr, pid) = (server.addr, server.pid());
    latencies(addr, "/types", 200, Duration::ZERO);
    thread::sleep(Duration::from_millis(300));
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));

    let opening = Instant::now();
    let mut held: Vec<Conn> = (0..LIMIT)
        .map(|number| {
            let mut conn = Conn::connect(addr);
            let response = conn.get("/version");
            assert_eq!(response.status, 200, "connection {number}: {response}");
            conn
        })
        .collect();
    let opened = opening.elapsed();
    assert!(
        opened < idle_timeout - Duration::from_secs(2),
        "opening {LIMIT} connections took {opened:?}"
    );
    let (rss_held, fds_held) = (rss_kib(pid), open_fds(pid));
    assert!(
        fds_held >= fds_before + LIMIT,
        "{fds_held} descriptors open with {LIMIT} connections held"
    );

    // Past the limit: the connection is made (the kernel's backlog) but not
    // accepted, so its request waits.
    let mut extra: Vec<Conn> = (0..EXTRA)
        .map(|_| {
            let mut conn =
                try_connect(addr, Duration::from_secs(15)).expect("connect past the limit");
            conn.send(&http::request_bytes("GET", "/version"));
            conn
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    for conn in &extra {
        let stream = conn.stream();
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let waiting = matches!((&*stream).read(&mut byte), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        assert!(waiting, "a connection past MAX_CONNECTIONS was answered");
    }
    let fds_past = open_fds(pid);
    assert!(
        fds_past <= fds_held + 2,
        "the server accepted past its limit: {fds_past} descriptors, {fds_held} at the limit"
    );

    // One held connection closes: a waiting one is served. Which one is up
    // to the kernel: each per-core accept loop has its own listener
    // (SO_REUSEPORT), so the backlog is not one FIFO queue.
    let freed = Instant::now();
    drop(held.remove(0));
    let served = loop {
        let answered = extra.iter().position(|conn| {
            let stream = conn.stream();
            stream.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let ready = matches!(stream.peek(&mut byte), Ok(1));
            stream.set_nonblocking(false).unwrap();
            ready
        });
        if let Some(index) = answered {
            break index;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(1),
            "no waiting connection was served within 1 s of a slot freeing"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let served_after = freed.elapsed();
    let response = extra[served]
        .read_response(false)
        .expect("the waiting connection that was served");
    assert_eq!(response.status, 200);

    // Idle connections are closed by the server after the timeout.
    let mut closed_after = Vec::new();
    for conn in &mut held {
        conn.stream()
            .set_read_timeout(Some(idle_timeout + Duration::from_secs(4)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = conn.stream().read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || matches!(&read, Err(error) if error.kind() == io::ErrorKind::ConnectionReset),
            "an idle connection was not closed: {read:?}"
        );
        closed_after.push(opening.elapsed());
    }
    let last_closed = *closed_after.iter().max().unwrap();
    assert!(
        last_closed <= opened + idle_timeout + Duration::from_secs(2),
        "{last_closed:?}"
    );
    // The waiting ones were served as slots freed up.
    for (number, conn) in extra.iter_mut().enumerate() {
        if number == served {
            continue;
        }
        let response = conn
            .read_response(false)
            .unwrap_or_else(|error| panic!("waiting connection {number}: {error}"));
        assert_eq!(response.status, 200);
    }
    drop(held);
    drop(extra);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > fds_before + 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let fds_after = open_fds(pid);
    assert!(
        fds_after <= fds_before + 2,
        "{fds_after} descriptors still open ({fds_before} before)"
    );
    let rss_after = rss_kib(pid);
    let per_connection = rss_held.saturating_sub(rss_before) / LIMIT as u64;
    assert!(
        per_connection <= 64,
        "{per_connection} KiB per idle connection ({rss_before} KiB → {rss_held} KiB)"
    );

    // Memory goes back near its earlier level once they have closed: when a
    // thread's last connection of a large wave ends, the server returns the
    // allocator's free pages (src/memory.rs). Within a quarter of what the
    // wave took.
    let grown = rss_held.saturating_sub(rss_before);
    assert!(
        rss_after <= rss_before + grown / 4,
        "RSS did not come back after the connections closed: {rss_before} KiB before, \
         {rss_held} KiB held, {rss_after} KiB after"
    );

    // And the memory of closed connections is not leaked: two more waves as
    // large fit in about what the first one took (a leak would add its
    // whole size each time).
    let mut waves = Vec::new();
    for _ in 0..2 {
        let wave: Vec<Conn> = (0..LIMIT)
            .map(|_| {
                let mut conn = Conn::connect(addr);
                assert_eq!(conn.get("/version").status, 200);
                conn
            })
            .collect();
        waves.push(rss_kib(pid));
        drop(wave);
    }
    let rss_again = *waves.iter().max().unwrap();
    assert!(
        rss_again <= rss_held.max(rss_after) + grown * 3 / 4,
        "more waves of {LIMIT} connections grew RSS: {rss_held} KiB for the first, {waves:?} KiB \
         for the next"
    );
    assert_eq!(http::get(addr, "/types").status, 200);
    figure(
        test,
        format!(
            "{LIMIT} idle keep-alive connections held (MAX_CONNECTIONS {LIMIT}), {EXTRA} more \
             kept waiting in the backlog and served as slots freed ({:.0} ms after one closed); \
             all idle ones closed by the {idle_timeout:?} idle timeout; descriptors \
             {fds_before} → {fds_held} → {fds_after}; RSS {rss_before} KiB before, {rss_held} KiB \
             held ({per_connection} KiB per connection), {rss_after} KiB after they closed, \
             {waves:?} KiB for two more waves of {LIMIT} (memory reused, not leaked)",
            ms(served_after),
        ),
    );
}

/// A client that pipelines megabytes of pages and never reads them does not
/// hold a database connection: bodies are built whole, the connection is
/// back in the pool before the body is written. With a pool of one, others
/// still get database answers while it is stuck.
#[test]
fn a_client_that_never_reads_does_not_hold_a_database_connection() {
    let _serial = serial();
    let test = "client that never reads";
    let fixture = KIT.fixture();
    for mode in ["exclusive", "shared"] {
        let server = KIT.start_server(
            &url_with(&format!("stuck_reader_{mode}")),
            &[("POOL_MODE", mode), ("POOL_SIZE", "1")],
        );
        let addr = server.addr;
        wait_for_200(addr, "/types", Duration::from_secs(10));
        const PIPELINED: usize = 600;
        let target = "/contacts/for?limit=200";
        let one_page = http::get(addr, target).body.len();
        let rss_before = rss_kib(server.pid());
        let mut stuck = Conn::connect(addr);
        // A small receive window, so the server's writes block sooner.
        small_receive_buffer(stuck.stream());
        let batch: Vec<u8> = (0..PIPELINED)
            .flat_map(|_| http::request_bytes("GET", target))
            .collect();
        stuck.send(&batch);
        // Stuck: the bytes waiting for it stop growing, as the server can
        // write no more.
        let mut waiting = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while waiting.1 < 5 {
            thread::sleep(Duration::from_millis(100));
            let now = unread_bytes(stuck.stream());
            waiting = if now == waiting.0 {
                (now, waiting.1 + 1)
            } else {
                (now, 0)
            };
            assert!(
                Instant::now() < deadline,
                "{mode}: the server never stopped writing"
            );
        }
        // And it holds little of what is still to be written: the answers
        // are made only as fast as the client reads them (20 MB were asked
        // for).
        let rss_stuck = rss_kib(server.pid());
        assert!(
            rss_stuck < rss_before + 8 * 1024,
            "{mode}: RSS {rss_before} KiB → {rss_stuck} KiB for a client that does not read"
        );

        let mut others = Vec::new();
        let mut conn = Conn::connect(addr);
        for index in 0..30 {
            let target = ["/types", "/contacts/1", "/contacts/fetch?limit=200"][index % 3];
            let start = Instant::now();
            let response = conn.get(target);
            assert_eq!(
                response.status, 200,
                "{mode}: {target} while a client is stuck: {response}"
            );
            others.push(start.elapsed());
        }
        assert_eq!(
            conn.get("/contacts/1").body,
            fixture.snapshot.contact_json(1).unwrap()
        );
        let worst = quantile(&others, 1.0);
        assert!(worst < Duration::from_millis(900), "{mode}: {worst:?}");

        // It really was stuck: everything it asked for is still to be read.
        let mut got = 0;
        for index in 0..PIPELINED {
            let response = stuck
                .read_response(false)
                .unwrap_or_else(|error| panic!("{mode}: pipelined answer {index}: {error}"));
            assert_eq!(
                response.status, 200,
                "{mode}: pipelined answer {index}: {response}"
            );
            got += response.body.len();
        }
        figure(
            test,
            format!(
                "{mode}, pool of 1: a client pipelined {PIPELINED} pages ({:.1} MB of answers) \
                 without reading, the server stuck writing to it ({} KB unread in its socket, \
                 server RSS {rss_before} → {rss_stuck} KiB); meanwhile 30 database requests on \
                 another connection all 200 ({})",
                (PIPELINED * one_page) as f64 / 1e6,
                waiting.0 / 1000,
                spread(&others)
            ),
        );
        assert_eq!(got, PIPELINED * one_page);
    }
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
