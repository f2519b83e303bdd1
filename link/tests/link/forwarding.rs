//! The link's behaviour through the real binary, over loopback: bytes
//! arrive whole and in order, a round trip takes twice the delay and never
//! less, pipelined messages each take one round trip (not one after
//! another), half-closes and resets travel after the delay, a zero delay
//! forwards, a thousand connections at once work, and the process keeps its
//! promises about signals and bad arguments.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    self, Link, Summary, connect, echo_server, median, pattern, ping_pong, serve,
};

#[test]
fn bytes_arrive_whole_and_in_order_on_concurrent_connections() {
    let _serial = support::one_at_a_time();
    let link = Link::start(&[echo_server()], &["--delay-ms", "0.3"]);
    let addr = link.addr();
    let clients: Vec<_> = (0..8u32)
        .map(|seed| {
            thread::spawn(move || {
                let data = pattern(1_000_000 + seed as usize * 7919, seed);
                let mut stream = connect(addr);
                let mut writer = stream.try_clone().expect("clone");
                let sent = data.clone();
                // Writes of 1 to ~3000 bytes, as they come, while the echo
                // is read on this thread.
                let writing = thread::spawn(move || {
                    let mut offset = 0;
                    let mut step = seed as usize;
                    while offset < sent.len() {
                        step += 1;
                        let size = (step * 2654 % 3001 + 1).min(sent.len() - offset);
                        writer
                            .write_all(&sent[offset..offset + size])
                            .expect("write");
                        offset += size;
                    }
                    writer.shutdown(Shutdown::Write).expect("shutdown");
                });
                let mut echoed = Vec::new();
                stream
                    .read_to_end(&mut echoed)
                    .expect("read the echo to EOF");
                writing.join().expect("writer");
                (data, echoed)
            })
        })
        .collect();
    for (index, client) in clients.into_iter().enumerate() {
        let (sent, echoed) = client.join().expect("client");
        assert_eq!(echoed.len(), sent.len(), "connection {index}: byte count");
        let first_difference = sent.iter().zip(&echoed).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "connection {index}: bytes differ");
    }
    let (status, stderr) = link.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains(" 0 closed by an error"), "{stderr}");
}

/// Ping-pongs through a link at a 1 ms one-way delay started with `extra`
/// arguments, and straight to the echo for comparison: the median added
/// round trip, the fastest one through the link, and the link's summary.
/// Prints the figures (`-- --nocapture` shows them).
fn ping_pong_through_a_1ms_link(extra: &[&str]) -> (f64, f64, Summary) {
    const PINGS: usize = 500;
    let echo = echo_server();
    let mut direct = connect(echo);
    let mut baseline = ping_pong(&mut direct, PINGS / 2, Duration::from_micros(500));
    let link = Link::start(&[echo], &[&["--delay-ms", "1"], extra].concat());
    let mut stream = connect(link.addr());
    let mut times = ping_pong(&mut stream, PINGS, Duration::from_micros(500));
    let fastest = times.iter().copied().fold(f64::MAX, f64::min);
    let added = median(&mut times) - median(&mut baseline);
    let (status, stderr) = link.stop();
    assert!(status.success(), "{status}: {stderr}");
    let summary = Summary::parse(&stderr);
    assert_eq!(summary.chunks, 2 * PINGS as u64, "{}", summary.line);
    println!(
        "{PINGS} ping-pongs through --delay-ms 1 {extra:?}: median {added:.3} ms above \
         loopback's, fastest {fastest:.3} ms\n{}",
        summary.line
    );
    (added, fastest, summary)
}

#[test]
fn ping_pong_takes_twice_the_delay_and_never_less() {
    let _serial = support::one_at_a_time();
    let (added, fastest, summary) = ping_pong_through_a_1ms_link(&[]);
    // Each direction holds a chunk from its arrival at the link, which is
    // after the client sent it: no round trip can be shorter than 2 ms.
    assert!(
        fastest >= 2.0,
        "a round trip took {fastest:.3} ms < 2 x 1 ms\n{}",
        summary.line
    );
    // The round trip also pays for the echo and this test waking after a
    // 1 ms sleep instead of a short one (a halted vCPU to wake, on this VM)
    // and, under other tenants' load (7-10 here), for waiting for a CPU:
    // 40-160 µs above 2 ms + loopback's were seen. The 0.1 ms bound is the
    // acceptance test's (pgbench.rs), on medians of rounds.
    assert!(
        (2.0..=2.3).contains(&added),
        "median round trip is {added:.3} ms above loopback's, want 2 ms + at most 0.3\n{}",
        summary.line
    );
    // Woken early by the lead and spun to the due time: the typical chunk
    // leaves within a few µs of it.
    assert!(summary.p50_us <= 5.0, "{}", summary.line);
}

#[test]
fn ping_pong_without_spinning_is_late_by_the_wake_up_only() {
    let _serial = support::one_at_a_time();
    let (added, fastest, summary) = ping_pong_through_a_1ms_link(&["--spin-max-us", "0"]);
    assert!(
        fastest >= 2.0,
        "a round trip took {fastest:.3} ms < 2 x 1 ms\n{}",
        summary.line
    );
    assert_eq!(summary.spun_ms, 0.0, "{}", summary.line);
    // Woken by the timer at the due time: late by the wake-up (tens of µs
    // here), well within a millisecond.
    assert!(summary.p50_us < 200.0, "{}", summary.line);
    // Two holds, each late by a wake-up, on top of the end hosts' share.
    assert!(
        (2.0..=2.4).contains(&added),
        "{added:.3} ms added\n{}",
        summary.line
    );
}

#[test]
fn ping_pong_at_realtime_priority_is_on_time_or_refused_with_a_reason() {
    let _serial = support::one_at_a_time();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Without CAP_SYS_NICE the link must refuse, not run at a priority
        // it was not asked for.
        let (status, stderr) = support::run_link(&[
            "--route",
            "127.0.0.1:0=127.0.0.1:1",
            "--delay-ms",
            "1",
            "--realtime",
        ]);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("--realtime: sched_setscheduler"),
            "{stderr}"
        );
        return;
    }
    let (added, fastest, summary) = ping_pong_through_a_1ms_link(&["--realtime"]);
    assert!(
        fastest >= 2.0,
        "a round trip took {fastest:.3} ms < 2 x 1 ms\n{}",
        summary.line
    );
    // The echo and this test still run at normal priority: the same
    // allowance for them (2.120 ms was seen once, at a load of 7).
    assert!(
        (2.0..=2.3).contains(&added),
        "{added:.3} ms added\n{}",
        summary.line
    );
    // Ahead of every normal process, the link is not kept from its due
    // times by the machine's load: nine chunks in ten leave within 0.1 ms
    // (7.9-25 µs seen). The last percent is the VM host's: with the vCPU
    // itself not running, no priority helps (p99 31 µs on one host of this
    // VM, 677 µs once in CI on another), so it is printed, not checked.
    assert!(summary.p50_us <= 5.0, "{}", summary.line);
    assert!(summary.p90_us <= 100.0, "{}", summary.line);
}

#[test]
fn pipelined_messages_each_take_one_round_trip() {
    let _serial = support::one_at_a_time();
    // 200 messages of 10 bytes sent 50 µs or more apart (~20 ms of sending) through
    // a 1 ms hold each way: if the link waited for answers they would take
    // 200 x 2 ms; pipelined, each comes back 2 ms after it left.
    const MESSAGES: usize = 200;
    const SIZE: usize = 10;
    let link = Link::start(&[echo_server()], &["--delay-ms", "1"]);
    let stream = connect(link.addr());
    let mut reader = stream.try_clone().expect("clone");
    let start = Instant::now();
    let (sent_tx, sent_rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let mut stream = stream;
        for index in 0..MESSAGES {
            let message = [index as u8; SIZE];
            let _ = sent_tx.send(start.elapsed());
            stream.write_all(&message).expect("write");
            // A sleep, not a spin: the machine has two cores to share
            // with the link, the echo and this test's reader.
            thread::sleep(Duration::from_micros(50));
        }
    });
    // The time at which each message's last byte came back.
    let mut returned = Vec::with_capacity(MESSAGES);
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while received.len() < MESSAGES * SIZE {
        let count = reader.read(&mut buffer).expect("read");
        assert!(count > 0, "EOF after {} bytes", received.len());
        received.extend_from_slice(&buffer[..count]);
        let now = start.elapsed();
        while returned.len() < received.len() / SIZE {
            returned.push(now);
        }
    }
    writer.join().expect("writer");
    let sent: Vec<Duration> = sent_rx.iter().collect();
    let expected: Vec<u8> = (0..MESSAGES)
        .flat_map(|index| [index as u8; SIZE])
        .collect();
    assert!(received == expected, "bytes differ or are out of order");
    let mut round_trips: Vec<f64> = sent
        .iter()
        .zip(&returned)
        .map(|(sent, back)| (*back - *sent).as_secs_f64() * 1000.0)
        .collect();
    let in_order = round_trips.clone();
    round_trips.sort_by(f64::total_cmp);
    let fastest = round_trips[0];
    // The lower quartile, not the median: on this shared 2-core machine a
    // few ms without CPU (for the test, the echo or the link) delays every
    // message sent meanwhile, which can be half of them.
    let quartile = round_trips[MESSAGES / 4];
    let total = returned[MESSAGES - 1].as_secs_f64() * 1000.0;
    let numbers = format!("round trips in ms, in sending order: {in_order:.2?}");
    assert!(
        fastest >= 2.0,
        "a message came back in {fastest:.3} ms < 2 ms; {numbers}"
    );
    assert!(
        quartile <= 2.3,
        "a quarter of the messages took {quartile:.3} ms or more: not pipelined? {numbers}"
    );
    // ~20 ms of sending + one round trip, with room for a noisy machine;
    // one after another would be 400 ms.
    assert!(
        total < 60.0,
        "all {MESSAGES} back after {total:.1} ms; {numbers}"
    );
    let _ = link.stop();
}

#[test]
fn a_half_close_reaches_the_upstream_after_the_delay_and_the_answer_still_comes_back() {
    let _serial = support::one_at_a_time();
    // The upstream reads the request to EOF, notes when the EOF came, then
    // answers and closes.
    let (eof_tx, eof_rx) = mpsc::channel();
    let upstream = serve(move |mut stream| {
        let mut request = Vec::new();
        let outcome = stream.read_to_end(&mut request);
        let _ = eof_tx.send((Instant::now(), request, outcome.is_ok()));
        let _ = stream.write_all(b"the answer");
        let _ = stream.shutdown(Shutdown::Write);
    });
    let link = Link::start(&[upstream], &["--delay-ms", "2"]);
    let mut stream = connect(link.addr());
    stream.write_all(b"the question").expect("write");
    let shut_at = Instant::now();
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("read the answer to EOF");
    let answered_at = Instant::now();
    let (eof_at, request, clean) = eof_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream saw the end");
    assert!(clean, "the upstream's read failed instead of ending");
    assert_eq!(request, b"the question");
    assert_eq!(answer, b"the answer");
    let eof_after = (eof_at - shut_at).as_secs_f64() * 1000.0;
    assert!(
        eof_after >= 2.0,
        "the EOF reached the upstream {eof_after:.3} ms after the shutdown, before the 2 ms delay"
    );
    let round_trip = (answered_at - shut_at).as_secs_f64() * 1000.0;
    assert!(
        round_trip >= 4.0,
        "the answer's EOF came back {round_trip:.3} ms after the shutdown, before 2 x 2 ms"
    );
    let (status, stderr) = link.stop();
    assert!(status.success(), "{status}");
    assert!(stderr.contains(" 0 closed by an error"), "{stderr}");
}

#[test]
fn a_zero_delay_forwards_at_once() {
    let _serial = support::one_at_a_time();
    let link = Link::start(&[echo_server()], &["--delay-ms", "0"]);
    let mut stream = connect(link.addr());
    let mut times = ping_pong(&mut stream, 100, Duration::from_micros(200));
    let typical = median(&mut times);
    // Loopback plus two hops through the link: well under a millisecond
    // unless something holds the bytes.
    assert!(
        typical < 1.0,
        "median round trip {typical:.3} ms at delay 0"
    );
    let (status, _) = link.stop();
    assert!(status.success());
}

#[test]
fn an_upstream_reset_reaches_the_client_after_the_delay() {
    let _serial = support::one_at_a_time();
    let upstream = serve(|mut stream| {
        let mut byte = [0u8; 1];
        let _ = stream.read_exact(&mut byte);
        // SO_LINGER 0: close with a RST.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    });
    let link = Link::start(&[upstream], &["--delay-ms", "1.5"]);
    let mut stream = connect(link.addr());
    let sent_at = Instant::now();
    stream.write_all(b"x").expect("write");
    let mut buffer = [0u8; 16];
    let outcome = stream.read(&mut buffer);
    let after = sent_at.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(
        after >= 3.0,
        "the reset came {after:.3} ms after the byte left, before 2 x 1.5 ms"
    );
    let (status, stderr) = link.stop();
    assert!(status.success());
    assert!(stderr.contains(" 1 closed by an error"), "{stderr}");
}

#[test]
fn a_refused_upstream_resets_the_client_after_the_delay() {
    let _serial = support::one_at_a_time();
    // A port nothing listens on: bind, note it, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let link = Link::start(&[closed], &["--delay-ms", "1"]);
    let connected_at = Instant::now();
    let mut stream = connect(link.addr());
    let mut buffer = [0u8; 16];
    let outcome = stream.read(&mut buffer);
    let after = connected_at.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(
        after >= 1.0,
        "reset after {after:.3} ms, before the 1 ms delay"
    );
    let (_, stderr) = link.stop();
    assert!(stderr.contains("upstream connect"), "{stderr}");
}

#[test]
fn a_thousand_connections_at_once() {
    let _serial = support::one_at_a_time();
    const CONNECTIONS: usize = 1000;
    let link = Link::start(&[echo_server()], &["--delay-ms", "0.5"]);
    let mut streams: Vec<_> = (0..CONNECTIONS).map(|_| connect(link.addr())).collect();
    // Every connection open, then one message on each, then every answer.
    for (index, stream) in streams.iter_mut().enumerate() {
        stream
            .write_all(format!("message {index:05}\n").as_bytes())
            .expect("write");
    }
    for (index, stream) in streams.iter_mut().enumerate() {
        let mut answer = [0u8; 14];
        stream.read_exact(&mut answer).expect("read");
        assert_eq!(answer, format!("message {index:05}\n").as_bytes());
    }
    drop(streams);
    let (status, stderr) = link.stop();
    assert!(status.success(), "{status}");
    assert!(
        stderr.contains(&format!(
            "{CONNECTIONS} connections (at most {CONNECTIONS} open), 0 closed by an error"
        )),
        "{stderr}"
    );
}

#[test]
fn sigterm_closes_everything_and_exits_0_with_a_summary() {
    let _serial = support::one_at_a_time();
    let link = Link::start(&[echo_server()], &["--rtt-ms", "1"]);
    let mut stream = connect(link.addr());
    let mut times = ping_pong(&mut stream, 20, Duration::from_millis(1));
    assert!(median(&mut times) >= 1.0, "--rtt-ms 1 is 0.5 ms each way");
    let (status, stderr) = link.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let summary = stderr
        .lines()
        .find(|line| line.starts_with("bakeoff-link: stopped by SIGTERM: "))
        .unwrap_or_else(|| panic!("no summary line in {stderr:?}"));
    // 20 pings and 20 pongs, each read whole: one chunk each.
    assert!(summary.contains(" 40 chunks, 40 bytes"), "{summary}");
    // The connection it had open was closed: the client sees the end.
    let mut rest = Vec::new();
    let ended = stream.read_to_end(&mut rest);
    assert!(
        ended.is_ok() || ended.is_err_and(|error| error.kind() == ErrorKind::ConnectionReset),
        "the connection stayed open after the link stopped"
    );
}

#[test]
fn sigint_stops_it_too() {
    let _serial = support::one_at_a_time();
    let link = Link::start(&[echo_server()], &["--delay-ms", "0.1"]);
    let (status, stderr) = link.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("bakeoff-link: stopped by SIGINT: 0 connections"),
        "{stderr}"
    );
}

#[test]
fn each_route_listens_on_its_own_port_and_forwards_to_its_own_upstream() {
    let _serial = support::one_at_a_time();
    // Two upstreams that greet each connection with their own name.
    let greeter = |name: &'static [u8]| {
        serve(move |mut stream| {
            let _ = stream.write_all(name);
        })
    };
    let (first, second) = (greeter(b"first"), greeter(b"second"));
    let link = Link::start(&[first, second], &["--rtt-ms", "0.5"]);
    assert_eq!(link.addrs.len(), 2);
    assert_ne!(link.addrs[0], link.addrs[1]);
    for (addr, greeting) in link.addrs.iter().zip(["first", "second"]) {
        let mut answer = String::new();
        connect(*addr)
            .read_to_string(&mut answer)
            .expect("read the greeting");
        assert_eq!(answer, greeting, "through {addr}");
    }
    let addrs = link.addrs.clone();
    let (status, stderr) = link.stop();
    assert!(status.success(), "{stderr}");
    let listening: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("listening on"))
        .collect();
    // One line per route, in the order given, naming both ends and the
    // one-way delay (half of --rtt-ms).
    let expected: Vec<String> = addrs
        .iter()
        .zip([first, second])
        .map(|(listen, upstream)| {
            format!("bakeoff-link: listening on {listen} -> {upstream}, one-way delay 0.25 ms")
        })
        .collect();
    assert_eq!(listening, expected, "{stderr}");
}

#[test]
fn a_bad_argument_exits_2_with_one_line() {
    let _serial = support::one_at_a_time();
    let cases: &[&[&str]] = &[
        &["--listen", "127.0.0.1:0", "--delay-ms", "1"],
        &["--route", "127.0.0.1:0=127.0.0.1:1"],
        &["--route", "127.0.0.1:0=127.0.0.1:1", "--delay-ms", "x"],
        &[
            "--route",
            "127.0.0.1:0=127.0.0.1:1",
            "--delay-ms",
            "1",
            "--rtt-ms",
            "2",
        ],
        &[
            "--route",
            "127.0.0.1:0=127.0.0.1:1",
            "--delay-ms",
            "1",
            "--bogus",
        ],
    ];
    for args in cases {
        let (status, stderr) = support::run_link(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("bakeoff-link: error: "),
            "{args:?}: {stderr}"
        );
    }
}
