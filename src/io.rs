//! The connection's socket as hyper sees it: pipelined answers coalesced into
//! one write, request heads bounded, and a write timeout. Hand-written: no
//! crate does this, and it is the pipelined hot path.
//!
//! **Coalescing.** hyper flushes after every response. Its `pipeline_flush`
//! option holds the flush while unparsed bytes sit in its read buffer, but
//! it then neither flushes nor caps its write buffer: a client that pipelines
//! requests and never reads, or whose last request is still partial, makes
//! answers pile up in memory. This wrapper counts the request heads
//! (`\r\n\r\n`) that arrive and the responses hyper writes; while more heads
//! have arrived than responses were written, hyper is about to answer
//! another pipelined request, so a flush is held back and the response stays
//! in a buffer of at most [`MAX_HELD`] bytes. Anything else flushes at once.
//! A held flush also wakes the connection's task, and the next flush with
//! nothing new written goes out whatever the count says: no answer is held
//! for longer than one turn of the scheduler.
//!
//! **Bounded heads.** The same scan that counts heads measures each one
//! (`head.rs`). Past the bound, the complete heads of the same read are
//! answered first, then the refusal, and hyper gets no more bytes: the
//! connection reads and discards what the client still sends for a moment
//! (lingering close) and ends, so that the client reads the answer rather
//! than a reset.
//!
//! **Write timeout.** A socket that takes no bytes for `--write-timeout-s`
//! (a client that stopped reading) ends the connection with an error, which
//! frees its buffers; a slow reader that makes progress is never cut off.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::activity::Activity;
use crate::head::{HeadScan, Refusal};

/// Most bytes of responses held back before they are written regardless.
pub const MAX_HELD: usize = 64 * 1024;

/// How long a refused connection reads (and discards) what the client is
/// still sending before it closes, and how much: closing with unread bytes
/// would send a reset that can destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// The settings of every connection's wrapper.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest request head, request line included.
    pub max_head_bytes: usize,
    /// How long the socket may take no bytes of an answer.
    pub write_timeout: Duration,
}

/// The connection's socket, with pipelined answers coalesced, heads
/// bounded and writes timed.
pub struct Coalescing<S> {
    inner: S,
    limits: Limits,
    activity: Arc<Activity>,
    /// Responses written by hyper but not yet to the socket.
    held: Vec<u8>,
    /// How many bytes of `held` the socket has taken.
    written: usize,
    /// Request heads counted and measured in what was read.
    heads: HeadScan,
    /// Writes hyper made (one per response when it flushes each).
    responses_written: u64,
    /// The last flush was held and nothing was written since: the next one
    /// writes, so a response waiting on a slow handler is never spun on.
    flush_held: bool,
    /// Runs while the socket takes no bytes (write timeout), or while a
    /// refused connection lingers; allocated the first time it is needed.
    timer: Option<Pin<Box<Sleep>>>,
    /// The write timer is running.
    stalled: bool,
    /// A head over the bound: hyper gets no more bytes.
    refused: Option<Refused>,
}

/// A connection whose head was over the bound, lingering before it closes.
struct Refused {
    why: Refusal,
    /// The answer is in `held` (it waits for the answers to the complete
    /// heads before it, when there were some in the same read).
    answered: bool,
    /// Bytes read and discarded since.
    discarded: usize,
}

impl<S> Coalescing<S> {
    /// Wraps a socket.
    pub fn new(inner: S, limits: Limits, activity: Arc<Activity>) -> Self {
        Coalescing {
            inner,
            limits,
            activity,
            held: Vec::new(),
            written: 0,
            heads: HeadScan::new(limits.max_head_bytes),
            responses_written: 0,
            flush_held: false,
            timer: None,
            stalled: false,
            refused: None,
        }
    }

    /// More requests have arrived than were answered: another answer is
    /// coming in this same turn.
    fn more_answers_coming(&self) -> bool {
        self.heads.heads() > self.responses_written
    }

    /// Starts (or resets) the timer to fire `after` from now.
    fn start_timer(&mut self, after: Duration) {
        let deadline = Instant::now() + after;
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Whether the running timer has fired (registering a wake-up if not).
    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    /// The socket answered a write with `poll`: a `Pending` starts or checks
    /// the write timeout, anything else stops it.
    fn timed<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => {
                if !self.stalled {
                    self.stalled = true;
                    self.activity.set_unwritten(true);
                    self.start_timer(self.limits.write_timeout);
                }
                match self.timer_fired(cx) {
                    true => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client took no bytes for the write timeout",
                    ))),
                    false => Poll::Pending,
                }
            }
            ready => {
                if self.stalled {
                    self.stalled = false;
                    self.activity.set_unwritten(!self.held.is_empty());
                }
                ready
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Writes out everything held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let poll = Pin::new(&mut self.inner).poll_write(cx, &self.held[self.written..]);
            let n = ready!(self.timed(cx, poll))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        self.activity.set_unwritten(false);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Coalescing<S> {
    /// A refused connection: write the answer, read and discard what the
    /// client still sends for a moment, then tell hyper the stream ended.
    #[cold]
    fn poll_linger(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(refused) = self.refused.as_mut().filter(|refused| !refused.answered) {
            refused.answered = true;
            let answer = refused.why.response();
            self.held.extend_from_slice(&answer);
            self.activity.set_unwritten(true);
            self.start_timer(LINGER);
        }
        ready!(self.poll_write_held(cx))?;
        let before = buf.filled().len();
        loop {
            let discarded = self.refused.as_ref().map_or(0, |refused| refused.discarded);
            if discarded >= LINGER_BYTES || self.timer_fired(cx) {
                return Poll::Ready(Ok(()));
            }
            ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
            let read = buf.filled().len() - before;
            buf.set_filled(before);
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(refused) = &mut self.refused {
                refused.discarded += read;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refused.is_some() {
            return this.poll_linger(cx, buf);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if let Some((why, complete)) = this.heads.scan(new) {
            // hyper gets the complete heads of this read, never the bytes of
            // the refused one; it answers those first, and the refusal goes
            // out when it asks for more.
            buf.set_filled(before + complete);
            this.refused = Some(Refused {
                why,
                answered: false,
                discarded: 0,
            });
            if complete == 0 {
                return this.poll_linger(cx, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Room first: a full buffer goes out before more is taken, so a client
        // that does not read stops the server at MAX_HELD bytes.
        if this.held.len() >= MAX_HELD {
            ready!(this.poll_write_held(cx))?;
        }
        let total: usize = slices.iter().map(|slice| slice.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if this.held.is_empty() && !this.more_answers_coming() {
            // Nothing to coalesce with: straight to the socket, no copy.
            let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, slices);
            let n = ready!(this.timed(cx, poll))?;
            this.responses_written += 1;
            return Poll::Ready(Ok(n));
        }
        for slice in slices {
            this.held.extend_from_slice(slice);
        }
        this.activity.set_unwritten(true);
        this.responses_written += 1;
        this.flush_held = false;
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty()
            && !this.flush_held
            && this.more_answers_coming()
            && this.held.len() < MAX_HELD
        {
            // Held for the next answer of the batch. Ready, not Pending: hyper
            // moves on to the next request only once a flush is done. The
            // wake makes sure the connection is polled again, and hyper flushes
            // on every poll, so the held bytes go out next time even if no
            // answer comes.
            this.flush_held = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        this.flush_held = false;
        ready!(this.poll_write_held(cx))?;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.timed(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
