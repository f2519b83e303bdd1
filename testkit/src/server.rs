//! The real `bakeoff` binary, serving on a port the OS picks.

use crate::spawn;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings the tests control; cleared from the inherited environment so a
/// developer's shell cannot change what is tested.
const CONFIG_VARS: &[&str] = &[
    "DATABASE_URL",
    "BIND",
    "POOL_SIZE",
    "WORKER_THREADS",
    "POOL_TIMEOUT_MS",
    "POOL_MODE",
    "STATEMENTS",
    "STATEMENT_TIMEOUT_MS",
    "HEADER_READ_TIMEOUT_S",
    "DRAIN_TIMEOUT_S",
    "SHUTDOWN_DELAY_MS",
    "MAX_HEAD_BYTES",
    "WRITE_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "FIB_QUEUE",
    "RUNTIME",
    "SCHEDULING",
    "ACCESS_LOG",
    "NO_METRICS",
    "CONTACTS",
];

/// A running `bakeoff serve`, killed on drop.
pub struct Server {
    /// The `bakeoff serve` process.
    child: Child,
    /// Where it listens, as printed on its first stderr line.
    pub addr: SocketAddr,
    /// That first stderr line.
    pub first_line: String,
    /// Everything it wrote to stderr so far (drained by a thread, so the
    /// server never blocks on a full pipe).
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `bin serve` (the `bakeoff` binary at `bin`) with
    /// BIND=127.0.0.1:0, `DATABASE_URL` and the extra environment `env`,
    /// lets `prepare` change the command (e.g. a `pre_exec` that lowers a
    /// resource limit), and waits for its first stderr line.
    pub fn start(
        bin: &str,
        database_url: &str,
        env: &[(&str, &str)],
        prepare: impl FnOnce(&mut Command),
    ) -> Result<Server, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        for var in CONFIG_VARS {
            cmd.env_remove(var);
        }
        cmd.env("DATABASE_URL", database_url)
            .env("BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        prepare(&mut cmd);
        let mut child =
            spawn::spawn(cmd, libc::SIGKILL).map_err(|error| format!("spawn {bin}: {error}"))?;
        spawn::stop_at_exit(child.id(), libc::SIGKILL, Duration::ZERO);

        let stderr = Arc::new(Mutex::new(String::new()));
        let (first_tx, first_rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut first = Some(first_tx);
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).into_owned();
                if let Some(tx) = first.take() {
                    let _ = tx.send(line.clone());
                }
                let mut log = log.lock().unwrap_or_else(|error| error.into_inner());
                if log.len() < 1 << 20 {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });

        let first_line = match first_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                spawn::forget_process(child.id());
                return Err(format!(
                    "bakeoff serve wrote no first stderr line within 30 s (exit status: {status:?})"
                ));
            }
        };
        let addr = parse_listen_addr(&first_line).ok_or_else(|| {
            format!(
                "cannot find `listening on http://ADDR` in the first stderr line: {first_line:?}"
            )
        });
        let addr = match addr {
            Ok(parsed) => parsed,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                spawn::forget_process(child.id());
                return Err(error);
            }
        };
        Ok(Server {
            child,
            addr,
            first_line,
            stderr,
        })
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|error| error.into_inner())
            .clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits, at most `timeout`, for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` and waits (up to 30 s) for the exit.
    pub fn stop_with(mut self, signal: i32) -> Option<std::process::ExitStatus> {
        // SAFETY: a signal to our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// `Some(status)` if the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        spawn::forget_process(self.child.id());
    }
}

/// `bakeoff X.Y.Z listening on http://127.0.0.1:41234 (database …)` → the address.
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
