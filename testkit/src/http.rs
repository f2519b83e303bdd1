//! A tiny HTTP/1.1 client over a raw `TcpStream`: the bytes sent are exactly
//! the bytes given, so pipelining and malformed requests can be tested.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a read may block before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// Header names as sent (compare them case-insensitively), in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked; empty for HEAD.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the only header called `name` (case-insensitive); panics
    /// if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(
            all.len() <= 1,
            "header {name} sent {} times: {self}",
            all.len()
        );
        all.first().copied()
    }

    /// The values of every header called `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(sent, _)| sent.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Headers lower-cased and sorted, without `Date` (which may tick
    /// between two responses): for comparing the headers of two responses.
    pub fn comparable_headers(&self) -> Vec<(String, String)> {
        let mut comparable: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .filter(|(name, _)| name != "date")
            .collect();
        comparable.sort();
        comparable
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON by simd-json, a parser independent of the
    /// server's writer and of serde_json (which builds the expected values);
    /// panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        // simd-json parses in place, so it gets a copy.
        let mut bytes = self.body.clone();
        simd_json::serde::from_slice(&mut bytes)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {self}"))
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}", self.version, self.status)?;
        for (name, value) in &self.headers {
            write!(formatter, " | {name}: {value}")?;
        }
        let body = self.body_str();
        if body.len() > 600 {
            let mut cut = 600;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            write!(
                formatter,
                " | body ({} bytes): {}…",
                self.body.len(),
                &body[..cut]
            )
        } else {
            write!(formatter, " | body: {body}")
        }
    }
}

/// One client connection; keeps bytes read past a response for the next.
pub struct Conn {
    /// The socket, written and read as raw bytes.
    stream: TcpStream,
    /// Bytes read but not yet parsed (the start of the next response).
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` with a read timeout and `TCP_NODELAY`; panics if it cannot.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|error| panic!("connect {addr}: {error}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection over `stream`, as it is (no timeouts set): for tests
    /// that must see connection errors instead of panics.
    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// The socket, e.g. to change its timeouts.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes raw bytes, reporting a failure instead of panicking.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Sends `method target` and reads its response.
    pub fn request(&mut self, method: &str, target: &str) -> Response {
        self.send(&request_bytes(method, target));
        self.read_response(method == "HEAD")
            .unwrap_or_else(|error| panic!("{method} {target}: {error}"))
    }

    /// Sends `GET target` and reads its response.
    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target)
    }

    /// Reads one response; `head` says it answers a HEAD (no body follows).
    pub fn read_response(&mut self, head: bool) -> io::Result<Response> {
        let end = loop {
            if let Some(end_at) = find(&self.buf, b"\r\n\r\n") {
                break end_at;
            }
            if self.fill()? == 0 {
                return Err(eof(&self.buf, "in the response head"));
            }
        };
        let head_bytes: Vec<u8> = self.buf.drain(..end + 4).collect();
        let text = std::str::from_utf8(&head_bytes[..end])
            .map_err(|_| bad("response head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        if !version.starts_with("HTTP/1.") {
            return Err(bad(&format!("bad status line {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|word| word.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut response = Response {
            version,
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(response);
        }
        let chunked = response
            .header_all("transfer-encoding")
            .iter()
            .any(|value| value.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.body = self.read_chunked()?;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| bad(&format!("bad Content-Length {len:?}")))?;
            response.body = self.take(len)?;
        } else {
            // Neither length nor chunks: the body runs to the end of the stream.
            while self.fill()? > 0 {}
            response.body = std::mem::take(&mut self.buf);
        }
        Ok(response)
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(&format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to an empty line.
                while !self.take_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size)?);
            if !self.take_line()?.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }

    fn take_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..at + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..at]).into_owned());
            }
            if self.fill()? == 0 {
                return Err(eof(&self.buf, "in a chunked body"));
            }
        }
    }

    fn take(&mut self, count: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < count {
            if self.fill()? == 0 {
                return Err(eof(&self.buf, "in the body"));
            }
        }
        Ok(self.buf.drain(..count).collect())
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let count = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..count]);
        Ok(count)
    }
}

/// `METHOD target HTTP/1.1` with a Host header (and `Content-Length: 0` on
/// methods that usually carry a body).
pub fn request_bytes(method: &str, target: &str) -> Vec<u8> {
    let length = if matches!(method, "POST" | "PUT" | "PATCH") {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{length}\r\n").into_bytes()
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, method: &str, target: &str) -> Response {
    Conn::connect(addr).request(method, target)
}

/// One GET on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn eof(buf: &[u8], whereabouts: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "connection closed {whereabouts} (unparsed: {:?})",
            String::from_utf8_lossy(buf)
        ),
    )
}
