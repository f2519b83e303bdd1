//! The event loop: one thread, one level-triggered epoll watching the
//! listeners, every pair's sockets, a timerfd set to the next due time (less
//! the wake-up lead) and a signalfd for SIGINT/SIGTERM. Each round: wait,
//! handle what is ready (accept, read, write), then release everything due,
//! spinning for the last few µs when the [`Pacer`] allows, and set the
//! timer for what is next. Idle, it sleeps in epoll_wait with no timer set:
//! no CPU at all.
//!
//! One thread: a chunk costs 10–65 µs of CPU on this VM, mostly the
//! kernel's sleep, wake-up and loopback TCP path (the summary line reports
//! it; README.md has the table), so one thread carries a few tens of
//! thousands of chunks a second, and a second one would only compete for
//! the same two cores as the server and PostgreSQL under measurement.

use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, format_ms};
use crate::pacer::{LEAD_QUANTILE, Pacer};
use crate::pair::{self, Context, Pair};
use crate::stats::Stats;
use crate::sys::{self, Epoll, READ, Signals, TimerFd};

/// The timerfd's epoll key.
const TIMER_KEY: u64 = 0;
/// The signalfd's epoll key.
const SIGNALS_KEY: u64 = 1;
/// Listener `i`'s epoll key is `FIRST_LISTENER_KEY + i`.
const FIRST_LISTENER_KEY: u64 = 2;
/// Connections accepted per listener per round, so that a connection storm
/// does not hold up due chunks.
const ACCEPT_BATCH: usize = 64;
/// How long accepting pauses when the process is out of descriptors or
/// memory (the pending connections wait in the backlog meanwhile).
const ACCEPT_PAUSE_NS: u64 = 100_000_000;
/// Bytes one read takes at most.
const READ_SIZE: usize = 64 * 1024;
/// Events one epoll_wait reports at most.
const EVENTS: usize = 256;
/// Listen backlog: room for a pool's or a load generator's connection burst.
const BACKLOG: i32 = 4096;
/// Timer samples taken at start to seed the wake-up lead.
const CALIBRATION_SAMPLES: usize = 32;

/// A bound listener and where its connections go.
struct Listener {
    /// The listening socket, non-blocking.
    socket: TcpListener,
    /// Where each accepted connection is forwarded.
    upstream: SocketAddr,
    /// "LISTEN -> UPSTREAM", for log lines.
    name: String,
}

/// The whole link.
struct Forwarder {
    /// The listeners, in the order of the routes.
    listeners: Vec<Listener>,
    /// Open pairs by id.
    pairs: HashMap<u64, Pair>,
    /// The next pair's id.
    next_id: u64,
    /// What pairs share: epoll, delay, buffer, due times, counters.
    context: Context,
    /// The timer the loop sleeps on.
    timer: TimerFd,
    /// The deadline the timer is set to, ns; 0: not set.
    armed: u64,
    /// SIGINT and SIGTERM.
    signals: Signals,
    /// The wake-up lead and spin budget.
    pacer: Pacer,
    /// While accepting is paused (out of descriptors), when it resumes.
    accept_paused_until: Option<u64>,
}

/// Binds every route, prints the listening lines, and forwards until SIGINT
/// or SIGTERM; then closes everything, prints the summary and returns the
/// signal's name.
pub fn run(config: &Config) -> Result<&'static str, String> {
    sys::set_timer_slack_1ns();
    sys::raise_fd_limit();
    if config.realtime {
        sys::set_realtime().map_err(|error| {
            format!(
                "--realtime: sched_setscheduler(SCHED_FIFO, 1): {error} (needs root, and a \
                 cpu cgroup with real-time runtime under RT_GROUP_SCHED)"
            )
        })?;
    }
    let signals = Signals::new().map_err(|error| format!("signalfd: {error}"))?;
    let epoll = Epoll::new(EVENTS).map_err(|error| format!("epoll: {error}"))?;
    let timer = TimerFd::new().map_err(|error| format!("timerfd: {error}"))?;
    let mut listeners = Vec::new();
    for route in &config.routes {
        let socket =
            bind(route.listen).map_err(|error| format!("listen on {}: {error}", route.listen))?;
        let local = socket
            .local_addr()
            .map_err(|error| format!("listen on {}: {error}", route.listen))?;
        listeners.push(Listener {
            socket,
            upstream: route.upstream,
            name: format!("{local} -> {}", route.upstream),
        });
    }
    epoll
        .add(timer.raw(), TIMER_KEY, READ)
        .and_then(|()| epoll.add(signals.raw(), SIGNALS_KEY, READ))
        .map_err(|error| format!("epoll_ctl: {error}"))?;
    for (index, listener) in listeners.iter().enumerate() {
        epoll
            .add(
                listener.socket.as_raw_fd(),
                FIRST_LISTENER_KEY + index as u64,
                READ,
            )
            .map_err(|error| format!("epoll_ctl: {error}"))?;
    }
    let initial_lead = if config.spin_max_ns > 0 {
        calibrate(&timer).map_err(|error| format!("timerfd: {error}"))?
    } else {
        0
    };
    let mut forwarder = Forwarder {
        listeners,
        pairs: HashMap::new(),
        next_id: 0,
        context: Context {
            epoll,
            delay_ns: config.delay_ns,
            scratch: vec![0; READ_SIZE],
            wakes: BinaryHeap::new(),
            stats: Stats::new(),
        },
        timer,
        armed: 0,
        signals,
        pacer: Pacer::new(config.spin_max_ns, initial_lead, sys::now_ns()),
        accept_paused_until: None,
    };
    for listener in &forwarder.listeners {
        crate::log(&format!(
            "listening on {}, one-way delay {} ms",
            listener.name,
            format_ms(config.delay_ns)
        ));
    }
    let signal = forwarder.serve()?;
    for pair in forwarder.pairs.values_mut() {
        pair.close();
    }
    let stats = &forwarder.context.stats;
    crate::log(&format!(
        "stopped by {signal}: {}",
        stats.summary(forwarder.pacer.spun_ns(), forwarder.pacer.lead())
    ));
    Ok(signal)
}

/// A non-blocking listener with SO_REUSEADDR (a restarted link must not wait
/// for TIME_WAIT) and a large backlog.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A first estimate of the wake-up lead: the [`LEAD_QUANTILE`] of the
/// lateness of [`CALIBRATION_SAMPLES`] sleeps of 200 µs on the timer (about
/// 8 ms).
fn calibrate(timer: &TimerFd) -> io::Result<u64> {
    let mut poll = Epoll::new(1)?;
    poll.add(timer.raw(), 0, READ)?;
    let mut events = Vec::new();
    let mut samples = Vec::with_capacity(CALIBRATION_SAMPLES);
    for _ in 0..CALIBRATION_SAMPLES {
        let deadline = sys::now_ns() + 200_000;
        timer.set(deadline)?;
        events.clear();
        while events.is_empty() {
            poll.wait(-1, &mut events)?;
        }
        samples.push(sys::now_ns().saturating_sub(deadline));
        timer.clear();
    }
    samples.sort_unstable();
    Ok(samples[(CALIBRATION_SAMPLES as f64 * LEAD_QUANTILE) as usize])
}

impl Forwarder {
    /// The loop; returns the name of the signal that stopped it.
    fn serve(&mut self) -> Result<&'static str, String> {
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            self.context
                .epoll
                .wait(-1, &mut events)
                .map_err(|error| format!("epoll_wait: {error}"))?;
            let woke = sys::now_ns();
            for event in &events {
                match event.key {
                    TIMER_KEY => {
                        self.timer.clear();
                        // A wake-up from sleep by the timer alone measures
                        // the wake-up lateness the lead has to cover.
                        if events.len() == 1 && self.armed != 0 && woke >= self.armed {
                            self.pacer.observe(woke - self.armed);
                        }
                        self.armed = 0;
                    }
                    SIGNALS_KEY => {
                        if let Some(signal) = self.signals.take() {
                            return Ok(if signal == libc::SIGINT {
                                "SIGINT"
                            } else {
                                "SIGTERM"
                            });
                        }
                    }
                    key if key < FIRST_LISTENER_KEY + self.listeners.len() as u64 => {
                        self.accept((key - FIRST_LISTENER_KEY) as usize);
                    }
                    key => {
                        if let Some((id, side)) = pair::decode_key(key) {
                            self.on_pair(id, |pair, context| {
                                pair.on_ready(side, event.ready, context)
                            });
                        }
                    }
                }
            }
            self.resume_accepting();
            self.release_due();
            self.arm_timer();
        }
    }

    /// Runs `action` on pair `id` if it is still open, and drops the pair if
    /// that finished it.
    fn on_pair(&mut self, id: u64, action: impl FnOnce(&mut Pair, &mut Context)) {
        let Some(pair) = self.pairs.get_mut(&id) else {
            return;
        };
        action(pair, &mut self.context);
        if pair.is_finished() {
            self.pairs.remove(&id);
            self.context.stats.open -= 1;
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections on listener `index`, each
    /// paired with a non-blocking connect to the upstream started now.
    fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPT_BATCH {
            let listener = &self.listeners[index];
            let client = match listener.socket.accept() {
                Ok((client, _)) => client,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    if matches!(
                        error.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) {
                        crate::log(&format!(
                            "{}: accept: {error}; not accepting for 100 ms",
                            listener.name
                        ));
                        self.pause_accepting();
                        return;
                    }
                    // The client gave up before it was accepted: next one.
                    continue;
                }
            };
            let name = listener.name.clone();
            let upstream = listener.upstream;
            if let Err(error) = prepare(&client) {
                crate::log(&format!("{name}: accepted socket: {error}"));
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let pair = Pair::new(id, name, client, connect(upstream), &mut self.context);
            let stats = &mut self.context.stats;
            stats.accepted += 1;
            if !pair.is_finished() {
                self.pairs.insert(id, pair);
                stats.open += 1;
                stats.peak_open = stats.peak_open.max(stats.open);
            }
        }
    }

    fn pause_accepting(&mut self) {
        for listener in &self.listeners {
            let _ = self.context.epoll.delete(listener.socket.as_raw_fd());
        }
        self.accept_paused_until = Some(sys::now_ns() + ACCEPT_PAUSE_NS);
    }

    fn resume_accepting(&mut self) {
        let Some(until) = self.accept_paused_until else {
            return;
        };
        if sys::now_ns() < until {
            return;
        }
        self.accept_paused_until = None;
        for (index, listener) in self.listeners.iter().enumerate() {
            let key = FIRST_LISTENER_KEY + index as u64;
            if let Err(error) = self
                .context
                .epoll
                .add(listener.socket.as_raw_fd(), key, READ)
            {
                crate::log(&format!("{}: epoll_ctl: {error}", listener.name));
            }
        }
    }

    /// Releases every hold that is due, in due order, spinning up to a due
    /// time when the pacer allows; stops at the first hold it would have to
    /// sleep for.
    fn release_due(&mut self) {
        while let Some(&std::cmp::Reverse((due, id, lane))) = self.context.wakes.peek() {
            let mut now = sys::now_ns();
            if due > now {
                if !self.pacer.may_spin(due - now, now) {
                    break;
                }
                let started = now;
                while now < due {
                    std::hint::spin_loop();
                    now = sys::now_ns();
                }
                self.pacer.spent(now - started);
            }
            self.context.wakes.pop();
            self.on_pair(id, |pair, context| pair.release(lane, now, context));
        }
    }

    /// Sets the timer for the next due time (less the lead) or the end of an
    /// accept pause, whichever is first; leaves it alone if unchanged.
    fn arm_timer(&mut self) {
        let now = sys::now_ns();
        let due = self
            .context
            .wakes
            .peek()
            .map(|&std::cmp::Reverse((due, _, _))| self.pacer.deadline(due, now));
        let deadline = match (due, self.accept_paused_until) {
            (Some(due), Some(until)) => Some(due.min(until)),
            (due, until) => due.or(until),
        };
        let deadline = deadline.unwrap_or(0);
        if deadline == self.armed {
            return;
        }
        match self.timer.set(deadline) {
            Ok(()) => self.armed = deadline,
            Err(error) => crate::log(&format!("timerfd_settime: {error}")),
        }
    }
}

/// Settings of an accepted socket: non-blocking, TCP_NODELAY (a held chunk
/// must leave when due, not wait for an ACK under Nagle), receive stamps.
fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    sys::enable_receive_timestamps(stream.as_raw_fd())
}

/// Starts a non-blocking connect to `upstream` (done when the socket turns
/// writable): the link connects at accept time, without holding the SYN.
fn connect(upstream: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(upstream),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    sys::enable_receive_timestamps(socket.as_raw_fd())?;
    match socket.connect(&upstream.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    Ok(socket.into())
}
