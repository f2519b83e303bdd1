//! Resource limits: running out of file descriptors, the raised open-file
//! limit and the backlog, a `/fibonacci` flood.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use testkit::assert_alive;
use testkit::http::{self, Conn, Response};

use crate::KIT;
use crate::helpers::{
    assert_503, figure, ms, quantile, serial, spread, try_connect, url_with, wait_for_200,
};
use crate::slow_clients::{latencies, prober};

/// setrlimit(RLIMIT_NOFILE) in the child, before exec.
fn with_nofile(cmd: &mut std::process::Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `Max open files` (soft, hard) of a process.
fn nofile_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|limit_line| limit_line.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

/// Running out of file descriptors makes accept fail: the server backs off,
/// logs it (at most once a second), keeps serving the connections it has,
/// and accepts again once descriptors are free.
#[test]
fn running_out_of_file_descriptors_does_not_end_the_server() {
    let _serial = serial();
    let test = "out of file descriptors";
    let mut server = KIT
        .try_start_server_with(
            &url_with("nofile"),
            &[("HEADER_READ_TIMEOUT_S", "30"), ("POOL_SIZE", "2")],
            |cmd| with_nofile(cmd, 64, 64),
        )
        .unwrap();
    let (addr, pid) = (server.addr, server.pid());
    assert_eq!(nofile_limits(pid), ("64".into(), "64".into()));
    wait_for_200(addr, "/types", Duration::from_secs(10));
    let mut kept = Conn::connect(addr);
    assert_eq!(kept.get("/contacts/1").status, 200);

    let flooding = Instant::now();
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(1500));
    // Every descriptor number below the limit is taken (the test process
    // may have passed the server a few of its own above it).
    let taken = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok_and(|fd| fd < 64)
        })
        .count();
    assert_eq!(taken, 64, "descriptors 0..64 in use under a limit of 64");
    // No descriptor is left: a new connection waits in the backlog.
    let mut waiting = try_connect(addr, Duration::from_millis(700)).unwrap();
    waiting.send(&http::request_bytes("GET", "/version"));
    assert!(
        waiting.read_response(false).is_err(),
        "a connection was served with every descriptor in use"
    );
    // The connections it has are still served, database included.
    assert_eq!(kept.get("/contacts/2").status, 200);
    let stderr = server.stderr();
    assert!(
        stderr.contains("accept failed"),
        "no accept error logged:\n{stderr}"
    );
    let logged = stderr.matches("accept failed").count();
    let seconds = flooding.elapsed().as_secs() as usize;
    assert!(
        logged <= seconds + 2,
        "{logged} accept errors logged in {seconds} s: not rate-limited"
    );
    assert_alive(&mut server);

    drop(flood);
    drop(waiting);
    let recovered = wait_for_200(addr, "/contacts/3", Duration::from_secs(10));
    assert_eq!(http::get(addr, "/types").status, 200);
    assert_alive(&mut server);
    figure(
        test,
        format!(
            "RLIMIT_NOFILE 64, 150 connections opened: accept failed with EMFILE ({logged} log \
             lines in {seconds} s), kept connections still served, server alive; served new \
             connections {:.0} ms after the flood closed",
            ms(recovered)
        ),
    );
}

/// At start the server lifts its soft open-file limit to the hard one, and
/// listens with a backlog sized for thousands of connections.
#[test]
fn the_open_file_limit_is_raised_and_the_backlog_is_sized_for_thousands() {
    let _serial = serial();
    let server = KIT
        .try_start_server_with(&url_with("limits"), &[], |cmd| with_nofile(cmd, 256, 8192))
        .unwrap();
    assert_eq!(nofile_limits(server.pid()), ("8192".into(), "8192".into()));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", server.addr.port())])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    // State Recv-Q Send-Q Local Peer: Send-Q is the backlog of a listener.
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the backlog from ss: {text:?}"));
    assert_eq!(backlog, 4096.min(somaxconn), "{text}");
    figure(
        "limits",
        format!(
            "soft open-file limit raised 256 → 8192 (the hard limit); listen backlog {backlog}"
        ),
    );
}

/// CPU-bound `/fibonacci` runs on a small pool with a bounded queue: a flood
/// gets quick 503s for the excess and never starves the database endpoints.
#[test]
fn a_fibonacci_flood_is_bounded_and_does_not_starve_the_database_endpoints() {
    let _serial = serial();
    let test = "fibonacci flood";
    let server = KIT.start_server(&url_with("fib_flood"), &[("FIB_QUEUE", "8")]);
    let addr = server.addr;
    wait_for_200(addr, "/types", Duration::from_secs(10));
    let baseline = latencies(addr, "/types", 50, Duration::from_millis(10));

    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(
        addr,
        "/contacts/1",
        Duration::from_millis(20),
        Arc::clone(&stop),
    );
    let flood_until = Instant::now() + Duration::from_secs(4);
    let flooders: Vec<_> = (0..24)
        .map(|_| {
            thread::spawn(move || {
                let mut conn = Conn::connect(addr);
                let mut out = Vec::new();
                while Instant::now() < flood_until && out.len() < 10_000 {
                    let start = Instant::now();
                    let response = conn.get("/fibonacci/35");
                    let busy = response.status == 503;
                    out.push((start.elapsed(), response));
                    if busy {
                        // Ask again soon (sooner than Retry-After), without
                        // spinning on the test's own cores.
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                out
            })
        })
        .collect();
    let during = latencies(addr, "/types", 100, Duration::from_millis(20));
    let results: Vec<(Duration, Response)> = flooders
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (contact_latency, failures) = probe.join().unwrap();
    assert!(failures.is_empty(), "{failures:?}");

    let (mut ok, mut busy) = (Vec::new(), Vec::new());
    for (took, response) in &results {
        match response.status {
            200 => {
                assert_eq!(response.body_str(), r#"{"result":14930352}"#);
                ok.push(*took);
            }
            503 => {
                assert_503("/fibonacci/35 in a flood", response);
                busy.push(*took);
            }
            _ => panic!("/fibonacci/35 in a flood: {response}"),
        }
    }
    assert!(
        !ok.is_empty() && !busy.is_empty(),
        "{} 200s, {} 503s",
        ok.len(),
        busy.len()
    );
    // Both cores run fib(35) flat out (and, on this machine, whatever else
    // runs), so scheduling delays show in the tails; the medians show the
    // design: the excess is turned away at once, not queued, and the
    // database endpoints are not stuck behind the computations (fib(35)
    // alone takes about 250 ms in a debug build).
    assert!(
        quantile(&busy, 0.5) < Duration::from_millis(10)
            && quantile(&busy, 0.99) < Duration::from_millis(250),
        "the excess waited for its 503: {}",
        spread(&busy)
    );
    assert!(
        quantile(&during, 0.5) < Duration::from_millis(25)
            && quantile(&during, 0.99) < Duration::from_millis(250),
        "/types during the flood: {}",
        spread(&during)
    );
    figure(
        test,
        format!(
            "24 clients looping /fibonacci/35 for 4 s, queue limit 8 on 2 workers: {} computed \
             ({}), {} turned away with 503 ({}); meanwhile /types {} (before: {}), \
             /contacts/1 on new connections {}",
            ok.len(),
            spread(&ok),
            busy.len(),
            spread(&busy),
            spread(&during),
            spread(&baseline),
            spread(&contact_latency),
        ),
    );
}
