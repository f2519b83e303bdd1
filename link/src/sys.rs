//! The Linux calls std does not wrap, each behind a safe function: the
//! monotonic and real-time clocks, epoll (level-triggered), a timerfd on the
//! monotonic clock with an absolute deadline, a signalfd for SIGINT and
//! SIGTERM, sockets' kernel receive timestamps, the timer slack, real-time
//! scheduling, the descriptor limit and the process's CPU time. Every `unsafe` of the crate
//! is in this file.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds in a second.
const NANOS: u64 = 1_000_000_000;

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; these clocks always
    // exist on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * NANOS + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC, ns: every due time and measurement of the link.
pub fn now_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME, ns: only to turn the kernel's receive timestamps (which
/// are real-time) into ages.
pub fn realtime_ns() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / NANOS) as libc::time_t,
        tv_nsec: (ns % NANOS) as libc::c_long,
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Takes ownership of a descriptor a successful call just returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets this thread's timer slack to 1 ns (the default, 50 µs, lets the
/// kernel fire a sleeper's timer up to 50 µs late to batch wake-ups). The
/// timerfd the link waits on is not subject to slack, but any other sleep
/// (epoll_wait's own timeout) would be.
pub fn set_timer_slack_1ns() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument; no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// Moves this thread to SCHED_FIFO at priority 1, the lowest real-time one:
/// it then runs as soon as it wakes, ahead of every normal process.
pub fn set_realtime() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is valid for the call; pid 0 is this thread.
    check(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) })?;
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard limit: each
/// forwarded connection holds two, and the usual soft limit (1024) would
/// stop the link near 500 connections.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to read into and then to pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// User + system CPU time of this process so far, ns.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: an all-zero rusage is a valid value to write into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid rusage pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let micros = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    (micros(usage.ru_utime) + micros(usage.ru_stime)) * 1000
}

/// Readiness a descriptor is watched for: [`READ`], [`WRITE`], or both.
pub type Interest = u32;
/// Readable (or at EOF, or in error).
pub const READ: Interest = libc::EPOLLIN as u32;
/// Writable (or a non-blocking connect has finished).
pub const WRITE: Interest = libc::EPOLLOUT as u32;
/// Reported whatever the interest: an error or a hang-up.
pub const ERROR_OR_HANGUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// One readiness report: the key given at registration and what is ready.
#[derive(Clone, Copy)]
pub struct Event {
    /// The key the descriptor was registered with.
    pub key: u64,
    /// `EPOLLIN`, `EPOLLOUT`, `EPOLLERR`, `EPOLLHUP` bits.
    pub ready: u32,
}

/// A level-triggered epoll instance: a descriptor that stays readable is
/// reported again at the next wait, so a handler may read once per wake-up
/// and let other connections take turns.
pub struct Epoll {
    /// The epoll descriptor.
    fd: OwnedFd,
    /// Where the kernel writes the events of one wait.
    buffer: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance that reports up to `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: no pointer arguments.
        let fd = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd,
            buffer: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    fn control(&self, op: libc::c_int, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest,
            u64: key,
        };
        // SAFETY: `event` is valid for the call; a bad `fd` is an error, not UB.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    /// Starts watching `fd` for `interest`, reported with `key`.
    pub fn add(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, key, interest)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, key, interest)
    }

    /// Stops watching `fd` (closing it does too).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits until something is ready (`timeout_ms` -1: no timeout; the
    /// link's deadlines are on a timerfd, to the ns), and returns what is.
    /// An interrupted wait returns no event.
    pub fn wait(&mut self, timeout_ms: i32, events: &mut Vec<Event>) -> io::Result<()> {
        events.clear();
        // SAFETY: the buffer holds `len` initialised events for the kernel
        // to overwrite.
        let count = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buffer.as_mut_ptr(),
                self.buffer.len() as libc::c_int,
                timeout_ms,
            )
        };
        if count < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(error)
            };
        }
        events.extend(self.buffer[..count as usize].iter().map(|event| Event {
            key: event.u64,
            ready: event.events,
        }));
        Ok(())
    }
}

/// A one-shot timer on CLOCK_MONOTONIC with an absolute deadline, readable
/// when it fires. Backed by an hrtimer, to the ns and without timer slack:
/// what tokio's 1 ms wheel cannot give.
pub struct TimerFd {
    /// The timerfd.
    fd: OwnedFd,
}

impl TimerFd {
    /// A disarmed timer.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: no pointer arguments.
        let fd = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        Ok(TimerFd { fd })
    }

    /// Fires at `deadline_ns` of CLOCK_MONOTONIC (at once if it has passed);
    /// 0 disarms.
    pub fn set(&self, deadline_ns: u64) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: timespec(0),
            it_value: timespec(deadline_ns),
        };
        // SAFETY: `spec` is valid for the call; the old value is not asked for.
        check(unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Consumes a firing, so that the level-triggered epoll stops reporting it.
    pub fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: an 8-byte buffer, the size a timerfd read needs; a timer
        // that has not fired answers EAGAIN, which is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
    }

    /// The descriptor, to register with epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// SIGINT and SIGTERM as a readable descriptor: both are blocked for the
/// process (the link is one thread), so they queue here instead of killing it.
pub struct Signals {
    /// The signalfd.
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGINT and SIGTERM and opens the descriptor that receives them.
    /// Must run before any other thread starts (there is none).
    pub fn new() -> io::Result<Signals> {
        // SAFETY: the set is initialised by sigemptyset before use; all
        // pointers are to locals valid for the calls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            check(libc::pthread_sigmask(
                libc::SIG_BLOCK,
                &set,
                std::ptr::null_mut(),
            ))?;
            let fd = owned(libc::signalfd(
                -1,
                &set,
                libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
            ))?;
            Ok(Signals { fd })
        }
    }

    /// The signal that arrived, if one did.
    pub fn take(&self) -> Option<i32> {
        // SAFETY: an all-zero signalfd_siginfo is a valid value to overwrite.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is `size` writable bytes.
        let count = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
        (count == size as isize).then_some(info.ssi_signo as i32)
    }

    /// The descriptor, to register with epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Asks the kernel to stamp every segment a socket receives (SO_TIMESTAMPNS),
/// so that a chunk's delay counts from when it reached this host, not from
/// when the link got round to reading it (an idle thread wakes ~40 µs later
/// on this VM).
pub fn enable_receive_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: an int option, passed by pointer with its size.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// What one [`receive`] got.
pub struct Received {
    /// Bytes read into the buffer; 0 is end of stream.
    pub len: usize,
    /// The kernel's CLOCK_REALTIME stamp of the last segment read, ns, when
    /// the socket has [`enable_receive_timestamps`] and data was read.
    pub stamp_realtime_ns: Option<u64>,
}

/// Buffer for one control message holding a timespec (with room to spare).
#[repr(C, align(8))]
struct ControlBuffer(
    /// The bytes the kernel fills: `cmsghdr` headers and their payloads,
    /// aligned as `CMSG_FIRSTHDR` expects.
    [u8; 64],
);

/// One `recvmsg` into `buffer`, with its receive timestamp if there is one.
pub fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<Received> {
    let mut control = ControlBuffer([0; 64]);
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no buffers yet).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    message.msg_controllen = control.0.len();
    // SAFETY: `message` points at `iov` (the caller's buffer, `len` writable
    // bytes) and at `control`, all alive for the call.
    let count = unsafe { libc::recvmsg(fd, &mut message, libc::MSG_DONTWAIT) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp_realtime_ns = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within `msg_controllen`; a SCM_TIMESTAMPNS payload is one timespec,
    // read unaligned since CMSG_DATA need not be aligned for it.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<libc::timespec>());
                stamp_realtime_ns = Some(ts.tv_sec as u64 * NANOS + ts.tv_nsec as u64);
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Ok(Received {
        len: count as usize,
        stamp_realtime_ns,
    })
}
