//! One forwarded connection: the accepted socket (the client side), the
//! socket to the upstream, and a [`Lane`] each way. Reads stamp each chunk
//! with the kernel's receive time and hold it for the delay; due bytes are
//! written as soon as the receiver takes them; an EOF or a failure travels
//! to the other side after the delay, behind the bytes before it.
//!
//! Failures never panic and never touch other pairs: a socket that fails
//! (read, write or connect) is dead, the bytes toward it are dropped, and a
//! reset is queued toward the other side, which closes the pair when due.
//! The pair's first failure is counted and logged once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::lane::{End, Lane};
use crate::stats::Stats;
use crate::sys::{self, ERROR_OR_HANGUP, Epoll, Interest, READ, WRITE};

/// The client side (the accepted socket): index into [`Pair`]'s arrays.
pub const CLIENT: usize = 0;
/// The upstream side (the socket the link connected).
pub const UPSTREAM: usize = 1;

/// Bytes read from one side and not yet written to the other past which the
/// link stops reading that side until the receiver catches up: bounds the
/// memory a slow receiver can cost (the sender's kernel buffers and TCP's
/// window hold the rest). 1 GB/s for a 1 ms hold: far above what one of a
/// benchmark's connections carries.
pub const HIGH_WATER: usize = 1024 * 1024;

/// A received chunk's kernel stamp older than this is not believed (the
/// real-time clock was stepped): the chunk counts as arriving when read.
const MAX_STAMP_AGE_NS: u64 = 1_000_000_000;

/// A due time to wake up for: (due ns, pair id, lane index).
pub type Wake = Reverse<(u64, u64, usize)>;

/// What a pair needs from the forwarder while it works: the poller, the
/// delay, a read buffer, where to schedule its due times, the counters.
pub struct Context {
    /// Where the sockets are registered.
    pub epoll: Epoll,
    /// The one-way delay, ns.
    pub delay_ns: u64,
    /// One read's worth of bytes, shared by every pair (one thread).
    pub scratch: Vec<u8>,
    /// Due times to wake up for, earliest first; one per hold pushed (a
    /// stale one, for a pair since closed or a hold already released, is
    /// harmless: releasing is by time).
    pub wakes: BinaryHeap<Wake>,
    /// Counters.
    pub stats: Stats,
}

/// Keys below this belong to the forwarder (timer, signals, listeners).
const KEY_BASE: u64 = 1 << 32;

/// The epoll key of a pair's socket: above every fixed key of the forwarder.
pub fn key(pair: u64, side: usize) -> u64 {
    KEY_BASE + pair * 2 + side as u64
}

/// The pair id and side of a key made by [`key`], if it is one.
pub fn decode_key(key: u64) -> Option<(u64, usize)> {
    let offset = key.checked_sub(KEY_BASE)?;
    Some((offset / 2, (offset % 2) as usize))
}

/// One socket of a pair and what the link knows of it.
struct Side {
    /// The socket, non-blocking; `None` when the upstream socket could not
    /// even be made or its connect failed at once.
    stream: Option<TcpStream>,
    /// What it is registered for in epoll; 0: not registered.
    registered: Interest,
    /// A non-blocking connect is under way (upstream side only).
    connecting: bool,
    /// Bytes may still come from it (no EOF read, no failure).
    reading: bool,
    /// Its writing side was shut after an EOF from the other side.
    shut: bool,
    /// It failed: nothing is read from or written to it any more.
    dead: bool,
}

/// A forwarded connection: `sides[CLIENT]`, `sides[UPSTREAM]`, and
/// `lanes[i]` carrying what side `i` sends to side `1 - i`.
pub struct Pair {
    /// Never reused, so a stale wake-up cannot reach another pair.
    id: u64,
    /// The two sockets.
    sides: [Side; 2],
    /// `lanes[CLIENT]`: client → upstream; `lanes[UPSTREAM]`: upstream → client.
    lanes: [Lane; 2],
    /// The route, for log lines: "LISTEN -> UPSTREAM".
    route: String,
    /// The first failure has been counted (and logged).
    failed: bool,
    /// Done: the forwarder drops it, closing both sockets.
    finished: bool,
}

impl Pair {
    /// A pair for an accepted `client` whose upstream connect has just
    /// started (`Ok`, the socket still connecting) or failed (`Err`: the
    /// client is then reset after the delay).
    pub fn new(
        id: u64,
        route: String,
        client: TcpStream,
        upstream: io::Result<TcpStream>,
        context: &mut Context,
    ) -> Pair {
        let side = |stream, connecting| Side {
            stream,
            registered: 0,
            connecting,
            reading: true,
            shut: false,
            dead: false,
        };
        let (upstream_stream, connect_error) = match upstream {
            Ok(stream) => (Some(stream), None),
            Err(error) => (None, Some(error)),
        };
        let connecting = upstream_stream.is_some();
        let mut pair = Pair {
            id,
            sides: [side(Some(client), false), side(upstream_stream, connecting)],
            lanes: [Lane::default(), Lane::default()],
            route,
            failed: false,
            finished: false,
        };
        if let Some(error) = connect_error {
            pair.fail(UPSTREAM, "connect", &error, context);
        }
        pair.update_interest(context);
        pair
    }

    /// Whether the pair is done and should be dropped.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Handles readiness `ready` of side `side`.
    pub fn on_ready(&mut self, side: usize, ready: u32, context: &mut Context) {
        if self.sides[side].connecting {
            if ready & (WRITE | ERROR_OR_HANGUP) != 0 {
                self.finish_connect(side, context);
            }
        } else {
            if ready & (READ | ERROR_OR_HANGUP) != 0 && self.sides[side].registered & READ != 0 {
                self.read(side, context);
            }
            if ready & (WRITE | ERROR_OR_HANGUP) != 0 && self.sides[side].registered & WRITE != 0 {
                self.flush(1 - side, context);
            }
        }
        self.update_interest(context);
    }

    /// Releases what lane `lane` holds that is due at `now` and writes it.
    pub fn release(&mut self, lane: usize, now: u64, context: &mut Context) {
        let stats = &mut context.stats;
        stats.chunks += self.lanes[lane].release(now, |late| stats.lateness.record(late)) as u64;
        self.flush(lane, context);
        self.update_interest(context);
    }

    /// Closes both sockets now (the link is stopping).
    pub fn close(&mut self) {
        for side in &mut self.sides {
            side.stream = None;
        }
        self.finished = true;
    }

    fn finish_connect(&mut self, side: usize, context: &mut Context) {
        self.sides[side].connecting = false;
        let outcome = match &self.sides[side].stream {
            Some(stream) => stream.take_error(),
            None => Ok(None),
        };
        match outcome {
            Ok(None) => self.flush(1 - side, context),
            Ok(Some(error)) | Err(error) => self.fail(side, "connect", &error, context),
        }
    }

    /// One read from `side` into its lane, stamped with the kernel's receive
    /// time. One per readiness report: the epoll is level-triggered, so a
    /// busy socket is read again next round, after the others had a turn.
    fn read(&mut self, side: usize, context: &mut Context) {
        let Some(stream) = &self.sides[side].stream else {
            return;
        };
        match sys::receive(stream.as_raw_fd(), &mut context.scratch) {
            Ok(received) if received.len == 0 => {
                self.sides[side].reading = false;
                // A FIN carries no stamp: it counts from now.
                let due = sys::now_ns() + context.delay_ns;
                let due = self.lanes[side].push_end(due, End::Eof);
                context.wakes.push(Reverse((due, self.id, side)));
            }
            Ok(received) => {
                let arrival = arrival_ns(received.stamp_realtime_ns);
                let data = &context.scratch[..received.len];
                let due = self.lanes[side].push(arrival + context.delay_ns, data);
                context.wakes.push(Reverse((due, self.id, side)));
                context.stats.bytes += received.len as u64;
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => self.fail(side, "read", &error, context),
        }
    }

    /// Writes what lane `lane` has ready to the other side, until the
    /// socket takes no more; then delivers a due end.
    fn flush(&mut self, lane: usize, context: &mut Context) {
        let to = 1 - lane;
        if self.sides[to].connecting || self.sides[to].dead {
            return;
        }
        let Some(stream) = &self.sides[to].stream else {
            return;
        };
        let mut writer = stream;
        while !self.lanes[lane].ready().is_empty() {
            match writer.write(self.lanes[lane].ready()) {
                Ok(0) => break,
                Ok(count) => self.lanes[lane].consume(count),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    self.fail(to, "write", &error, context);
                    return;
                }
            }
        }
        match self.lanes[lane].take_end() {
            None => {}
            Some(End::Eof) => {
                if let Err(error) = stream.shutdown(Shutdown::Write) {
                    self.fail(to, "shutdown", &error, context);
                    return;
                }
                self.sides[to].shut = true;
                if self.sides[lane].shut {
                    self.finished = true;
                }
            }
            Some(End::Reset) => {
                // SO_LINGER 0: closing sends a RST, as the failed side did.
                let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
                self.finished = true;
            }
        }
    }

    /// Side `side` failed: nothing more goes to or comes from it; the bytes
    /// it sent before still go, followed by a reset after the delay.
    fn fail(&mut self, side: usize, what: &str, error: &io::Error, context: &mut Context) {
        if self.sides[side].dead {
            return;
        }
        self.sides[side].dead = true;
        self.sides[side].reading = false;
        self.sides[side].connecting = false;
        self.lanes[1 - side].discard();
        if self.sides[1 - side].dead {
            // Nobody is left to tell.
            self.finished = true;
        } else {
            let due = sys::now_ns() + context.delay_ns;
            let due = self.lanes[side].push_end(due, End::Reset);
            context.wakes.push(Reverse((due, self.id, side)));
        }
        if !self.failed {
            self.failed = true;
            let stats = &mut context.stats;
            stats.errors += 1;
            if stats.logged_errors < Stats::LOGGED_ERRORS {
                stats.logged_errors += 1;
                let name = if side == CLIENT { "client" } else { "upstream" };
                crate::log(&format!(
                    "{}: connection {} closed: {name} {what}: {error}{}",
                    self.route,
                    self.id,
                    if stats.logged_errors == Stats::LOGGED_ERRORS {
                        " (later errors are only counted)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }

    /// What each side should be watched for now, registered with epoll
    /// where it changed. A side with nothing to wait for is removed: with a
    /// level-triggered epoll, a hung-up socket would otherwise be reported
    /// at every wait.
    fn update_interest(&mut self, context: &mut Context) {
        if self.finished {
            return;
        }
        for side in [CLIENT, UPSTREAM] {
            let wanted = self.wanted(side);
            let current = self.sides[side].registered;
            if wanted == current {
                continue;
            }
            let Some(stream) = &self.sides[side].stream else {
                continue;
            };
            let fd = stream.as_raw_fd();
            let outcome = if current == 0 {
                context.epoll.add(fd, key(self.id, side), wanted)
            } else if wanted == 0 {
                context.epoll.delete(fd)
            } else {
                context.epoll.modify(fd, key(self.id, side), wanted)
            };
            match outcome {
                Ok(()) => self.sides[side].registered = wanted,
                Err(error) => {
                    self.fail(side, "epoll_ctl", &error, context);
                    // Dead now: make sure it is not left registered.
                    if self.sides[side].registered != 0 {
                        let _ = context.epoll.delete(fd);
                        self.sides[side].registered = 0;
                    }
                }
            }
        }
    }

    fn wanted(&self, side: usize) -> Interest {
        let this = &self.sides[side];
        if this.dead || this.stream.is_none() {
            return 0;
        }
        if this.connecting {
            return WRITE;
        }
        let mut interest = 0;
        if this.reading && !self.sides[1 - side].dead && self.lanes[side].queued() < HIGH_WATER {
            interest |= READ;
        }
        // Due bytes left after a write: the socket was full.
        if !self.lanes[1 - side].ready().is_empty() {
            interest |= WRITE;
        }
        interest
    }
}

/// When a chunk reached this host, ns of CLOCK_MONOTONIC: the kernel's
/// receive stamp (real-time) turned into an age and taken from the
/// monotonic clock now; without a believable stamp, now.
fn arrival_ns(stamp_realtime_ns: Option<u64>) -> u64 {
    let now = sys::now_ns();
    let Some(stamp) = stamp_realtime_ns else {
        return now;
    };
    let age = sys::realtime_ns().saturating_sub(stamp);
    if age > MAX_STAMP_AGE_NS {
        now
    } else {
        now - age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stay_clear_of_the_forwarders_own() {
        for (pair, side) in [
            (0, CLIENT),
            (0, UPSTREAM),
            (12_345, UPSTREAM),
            (1 << 40, CLIENT),
        ] {
            assert_eq!(decode_key(key(pair, side)), Some((pair, side)));
        }
        assert_eq!(decode_key(KEY_BASE - 1), None);
    }

    #[test]
    fn a_fresh_stamp_becomes_its_age_before_now() {
        let before = sys::now_ns();
        let arrival = arrival_ns(Some(sys::realtime_ns() - 5_000_000));
        let after = sys::now_ns();
        // 5 ms before the call, give or take the call itself.
        assert!(arrival <= after - 5_000_000, "{arrival} vs {after}");
        assert!(
            arrival >= before - 5_000_000 - 1_000_000,
            "{arrival} vs {before}"
        );
    }

    #[test]
    fn an_unbelievable_stamp_counts_as_now() {
        let before = sys::now_ns();
        // From the future (a clock stepped back) and from long ago.
        assert!(arrival_ns(Some(sys::realtime_ns() + 60_000_000_000)) >= before);
        assert!(arrival_ns(Some(1)) >= before);
        assert!(arrival_ns(None) >= before);
    }
}
