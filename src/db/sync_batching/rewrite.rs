//! The rewriting of one Sync per batch (see `mod.rs`), without I/O: the
//! frontend messages tokio-postgres writes, with the Syncs between plain
//! executions dropped, and PostgreSQL's answers, with a ReadyForQuery put
//! back after each statement whose Sync was dropped.

use std::collections::VecDeque;
use std::io;

use bytes::{Buf, BytesMut};

/// Frontend and backend message tags this layer acts on.
mod tag {
    pub const BIND: u8 = b'B';
    pub const EXECUTE: u8 = b'E';
    pub const SYNC: u8 = b'S';
    pub const QUERY: u8 = b'Q';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const EMPTY_QUERY: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const ERROR: u8 = b'E';
    pub const READY_FOR_QUERY: u8 = b'Z';
}

/// A Sync message.
const SYNC: [u8; 5] = [tag::SYNC, 0, 0, 0, 4];

/// The ReadyForQuery put in after a statement whose Sync was dropped.
const READY: [u8; 6] = [tag::READY_FOR_QUERY, 0, 0, 0, 5, b'I'];

/// The ErrorResponse of a statement PostgreSQL skipped after another
/// statement of its batch failed.
const SKIPPED: &[u8] =
    b"SERROR\0VERROR\0C25P02\0Mstatement skipped: an earlier statement of its batch failed\0\0";

/// How a request's answer ends, in the order the requests went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// PostgreSQL sends its ReadyForQuery.
    Real,
    /// Its Sync was dropped: the ReadyForQuery is put in here.
    Merged,
}

/// What the messages since the last Sync were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Empty,
    Bind,
    BindExecute,
    Other,
}

/// Both streams of one session, and where each request's answer ends.
pub(super) struct Streams {
    /// Frontend bytes not yet read as whole messages.
    incoming: BytesMut,
    /// Frontend bytes ready for the socket.
    pub(super) outgoing: BytesMut,
    /// The first frontend message (the startup message) has no tag.
    startup: bool,
    group: Group,
    /// A Sync after a plain execution, kept back until the next message
    /// says whether it can be dropped.
    held: bool,
    /// The held Sync's statement has already ended (failed, or its answer
    /// came early): it must go out.
    held_ended: bool,
    /// The endings still to come, oldest first.
    endings: VecDeque<Ending>,
    /// Backend bytes not yet read as whole messages.
    pub(super) raw: BytesMut,
    /// Backend bytes, rewritten, ready for tokio-postgres.
    pub(super) answers: BytesMut,
}

impl Streams {
    /// The streams of a session on which no message has been sent yet.
    pub(super) fn new(read_chunk: usize) -> Streams {
        Streams {
            incoming: BytesMut::new(),
            outgoing: BytesMut::with_capacity(4096),
            startup: true,
            group: Group::Empty,
            held: false,
            held_ended: false,
            // The session's start ends with PostgreSQL's ReadyForQuery.
            endings: VecDeque::from([Ending::Real]),
            raw: BytesMut::with_capacity(read_chunk),
            answers: BytesMut::with_capacity(read_chunk),
        }
    }

    /// Takes bytes tokio-postgres wrote: their whole messages go to
    /// `outgoing`, rewritten.
    pub(super) fn write(&mut self, data: &[u8]) {
        self.incoming.extend_from_slice(data);
        self.take_frontend();
    }

    /// Reads the whole frontend messages of `incoming` into `outgoing`.
    fn take_frontend(&mut self) {
        loop {
            let length = match self.startup {
                // The startup message: a length, no tag.
                true if self.incoming.len() >= 4 => be_length(&self.incoming[..4]),
                true => return,
                false if self.incoming.len() >= 5 => 1 + be_length(&self.incoming[1..5]),
                false => return,
            };
            if self.incoming.len() < length {
                return;
            }
            if self.startup {
                self.startup = false;
                self.outgoing.extend_from_slice(&self.incoming[..length]);
            } else {
                let tag = self.incoming[0];
                self.settle_held(tag);
                self.frontend_message(tag, length);
            }
            self.incoming.advance(length);
        }
    }

    /// A message follows a held Sync: a Bind of a statement that has not
    /// ended yet drops it; anything else sends it.
    fn settle_held(&mut self, next: u8) {
        if !self.held {
            return;
        }
        if next == tag::BIND && !self.held_ended {
            self.endings.push_back(Ending::Merged);
        } else {
            self.send_held();
        }
        self.held = false;
        self.held_ended = false;
    }

    /// Sends the held Sync (at a flush, or before a message it must not
    /// share a transaction with).
    fn send_held(&mut self) {
        self.outgoing.extend_from_slice(&SYNC);
        self.endings.push_back(Ending::Real);
    }

    /// The end of a batch: the held Sync, if any, goes out.
    pub(super) fn end_batch(&mut self) {
        if self.held {
            self.send_held();
            self.held = false;
            self.held_ended = false;
        }
    }

    /// The whole message at the front of `incoming`, tagged `tag`.
    fn frontend_message(&mut self, tag: u8, length: usize) {
        match tag {
            tag::SYNC if self.group == Group::BindExecute => self.held = true,
            tag::SYNC | tag::QUERY => {
                self.outgoing.extend_from_slice(&self.incoming[..length]);
                self.endings.push_back(Ending::Real);
            }
            _ => self.outgoing.extend_from_slice(&self.incoming[..length]),
        }
        self.group = match (tag, self.group) {
            (tag::SYNC | tag::QUERY, _) => Group::Empty,
            (tag::BIND, Group::Empty) => Group::Bind,
            (tag::EXECUTE, Group::Bind) => Group::BindExecute,
            _ => Group::Other,
        };
    }

    /// Reads the whole backend messages of `raw` into `answers`, putting in
    /// the endings of merged statements. An error when PostgreSQL's answers
    /// do not match the requests sent (which would leave tokio-postgres
    /// waiting forever): the connection is then closed and replaced.
    pub(super) fn take_backend(&mut self) -> io::Result<()> {
        while self.raw.len() >= 5 {
            let length = 1 + be_length(&self.raw[1..5]);
            if self.raw.len() < length {
                break;
            }
            let tag = self.raw[0];
            self.answers.extend_from_slice(&self.raw[..length]);
            self.raw.advance(length);
            match tag {
                tag::COMMAND_COMPLETE | tag::EMPTY_QUERY | tag::PORTAL_SUSPENDED => {
                    self.statement_ended();
                }
                tag::ERROR => self.statement_failed(),
                tag::READY_FOR_QUERY => match self.endings.pop_front() {
                    Some(Ending::Real) => {}
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a ReadyForQuery that no request waits for",
                        ));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// A statement's answer ended; if its Sync was dropped, its
    /// ReadyForQuery is put in.
    fn statement_ended(&mut self) {
        match self.endings.front() {
            Some(Ending::Merged) => {
                self.endings.pop_front();
                self.answers.extend_from_slice(&READY);
            }
            Some(Ending::Real) => {}
            // The held Sync's statement ended before the Sync was settled:
            // it goes out, and its ReadyForQuery comes from PostgreSQL.
            None => self.held_ended = self.held,
        }
    }

    /// A statement failed. When its Sync was dropped, PostgreSQL skips every
    /// statement after it up to the batch's Sync: each gets its own error,
    /// and the last (whose Sync went out) its error before PostgreSQL's
    /// ReadyForQuery.
    fn statement_failed(&mut self) {
        if self.endings.front() != Some(&Ending::Merged) {
            // The failed statement's own Sync went out (or is held): its
            // ReadyForQuery comes from PostgreSQL.
            if self.endings.is_empty() {
                self.held_ended = self.held;
            }
            return;
        }
        self.endings.pop_front();
        self.answers.extend_from_slice(&READY);
        while self.endings.front() == Some(&Ending::Merged) {
            self.endings.pop_front();
            self.push_skipped();
            self.answers.extend_from_slice(&READY);
        }
        match self.endings.front() {
            Some(Ending::Real) => self.push_skipped(),
            // The batch's last Sync is still held: its statement is skipped
            // too, and the Sync must go out.
            _ if self.held => {
                self.push_skipped();
                self.held_ended = true;
            }
            _ => {}
        }
    }

    fn push_skipped(&mut self) {
        self.answers.extend_from_slice(&[tag::ERROR]);
        self.answers
            .extend_from_slice(&(4 + SKIPPED.len() as u32).to_be_bytes());
        self.answers.extend_from_slice(SKIPPED);
    }
}

/// A message's length field (it counts itself, not the tag).
fn be_length(bytes: &[u8]) -> usize {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
}

#[cfg(test)]
mod tests;
