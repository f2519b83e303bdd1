//! `bakeoff-link`: a TCP forwarder that holds every chunk for a set one-way
//! delay in each direction — the user-space delay link of issue #19, since
//! this kernel has no netem qdisc. [`README.md`](../README.md) has the
//! measurements; in short:
//!
//! - **Semantics.** Each chunk read from one side is stamped with the time
//!   the kernel received it and written to the other side no earlier than
//!   that + the delay, in order, never dropped; chunks that arrive while
//!   earlier ones wait queue behind them, so pipelined traffic stays
//!   pipelined. An EOF (half-close) and a failure (reset, refused connect)
//!   travel the same way, behind the bytes before them. The upstream is
//!   connected at accept time; the SYN is not held.
//! - **Accuracy.** A timerfd (an hrtimer: ns, no slack), not tokio's 1 ms
//!   wheel; set early by the measured wake-up lateness (15–45 µs here) and
//!   finished with a short spin ([`pacer`]). Measured on this loaded 2-core
//!   VM over 1000 chunks: a median 0.1 µs after the due time; p99 31 µs
//!   with `--realtime` (SCHED_FIFO), 344 µs without, when other processes
//!   keep the CPUs busy. The README has the table and its command.
//! - **Cost.** One thread, idle CPU zero. 50–65 µs of CPU per chunk one at
//!   a time (two wake-ups each, ~25 µs apiece on this VM), 10–29 µs per
//!   chunk at 10–25 k chunks/s; spinning at most 5% of one core.
//!
//! Usage: `bakeoff-link --listen ADDR:PORT --upstream ADDR:PORT --delay-ms
//! 0.5` (or `--rtt-ms 1`, or several `--route LISTEN=UPSTREAM`). The first
//! lines on stderr say `bakeoff-link: listening on A -> B, one-way delay X
//! ms`, one per route; SIGTERM or SIGINT close everything, print a summary
//! line and exit 0; a bad argument exits 2 with one line.
//!
//! The code, in the order a byte goes through it: [`config`] (command line
//! → routes and delay), [`forwarder`] (the event loop: accept, wait, release
//! what is due), [`pair`] (one connection's two sockets: read, stamp,
//! write, end), [`lane`] (one direction's held chunks, pure), [`pacer`]
//! (when to wake, when to spin), [`stats`] (counts, the lateness histogram,
//! the summary), [`sys`] (the Linux calls std lacks; all the `unsafe`).

// The forwarding path never unwraps or panics: a failure closes one pair.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod config;
mod forwarder;
mod lane;
mod pacer;
mod pair;
mod stats;
mod sys;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match config::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => error.exit(),
            _ => return fail(first_line(&error.to_string()), 2),
        },
    };
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(message) => return fail(&message, 2),
    };
    match forwarder::run(&config) {
        Ok(_signal) => ExitCode::SUCCESS,
        Err(message) => fail(&message, 1),
    }
}

/// One line on stderr, prefixed with the program's name. A closed stderr
/// is ignored: the link must not die of its log.
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "bakeoff-link: {line}");
}

/// Logs `message` and returns exit code `code` (2: a bad argument; 1: the
/// link could not start or its event loop failed).
fn fail(message: &str, code: u8) -> ExitCode {
    log(&format!("error: {message}"));
    ExitCode::from(code)
}

/// clap's first line, without its `error: ` prefix (the rest is usage).
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line)
}
