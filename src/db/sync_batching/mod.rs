//! One Sync per batch of statements: a layer between tokio-postgres and a
//! shared connection's socket.
//!
//! tokio-postgres ends every statement with a Sync (Bind, Execute, Sync),
//! and PostgreSQL answers each Sync by ending the implicit transaction and
//! flushing its output: one commit and one `send` per statement, even when
//! tokio-postgres wrote a whole batch of statements in one write. Under one
//! Sync, PostgreSQL runs the batch in one implicit transaction and flushes
//! once, as pgbench's pipeline mode does. The backend's CPU per `/types`
//! statement in batches of 16 (`scripts/sync_cost.py`, two runs): 11.5 µs
//! with a Sync each, 8.2–8.5 with one per batch; in the server, PostgreSQL's
//! CPU per `/types` request fell from 18.7–27.4 to 11.5–12.6 µs
//! (docs/PERFORMANCE.md, "One Sync per batch").
//!
//! tokio-postgres has no such pipeline, and counts one ReadyForQuery per
//! request. So this layer rewrites the two streams, by hand because it is
//! the hot path this project exists to tune:
//!
//! - **Out**: a Sync that ends a plain execution (exactly Bind, Execute) and
//!   is followed in the same flush by another Bind is dropped. Every other
//!   Sync (after a Parse, a Describe, a Close) goes out, as do simple
//!   queries; so prepares, session settings and the statements sent as the
//!   unnamed statement keep their own transaction.
//! - **In**: after the CommandComplete of a statement whose Sync was
//!   dropped, a ReadyForQuery is put in, so tokio-postgres sees the answer
//!   it expects for each request. When a statement of the batch fails,
//!   PostgreSQL skips the rest until the Sync: each skipped statement gets
//!   an ErrorResponse of its own (SQLSTATE 25P02, as PostgreSQL names a
//!   statement ignored in an aborted transaction), which the handler turns
//!   into a 503 like any failed query.
//!
//! The statements of one batch share an implicit transaction. Each still
//! takes its own snapshot (read committed) and its own statement timeout
//! (PostgreSQL restarts the timer at each Execute: `tests/sync_batching.rs`
//! checks it); they only read.

//!
//! This file is the socket; `rewrite.rs` is the rewriting of the two
//! streams, without I/O.

mod rewrite;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use rewrite::Streams;

/// How many bytes are asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Past this many bytes waiting to go out, writes wait for the socket.
const WRITE_LIMIT: usize = 64 * 1024;

/// A socket whose statements are batched under one Sync per flush.
pub struct SyncBatching<S> {
    inner: S,
    /// Both streams, as tokio-postgres and PostgreSQL see them.
    streams: Streams,
}

impl<S> SyncBatching<S> {
    /// Wraps a socket on which no message has been sent yet.
    pub fn new(inner: S) -> SyncBatching<S> {
        SyncBatching {
            inner,
            streams: Streams::new(READ_CHUNK),
        }
    }
}

impl<S: AsyncWrite + Unpin> SyncBatching<S> {
    /// Writes `outgoing` to the socket until it is empty or the socket is
    /// full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.streams.outgoing.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.streams.outgoing))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.streams.outgoing.advance(written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SyncBatching<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.streams.answers.is_empty() {
            this.streams.raw.reserve(READ_CHUNK);
            let spare = this.streams.raw.spare_capacity_mut();
            let mut read = ReadBuf::uninit(spare);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled().len();
            if filled == 0 {
                // The end of the stream: tokio-postgres sees it as such.
                return Poll::Ready(Ok(()));
            }
            // SAFETY: `poll_read` initialised the first `filled` bytes of the
            // spare capacity, which follow the buffer's current contents.
            unsafe { this.streams.raw.set_len(this.streams.raw.len() + filled) };
            this.streams.take_backend()?;
        }
        let count = this.streams.answers.len().min(buf.remaining());
        buf.put_slice(&this.streams.answers[..count]);
        this.streams.answers.advance(count);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SyncBatching<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.streams.outgoing.len() >= WRITE_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.streams.write(data);
        Poll::Ready(Ok(data.len()))
    }

    /// The end of a batch: the held Sync goes out, then every byte.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.streams.end_batch();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
