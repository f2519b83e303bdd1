//! A socket wrapper that answers a pipelined batch with one write, safely.
//!
//! hyper flushes after every response. Its `pipeline_flush` option holds the
//! flush while unparsed bytes sit in its read buffer, which answers a batch
//! of pipelined requests with one write instead of one per request (the
//! `version_pipelined` workload), but it then neither flushes nor caps its
//! write buffer: a client that pipelines requests and never reads, or whose
//! last request is still partial, makes answers pile up in memory, and a
//! complete request's answer waits for the next one.
//!
//! This wrapper keeps the gain without those faults. It counts the request
//! heads (`\r\n\r\n`) that arrive and the responses hyper writes; while more
//! heads have arrived than responses were written, hyper is about to answer
//! another pipelined request, so a flush is held back and the response stays
//! in a buffer of at most [`MAX_HELD`] bytes. Anything else flushes at once:
//! a lone request, the last of a batch, a partial request, a full buffer.
//! A held flush also wakes the connection's task, and the next flush with
//! nothing new written goes out whatever the count says: no answer is held
//! for longer than one turn of the scheduler, even when the count is wrong
//! (a body holding `\r\n\r\n`) or the next answer waits on the database.
//! Hand-written: no crate does this, and it is the pipelined hot path.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes of responses held back before they are written regardless.
pub const MAX_HELD: usize = 64 * 1024;

/// The connection's socket, with pipelined answers coalesced.
pub struct Coalescing<S> {
    inner: S,
    /// Responses written by hyper but not yet to the socket.
    held: Vec<u8>,
    /// How many bytes of `held` the socket has taken.
    written: usize,
    /// Request heads seen in what was read.
    heads_read: u64,
    /// Writes hyper made (one per response when it flushes each).
    responses_written: u64,
    /// The last bytes of the previous read, for a `\r\n\r\n` split by it.
    tail: [u8; 3],
    /// The last flush was held and nothing was written since: the next one
    /// writes, so a response waiting on a slow handler is never spun on.
    flush_held: bool,
}

impl<S> Coalescing<S> {
    /// Wraps a socket.
    pub fn new(inner: S) -> Self {
        Coalescing {
            inner,
            held: Vec::new(),
            written: 0,
            heads_read: 0,
            responses_written: 0,
            tail: [0; 3],
            flush_held: false,
        }
    }

    /// Counts the request heads ending in `bytes`.
    fn count_heads(&mut self, bytes: &[u8]) {
        let mut window = [0u8; 3];
        window.copy_from_slice(&self.tail);
        for &byte in bytes {
            if byte == b'\n' && window == *b"\r\n\r" {
                self.heads_read += 1;
            }
            window = [window[1], window[2], byte];
        }
        self.tail = window;
    }

    /// More requests have arrived than were answered: another answer is
    /// coming in this same turn.
    fn more_answers_coming(&self) -> bool {
        self.heads_read > self.responses_written
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Writes out everything held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let filled = buf.filled();
        let new = &filled[before..];
        this.count_heads(new);
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
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, slices))?;
            this.responses_written += 1;
            return Poll::Ready(Ok(n));
        }
        for slice in slices {
            this.held.extend_from_slice(slice);
        }
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
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_counted_across_reads() {
        let mut io = Coalescing::new(());
        io.count_heads(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r");
        assert_eq!(io.heads_read, 1);
        io.count_heads(b"\n");
        assert_eq!(io.heads_read, 2);
        io.count_heads(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        assert_eq!(io.heads_read, 4);
    }
}
