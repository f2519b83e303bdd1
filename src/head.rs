//! The scan of every byte a connection reads: it counts the request heads
//! (`\r\n\r\n`), for the coalescing of pipelined answers, and measures the
//! current head against the bound, to refuse one that passes it.
//!
//! Every open connection may hold a request head in memory, so heads are
//! bounded (`--max-head-bytes`, 16 KB by default, as HAProxy does). Past the
//! bound, the part of the head being read names the fault: the method (501,
//! RFC 9112 §3: longer than any method implemented), the target (414), the
//! rest of the request line (400) or the header fields (431).
//!
//! A head that announces a body (`Content-Length` or `Transfer-Encoding`)
//! ends the scan's bound for the rest of the connection: this API takes no
//! bodies, and without parsing their framing the scan cannot tell a body
//! from the next head. hyper's own limit, set at twice the bound, still
//! bounds what such a connection can hold.
//! Hand-written: it runs on every read of the pipelined hot path.

use std::time::SystemTime;

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The method alone passes the bound: 501.
    MethodTooLong,
    /// The request target passes it: 414.
    TargetTooLong,
    /// The rest of the request line does: 400.
    RequestLineTooLong,
    /// The header fields do: 431.
    HeadTooLarge,
}

impl Refusal {
    /// The whole answer: status line, `Date` (RFC 9110 §6.6.1), no body,
    /// and `Connection: close`.
    #[cold]
    pub fn response(self) -> Vec<u8> {
        let status = match self {
            Refusal::MethodTooLong => "501 Not Implemented",
            Refusal::TargetTooLong => "414 URI Too Long",
            Refusal::RequestLineTooLong => "400 Bad Request",
            Refusal::HeadTooLarge => "431 Request Header Fields Too Large",
        };
        format!(
            "HTTP/1.1 {status}\r\ndate: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        )
        .into_bytes()
    }
}

/// Where in the current head the scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Method,
    Target,
    Version,
    Fields,
}

/// The field names that announce a body, lower case, colon included.
const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";

/// The scan's state across the reads of one connection.
#[derive(Debug)]
pub struct HeadScan {
    /// The bound: the most bytes a head may take.
    max_head_bytes: usize,
    /// Request heads seen complete.
    heads: u64,
    /// The last bytes of the previous read, for a `\r\n\r\n` split by it.
    tail: [u8; 3],
    /// Bytes of the current head so far.
    head_bytes: usize,
    /// Bytes of the current line so far.
    line_bytes: usize,
    part: Part,
    /// The current field line may still be `Content-Length:` (bit 0) or
    /// `Transfer-Encoding:` (bit 1).
    candidates: u8,
    /// The current head announced a body.
    body_announced: bool,
    /// A head announced a body: no bound from here on (see the top).
    unbounded: bool,
}

impl HeadScan {
    /// A scan for a new connection.
    pub fn new(max_head_bytes: usize) -> HeadScan {
        HeadScan {
            max_head_bytes,
            heads: 0,
            tail: [0; 3],
            head_bytes: 0,
            line_bytes: 0,
            part: Part::Method,
            candidates: 0,
            body_announced: false,
            unbounded: false,
        }
    }

    /// Request heads seen complete so far.
    #[inline]
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Scans the bytes of one read. When a head passes the bound, returns
    /// why, and how many of these bytes come before the head being refused
    /// (complete heads, which deserve their answers first).
    pub fn scan(&mut self, bytes: &[u8]) -> Option<(Refusal, usize)> {
        let mut window = self.tail;
        let mut last_head_end = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            self.head_bytes += 1;
            if self.head_bytes > self.max_head_bytes && !self.unbounded {
                return Some((self.refusal(), last_head_end));
            }
            match byte {
                b'\n' if window == *b"\r\n\r" => {
                    self.heads += 1;
                    self.unbounded |= self.body_announced;
                    self.head_bytes = 0;
                    self.line_bytes = 0;
                    self.part = Part::Method;
                    self.body_announced = false;
                    last_head_end = index + 1;
                }
                b'\n' => {
                    self.part = Part::Fields;
                    self.line_bytes = 0;
                    self.candidates = 0b11;
                }
                b' ' if self.part == Part::Method => self.part = Part::Target,
                b' ' if self.part == Part::Target => self.part = Part::Version,
                _ if self.candidates != 0 => self.match_field_name(byte),
                _ => {}
            }
            window = [window[1], window[2], byte];
        }
        self.tail = window;
        None
    }

    /// One more byte of a field line's start: does it still spell a field
    /// that announces a body?
    fn match_field_name(&mut self, byte: u8) {
        let lower = byte.to_ascii_lowercase();
        let position = self.line_bytes;
        self.line_bytes += 1;
        for (bit, name) in [(0b01, CONTENT_LENGTH), (0b10, TRANSFER_ENCODING)] {
            if self.candidates & bit == 0 {
                continue;
            }
            if name.get(position) != Some(&lower) {
                self.candidates &= !bit;
            } else if position + 1 == name.len() {
                self.body_announced = true;
                self.candidates = 0;
            }
        }
    }

    fn refusal(&self) -> Refusal {
        match self.part {
            Part::Method => Refusal::MethodTooLong,
            Part::Target => Refusal::TargetTooLong,
            Part::Version => Refusal::RequestLineTooLong,
            Part::Fields => Refusal::HeadTooLarge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_counted_across_reads() {
        let mut scan = HeadScan::new(16 * 1024);
        scan.scan(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r");
        assert_eq!(scan.heads(), 1);
        scan.scan(b"\n");
        assert_eq!(scan.heads(), 2);
        scan.scan(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        assert_eq!(scan.heads(), 4);
    }

    #[test]
    fn the_part_of_the_head_that_passes_the_bound_names_the_refusal() {
        let long = |prefix: &str, filler: u8| {
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(filler, 100));
            bytes
        };
        for (bytes, refusal) in [
            (long("", b'G'), Refusal::MethodTooLong),
            (long("GET /", b'a'), Refusal::TargetTooLong),
            (long("GET / HTTP/1.1", b'1'), Refusal::RequestLineTooLong),
            (
                long("GET / HTTP/1.1\r\nX-Long: ", b'b'),
                Refusal::HeadTooLarge,
            ),
        ] {
            let mut scan = HeadScan::new(64);
            assert_eq!(scan.scan(&bytes), Some((refusal, 0)));
        }
    }

    #[test]
    fn complete_heads_before_the_refused_one_are_passed_on() {
        let mut scan = HeadScan::new(64);
        let mut bytes = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let complete = bytes.len();
        bytes.extend_from_slice(b"GET /version HTTP/1.1\r\nX-Long: ");
        bytes.extend(std::iter::repeat_n(b'c', 100));
        assert_eq!(scan.scan(&bytes), Some((Refusal::HeadTooLarge, complete)));
    }

    #[test]
    fn the_bound_applies_to_each_head_not_to_the_connection() {
        let mut scan = HeadScan::new(64);
        for _ in 0..100 {
            assert_eq!(scan.scan(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        }
        assert_eq!(scan.heads(), 100);
        // Split across reads, a head is measured whole.
        assert_eq!(scan.scan(b"GET /version HTTP/1.1\r\nX-A: "), None);
        assert_eq!(scan.scan(&[b'c'; 40]), Some((Refusal::HeadTooLarge, 0)));
    }

    #[test]
    fn a_head_that_announces_a_body_ends_the_bound() {
        for field in ["Content-Length: 70000", "transfer-ENCODING: chunked"] {
            let mut scan = HeadScan::new(64);
            let head = format!("POST /v HTTP/1.1\r\n{field}\r\n\r\n");
            assert_eq!(scan.scan(head.as_bytes()), None, "{field}");
            assert_eq!(scan.scan(&[b'd'; 1000]), None, "{field}");
        }
        let mut scan = HeadScan::new(64);
        assert_eq!(
            scan.scan(b"GET /v HTTP/1.1\r\nContent-Type: x\r\n\r\n"),
            None
        );
        assert!(
            scan.scan(&[b'e'; 1000]).is_some(),
            "Content-Type announces no body"
        );
    }
}
