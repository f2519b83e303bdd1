//! What the link's integration tests share: the real `bakeoff-link` binary
//! as a child process (stopped with SIGTERM, its stderr kept), upstream
//! servers on threads (echo, or a handler of the test's own), and timing
//! helpers. Children are spawned through the test kit, so they die with the
//! test binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Held by every test of a binary for its whole run: the tests time
/// round trips to a tenth of a millisecond on a 2-core machine, and a
/// neighbour pushing a thousand connections or megabytes through its own
/// link would make them measure the scheduler instead.
static SERIAL: Mutex<()> = Mutex::new(());

/// Waits for the other tests of this binary to finish; hold the guard for
/// the whole test. A test that failed (and so poisoned the lock) does not
/// stop the next.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|error| error.into_inner())
}

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_bakeoff-link");

/// A running `bakeoff-link`.
pub struct Link {
    /// The process.
    child: Option<Child>,
    /// The address of each route, as its listening line printed it.
    pub addrs: Vec<SocketAddr>,
    /// Everything it printed on stderr so far, line by line.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Link {
    /// Starts the link with `--route 127.0.0.1:0=UPSTREAM` per upstream and
    /// `extra` arguments (the delay), and waits for its listening lines.
    pub fn start(upstreams: &[SocketAddr], extra: &[&str]) -> Link {
        let mut command = Command::new(BIN);
        for upstream in upstreams {
            command
                .arg("--route")
                .arg(format!("127.0.0.1:0={upstream}"));
        }
        command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = testkit::spawn::spawn(command, libc::SIGKILL).expect("start bakeoff-link");
        testkit::spawn::stop_at_exit(child.id(), libc::SIGKILL, Duration::from_secs(1));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (listening_tx, listening_rx) = mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line) {
                        let _ = listening_tx.send(addr);
                    }
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let mut addrs = Vec::new();
        while addrs.len() < upstreams.len() {
            match listening_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(addr) => addrs.push(addr),
                Err(_) => panic!(
                    "bakeoff-link printed no listening line in 10 s; stderr: {:?}",
                    lines.lock().unwrap_or_else(|e| e.into_inner())
                ),
            }
        }
        Link {
            child: Some(child),
            addrs,
            stderr: lines,
        }
    }

    /// The first route's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Sends SIGTERM, waits for the exit, and returns its status and the
    /// whole of stderr.
    pub fn stop(self) -> (ExitStatus, String) {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal`, waits for the exit, and returns its status and the
    /// whole of stderr.
    pub fn stop_with(mut self, signal: i32) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        // SAFETY: a plain kill(2) on our own, unreaped child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = wait_with_timeout(&mut child, Duration::from_secs(10));
        testkit::spawn::forget_process(child.id());
        // The reader thread ends at EOF, right after the exit.
        let deadline = Instant::now() + Duration::from_secs(2);
        let text = loop {
            let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            if lines.iter().any(|line| line.contains("stopped by")) || Instant::now() > deadline {
                break lines.join("\n");
            }
            drop(lines);
            thread::sleep(Duration::from_millis(10));
        };
        (status, text)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            testkit::spawn::forget_process(child.id());
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for bakeoff-link") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bakeoff-link did not exit within {timeout:?} of SIGTERM");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `A` of a line `bakeoff-link: listening on A -> B, one-way delay X ms`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("bakeoff-link: listening on ")?;
    rest.split(" -> ").next()?.parse().ok()
}

/// Runs the link binary with `args` to completion: status and stderr.
pub fn run_link(args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bakeoff-link");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An upstream on 127.0.0.1 that runs `handler` on a thread per accepted
/// connection, for as long as the test binary lives.
pub fn serve<F>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
    let addr = listener.local_addr().expect("upstream address");
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = Arc::clone(&handler);
            thread::spawn(move || handler(stream));
        }
    });
    addr
}

/// An upstream that writes back every byte it reads, then closes its
/// writing side at EOF.
pub fn echo_server() -> SocketAddr {
    serve(|mut stream| {
        let _ = stream.set_nodelay(true);
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    if stream.write_all(&buffer[..count]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    })
}

/// A connection to `addr` with TCP_NODELAY (a test's small writes leave at
/// once, as the link's do) and a read timeout, so that a bug fails the test
/// instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// The round-trip times of `count` one-byte ping-pongs over `stream` (to an
/// echo), each sent `gap` after the previous answer, in ms.
pub fn ping_pong(stream: &mut TcpStream, count: usize, gap: Duration) -> Vec<f64> {
    let mut times = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for round in 0..count {
        thread::sleep(gap);
        let sent = Instant::now();
        stream.write_all(&[round as u8]).expect("ping");
        stream.read_exact(&mut byte).expect("pong");
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(byte[0], round as u8, "pong {round} out of order");
    }
    times
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Deterministic bytes (a linear congruential sequence): expected data the
/// test computes itself.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect()
}

/// The figures of the link's closing summary line.
#[derive(Debug)]
pub struct Summary {
    /// The whole line, for messages.
    pub line: String,
    /// Chunks released.
    pub chunks: u64,
    /// Median lateness after the due time, µs (to the 0.1 µs bucket).
    pub p50_us: f64,
    /// 90th percentile lateness, µs.
    pub p90_us: f64,
    /// Time spent spinning, ms.
    pub spun_ms: f64,
}

impl Summary {
    /// Finds and parses the `stopped by` line in the link's stderr.
    pub fn parse(stderr: &str) -> Summary {
        let line = stderr
            .lines()
            .find(|line| line.contains(": stopped by "))
            .unwrap_or_else(|| panic!("no summary line in {stderr:?}"))
            .to_string();
        // The number after `word` in the line.
        let after = |word: &str| -> f64 {
            line.split(word)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|number| number.trim_end_matches(',').parse().ok())
                .unwrap_or_else(|| panic!("no number after {word:?} in {line:?}"))
        };
        let chunks = line
            .split(" chunks")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("no chunk count in {line:?}"));
        Summary {
            chunks,
            p50_us: after(" p50 "),
            p90_us: after(" p90 "),
            spun_ms: after(" per chunk, "),
            line,
        }
    }
}
