//! A PostgreSQL session's socket and the task that drives it, both counted
//! for the per-runtime metrics of `/metrics`: the reads and writes that
//! move bytes (each one system call) and the wake-ups of the runtime for
//! the database. `connect.rs` opens the socket and spawns the task.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::metrics;

/// The task that drives a session's socket (tokio-postgres's `Connection`),
/// counting each time it is polled: a wake-up of the runtime for the
/// database.
pub(super) struct Driver<F>(pub(super) F);

impl<F: Future + Unpin> Future for Driver<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        metrics::database_driver_polled();
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A socket to PostgreSQL, counting the reads and writes that move bytes
/// (each one system call) for the per-runtime metrics.
pub enum DatabaseSocket {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix socket.
    Unix(UnixStream),
}

impl AsyncRead for DatabaseSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = poll {
            metrics::database_read(buf.filled().len() - before);
        }
        poll
    }
}

impl AsyncWrite for DatabaseSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_write(cx, data),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_write(cx, data),
        };
        if let Poll::Ready(Ok(written)) = poll {
            metrics::database_written(written);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, slices),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, slices),
        };
        if let Poll::Ready(Ok(written)) = poll {
            metrics::database_written(written);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DatabaseSocket::Tcp(stream) => stream.is_write_vectored(),
            DatabaseSocket::Unix(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DatabaseSocket::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            DatabaseSocket::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
