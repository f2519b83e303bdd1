//! One direction of a forwarded connection: the bytes read from one socket
//! and not yet written to the other, each chunk held until its due time.
//! Pure bookkeeping (no I/O, no clock), so the rules are unit-tested here:
//!
//! - bytes leave in the order they came, none is dropped, none is written
//!   before its chunk's due time;
//! - a chunk that arrives while earlier ones wait queues behind them, and
//!   what is due goes out together (pipelined traffic stays pipelined: the
//!   lane never waits for the other direction);
//! - an end of stream (EOF) or a reset travels like a chunk, behind the
//!   bytes read before it.

use std::collections::VecDeque;

/// How a direction ends, delivered after the bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The sender shut its writing side: shut the receiver's writing side.
    Eof,
    /// The sender's socket failed (reset, refused, write error): reset the
    /// receiver's connection.
    Reset,
}

/// A chunk (or an end) waiting for its due time.
#[derive(Debug)]
struct Hold {
    /// When it may be written, ns of CLOCK_MONOTONIC.
    due: u64,
    /// The lane's byte count once this chunk is written: every byte before
    /// this offset is released with it.
    end_offset: u64,
    /// An end of the stream instead of data.
    end: Option<End>,
}

/// Byte counts past which the buffer's consumed front is reclaimed, and
/// past which an emptied buffer gives its memory back: a burst should not
/// leave each of a thousand idle connections holding a large buffer.
const COMPACT_AT: usize = 64 * 1024;
/// See [`COMPACT_AT`].
const SHRINK_AT: usize = 256 * 1024;

/// The bytes travelling one way, with their holds.
#[derive(Debug, Default)]
pub struct Lane {
    /// Read and not yet written: `bytes[head..]`.
    bytes: Vec<u8>,
    /// Where the unwritten bytes start in `bytes`.
    head: usize,
    /// Bytes written so far: the offset of `bytes[head]` in the stream.
    written: u64,
    /// Waiting chunks and ends, in arrival order (so in due order).
    holds: VecDeque<Hold>,
    /// The stream offset up to which bytes are due (may be written).
    released: u64,
    /// An end that is due, to deliver once the released bytes are written.
    released_end: Option<End>,
    /// The latest due time pushed: a later chunk is never due before it.
    last_due: u64,
    /// The receiver is gone: nothing is kept any more.
    discarded: bool,
}

impl Lane {
    /// Queues `data` to be written at `due` (or with the chunk before it, if
    /// that one is due later: order first). Returns the due time used.
    pub fn push(&mut self, due: u64, data: &[u8]) -> u64 {
        if self.discarded || data.is_empty() {
            return due;
        }
        let due = due.max(self.last_due);
        self.last_due = due;
        self.bytes.extend_from_slice(data);
        self.holds.push_back(Hold {
            due,
            end_offset: self.read_offset(),
            end: None,
        });
        due
    }

    /// Queues `end` behind every byte pushed so far. Returns the due time used.
    pub fn push_end(&mut self, due: u64, end: End) -> u64 {
        let due = due.max(self.last_due);
        if self.discarded {
            return due;
        }
        self.last_due = due;
        self.holds.push_back(Hold {
            due,
            end_offset: self.read_offset(),
            end: Some(end),
        });
        due
    }

    /// Releases every hold due at `now`, calling `lateness` with `now - due`
    /// for each data chunk. Returns how many chunks were released.
    pub fn release(&mut self, now: u64, mut lateness: impl FnMut(u64)) -> usize {
        let mut chunks = 0;
        while let Some(hold) = self.holds.front() {
            if hold.due > now {
                break;
            }
            self.released = hold.end_offset;
            match hold.end {
                None => {
                    chunks += 1;
                    lateness(now - hold.due);
                }
                // A reset overrides an end not yet delivered; an EOF never
                // overrides a reset.
                Some(end) => {
                    if self.released_end != Some(End::Reset) {
                        self.released_end = Some(end);
                    }
                }
            }
            self.holds.pop_front();
        }
        chunks
    }

    /// The bytes that are due and not yet written, in order.
    pub fn ready(&self) -> &[u8] {
        let len = (self.released - self.written) as usize;
        &self.bytes[self.head..self.head + len]
    }

    /// Marks the first `count` bytes of [`Lane::ready`] as written.
    pub fn consume(&mut self, count: usize) {
        let count = count.min(self.ready().len());
        self.head += count;
        self.written += count as u64;
        if self.head == self.bytes.len() {
            self.bytes.clear();
            self.head = 0;
            if self.bytes.capacity() > SHRINK_AT {
                self.bytes = Vec::new();
            }
        } else if self.head >= COMPACT_AT && self.head * 2 >= self.bytes.len() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }

    /// The end to deliver now: one is due and every byte before it is written.
    /// Taken once.
    pub fn take_end(&mut self) -> Option<End> {
        if self.written == self.released {
            self.released_end.take()
        } else {
            None
        }
    }

    /// Bytes read and not yet written (due or not): what backpressure looks at.
    pub fn queued(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// The receiver is gone: drops every byte and hold, and ignores later pushes.
    pub fn discard(&mut self) {
        self.discarded = true;
        self.bytes = Vec::new();
        self.head = 0;
        self.holds.clear();
        self.released = self.written;
        self.released_end = None;
    }

    fn read_offset(&self) -> u64 {
        self.written + self.queued() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes everything ready, as a socket that takes it all would.
    fn drain(lane: &mut Lane) -> Vec<u8> {
        let out = lane.ready().to_vec();
        lane.consume(out.len());
        out
    }

    #[test]
    fn nothing_is_ready_before_its_due_time() {
        let mut lane = Lane::default();
        lane.push(100, b"abc");
        assert_eq!(lane.release(99, |_| {}), 0);
        assert!(lane.ready().is_empty());
        assert_eq!(lane.queued(), 3);
        assert_eq!(lane.release(100, |_| {}), 1);
        assert_eq!(drain(&mut lane), b"abc");
        assert_eq!(lane.queued(), 0);
    }

    #[test]
    fn chunks_queue_behind_each_other_and_leave_in_order() {
        let mut lane = Lane::default();
        lane.push(10, b"one ");
        lane.push(20, b"two ");
        lane.push(30, b"three");
        let mut latenesses = Vec::new();
        // At 25 the first two are due, together; the third waits.
        assert_eq!(lane.release(25, |late| latenesses.push(late)), 2);
        assert_eq!(latenesses, vec![15, 5]);
        assert_eq!(drain(&mut lane), b"one two ");
        assert_eq!(lane.queued(), 5);
        assert_eq!(lane.release(30, |_| {}), 1);
        assert_eq!(drain(&mut lane), b"three");
        assert_eq!(lane.queued(), 0);
    }

    #[test]
    fn a_later_chunk_is_never_due_before_an_earlier_one() {
        let mut lane = Lane::default();
        assert_eq!(lane.push(50, b"a"), 50);
        // Stamps of two reads may disagree by a few ns: order wins.
        assert_eq!(lane.push(49, b"b"), 50);
        assert_eq!(lane.release(49, |_| {}), 0);
        assert_eq!(lane.release(50, |_| {}), 2);
        assert_eq!(drain(&mut lane), b"ab");
    }

    #[test]
    fn a_partial_write_keeps_the_rest_in_order() {
        let mut lane = Lane::default();
        lane.push(1, b"hello ");
        lane.release(1, |_| {});
        lane.consume(2);
        lane.push(2, b"world");
        assert_eq!(lane.ready(), b"llo ");
        lane.release(2, |_| {});
        assert_eq!(drain(&mut lane), b"llo world");
    }

    #[test]
    fn an_end_waits_behind_the_bytes_before_it() {
        let mut lane = Lane::default();
        lane.push(10, b"last words");
        lane.push_end(20, End::Eof);
        lane.release(15, |_| {});
        assert_eq!(lane.take_end(), None, "the end is not due yet");
        lane.release(20, |_| {});
        assert_eq!(lane.take_end(), None, "bytes before it are unwritten");
        lane.consume(4);
        assert_eq!(lane.take_end(), None, "bytes before it are unwritten");
        assert_eq!(drain(&mut lane), b" words");
        assert_eq!(lane.take_end(), Some(End::Eof));
        assert_eq!(lane.take_end(), None, "taken once");
    }

    #[test]
    fn a_reset_behind_an_eof_wins() {
        let mut lane = Lane::default();
        lane.push_end(10, End::Eof);
        lane.push_end(11, End::Reset);
        lane.release(11, |_| {});
        assert_eq!(lane.take_end(), Some(End::Reset));
    }

    #[test]
    fn a_discarded_lane_keeps_nothing() {
        let mut lane = Lane::default();
        lane.push(10, b"abc");
        lane.discard();
        lane.push(11, b"def");
        lane.push_end(12, End::Eof);
        assert_eq!(lane.release(100, |_| {}), 0);
        assert!(lane.ready().is_empty());
        assert_eq!(lane.take_end(), None);
        assert_eq!(lane.queued(), 0);
    }

    #[test]
    fn many_chunks_with_partial_writes_arrive_whole_and_in_order() {
        // A stream of 200 000 bytes in chunks of varying sizes, released at
        // varying times and written in pieces of varying sizes (a socket
        // that takes what it can), crossing the compaction threshold.
        let stream: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut lane = Lane::default();
        let mut out = Vec::new();
        let mut offset = 0;
        let mut time = 0;
        let mut step = 0usize;
        while offset < stream.len() || lane.queued() > 0 {
            step += 1;
            if offset < stream.len() {
                let size = (step * 37 % 5000 + 1).min(stream.len() - offset);
                lane.push(time + 10, &stream[offset..offset + size]);
                offset += size;
            }
            time += 3;
            lane.release(time, |_| {});
            let take = (step * 53 % 7000).min(lane.ready().len());
            out.extend_from_slice(&lane.ready()[..take]);
            lane.consume(take);
        }
        assert_eq!(out.len(), stream.len());
        assert!(out == stream, "bytes differ");
    }
}
