//! Hostile and malformed requests: a 4xx or a closed connection, never a
//! 5xx or a hang; request heads over the bound refused and their
//! connections closed.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn, Response};
use testkit::{assert_alive, assert_no_leak};

use crate::helpers::{closed_within, figure, ms, serial, try_connect, url_with};
use crate::{KIT, SECRET};

/// What a hostile request may get.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// A response with one of these statuses.
    Status(&'static [u16]),
    /// No response: the connection is closed.
    Closed,
    /// A response with one of these statuses, or a closed connection.
    StatusOrClosed(&'static [u16]),
    /// Request smuggling: at most one response (below 500), then the
    /// connection closes; whatever was smuggled behind it is never answered.
    OneAnswerThenClosed,
    /// Exactly these responses, in this order.
    Answers(&'static [u16]),
}

/// What came back for a request: responses, then whether the server closed.
pub(crate) struct Outcome {
    pub(crate) responses: Vec<Response>,
    pub(crate) closed: bool,
    pub(crate) error: Option<String>,
}

/// Sends `bytes` (`chunks` of them, `pause` apart), optionally closes the
/// write side, and reads what comes back: the first response within
/// `first_wait`, further ones (or the close) within 300 ms each.
pub(crate) fn probe(
    addr: SocketAddr,
    chunks: &[&[u8]],
    pause: Duration,
    shut_write: bool,
    first_wait: Duration,
) -> Outcome {
    let mut conn = try_connect(addr, first_wait).expect("connect");
    let mut error = None;
    for (index, chunk) in chunks.iter().enumerate() {
        if index > 0 {
            thread::sleep(pause);
        }
        if let Err(failure) = conn.try_send(chunk) {
            // The server may close before reading everything (e.g. a 431);
            // what it answered before is read below.
            if !matches!(
                failure.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                error = Some(format!("write: {failure}"));
            }
            break;
        }
    }
    if shut_write {
        let _ = conn.stream().shutdown(std::net::Shutdown::Write);
    }
    let mut responses = Vec::new();
    let mut closed = false;
    for _ in 0..4 {
        match conn.read_response(false) {
            Ok(response) => {
                responses.push(response);
                conn.stream()
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
            }
            Err(failure) => {
                match failure.kind() {
                    io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe => closed = true,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {}
                    _ => error = Some(failure.to_string()),
                }
                break;
            }
        }
    }
    Outcome {
        responses,
        closed,
        error,
    }
}

/// The hostile requests, each with what it must get.
pub(crate) fn hostile_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let req = |line: &str| format!("{line}\r\nHost: x\r\n\r\n").into_bytes();
    let with_headers =
        |headers: &str| format!("GET /types HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    let smuggled = "GET /contacts/1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let many_headers: String = (0..150).map(|index| format!("X-H{index}: v\r\n")).collect();
    vec![
        // Request lines.
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), Status(&[400])),
        ("request line of spaces", b"   \r\n\r\n".to_vec(), Status(&[400])),
        ("two spaces in the request line", req("GET  /types HTTP/1.1"), Status(&[400])),
        ("a fourth field in the request line", req("GET /types HTTP/1.1 x"), Status(&[400])),
        ("HTTP/0.9 request", b"GET /types\r\n\r\n".to_vec(), Status(&[400])),
        ("HTTP/1.2", req("GET /types HTTP/1.2"), Status(&[400])),
        ("HTTP/2.0 request line", req("GET /types HTTP/2.0"), StatusOrClosed(&[400, 505])),
        (
            "HTTP/2 connection preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec(),
            Closed,
        ),
        // Methods.
        ("unknown method", req("BREW /types HTTP/1.1"), Status(&[405])),
        ("lower-case method", req("get /types HTTP/1.1"), Status(&[405])),
        ("WebDAV method", req("PROPFIND /contacts/1 HTTP/1.1"), Status(&[405])),
        ("unknown method, unknown path", req("BREW /nope HTTP/1.1"), Status(&[404])),
        ("method with a separator", req("G(T /types HTTP/1.1"), Status(&[400])),
        ("1,000-byte method", req(&format!("{} /types HTTP/1.1", "A".repeat(1000))), Status(&[400, 405])),
        ("CONNECT", req("CONNECT example.com:443 HTTP/1.1"), StatusOrClosed(&[400, 404, 405])),
        ("OPTIONS *", req("OPTIONS * HTTP/1.1"), Status(&[404])),
        // Headers.
        ("header without a colon", with_headers("X-Broken header\r\n"), Status(&[400])),
        ("space in a header name", with_headers("Bad Name: x\r\n"), Status(&[400])),
        ("obsolete line folding", with_headers("X-A: b\r\n c\r\n"), Status(&[400])),
        ("NUL in a header value", with_headers("X-A: a\0b\r\n"), Status(&[400])),
        ("bare CR in a header value", with_headers("X-A: a\rb\r\n"), Status(&[400])),
        // Paths.
        ("NUL in the path", req("GET /ty\0pes HTTP/1.1"), Status(&[400])),
        ("CR in the path", req("GET /ty\rpes HTTP/1.1"), Status(&[400])),
        ("LF in the path", req("GET /ty\npes HTTP/1.1"), Status(&[400])),
        ("space in the path", req("GET /ty pes HTTP/1.1"), Status(&[400])),
        ("tab in the path", req("GET /ty\tpes HTTP/1.1"), Status(&[400])),
        ("DEL in the path", req("GET /ty\x7fpes HTTP/1.1"), Status(&[400])),
        ("bad percent-encoding in a path parameter", req("GET /contacts/%zz HTTP/1.1"), Status(&[422])),
        ("bad percent-encoding in a route name", req("GET /%zz HTTP/1.1"), Status(&[404])),
        ("truncated percent-encoding", req("GET /contacts/fetch?starts=% HTTP/1.1"), Status(&[422])),
        ("non-hex percent-encoding", req("GET /contacts/fetch?limit=%G1 HTTP/1.1"), Status(&[422])),
        ("overlong UTF-8 slash", req("GET /contacts/%C0%AF HTTP/1.1"), Status(&[422])),
        ("UTF-16 surrogate in UTF-8", req("GET /contacts/fetch?starts=%ED%A0%80 HTTP/1.1"), Status(&[422])),
        ("percent-encoded NUL in a path parameter", req("GET /fibonacci/%00 HTTP/1.1"), Status(&[422])),
        ("dot segments", req("GET /contacts/../types HTTP/1.1"), Status(&[404, 422])),
        ("absolute-form target", req("GET http://example.com/version HTTP/1.1"), Status(&[200])),
        // Sizes.
        ("70,000-byte URI", req(&format!("GET /{} HTTP/1.1", "a".repeat(70_000))), Status(&[414])),
        ("1,000,000-byte header", with_headers(&format!("X-Big: {}\r\n", "b".repeat(1_000_000))), StatusOrClosed(&[431])),
        ("150 headers", with_headers(&many_headers), Status(&[431])),
        // Bodies and smuggling.
        (
            "Content-Length with Transfer-Encoding",
            format!(
                "GET /types HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )
            .into_bytes(),
            OneAnswerThenClosed,
        ),
        (
            "Transfer-Encoding with Content-Length",
            format!(
                "GET /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n{smuggled}"
            )
            .into_bytes(),
            OneAnswerThenClosed,
        ),
        (
            "two different Content-Lengths",
            format!("GET /types HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n{smuggled}").into_bytes(),
            Status(&[400]),
        ),
        ("Transfer-Encoding in HTTP/1.0", b"GET /types HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), Status(&[400])),
        ("Transfer-Encoding: identity", with_headers("Transfer-Encoding: identity\r\n"), Status(&[400])),
        ("Transfer-Encoding: chunked, identity", with_headers("Transfer-Encoding: chunked, identity\r\n"), Status(&[400])),
        ("Content-Length: -1", with_headers("Content-Length: -1\r\n"), Status(&[400])),
        ("Content-Length: +4", with_headers("Content-Length: +4\r\n"), Status(&[400])),
        ("Content-Length too large", with_headers("Content-Length: 99999999999999999999999\r\n"), Status(&[400])),
        (
            "chunked garbage",
            b"POST /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /contacts/1 HTTP/1.1\r\n\r\n".to_vec(),
            OneAnswerThenClosed,
        ),
        (
            "chunk size overflow",
            b"POST /types HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffffff\r\n".to_vec(),
            OneAnswerThenClosed,
        ),
        (
            "a complete request, then half of a pipelined one",
            b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGET /ver".to_vec(),
            Status(&[200]),
        ),
        (
            "a complete request, then garbage",
            b"GET /version HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n".to_vec(),
            Answers(&[200, 400]),
        ),
        (
            "a body on GET that never comes",
            with_headers("Content-Length: 1000000\r\n"),
            OneAnswerThenClosed,
        ),
    ]
}

/// Malformed and hostile requests over raw sockets: each gets a 4xx or a
/// closed connection, never a 5xx, never a hang, and a normal request on a
/// new connection succeeds right after each.
#[test]
fn hostile_requests_get_a_4xx_or_a_closed_connection_never_a_5xx_or_a_hang() {
    let _serial = serial();
    let test = "hostile requests";
    let fixture = KIT.fixture();
    let mut server = KIT.start_server(&url_with("hostile"), &[("HEADER_READ_TIMEOUT_S", "2")]);
    let types = fixture.snapshot.types_json();
    let mut tried = 0;
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (name, bytes, expect) in hostile_cases() {
        let started = Instant::now();
        let outcome = probe(
            server.addr,
            &[&bytes],
            Duration::ZERO,
            false,
            Duration::from_secs(5),
        );
        let took = started.elapsed();
        let got = outcome
            .responses
            .iter()
            .map(|response| response.status.to_string())
            .collect::<Vec<_>>()
            .join("+");
        let summary = format!(
            "{name}: responses [{got}], closed {}, error {:?}, {took:?}",
            outcome.closed, outcome.error
        );
        let mut problems = Vec::new();
        if let Some(error) = &outcome.error {
            problems.push(format!("error {error}"));
        }
        for response in &outcome.responses {
            if response.status >= 500 {
                problems.push(format!("a server error: {response}"));
            }
            assert_no_leak(name, response, &[SECRET]);
        }
        if outcome.responses.is_empty() && !outcome.closed {
            problems.push("neither an answer nor a close (a hang)".into());
        }
        let first = outcome.responses.first().map(|response| response.status);
        let as_expected = match expect {
            Expect::Status(allowed) => first.is_some_and(|status| allowed.contains(&status)),
            Expect::Closed => first.is_none() && outcome.closed,
            Expect::StatusOrClosed(allowed) => match first {
                Some(status) => allowed.contains(&status),
                None => outcome.closed,
            },
            // The smuggled request is never answered, and the connection closes.
            Expect::OneAnswerThenClosed => outcome.responses.len() <= 1 && outcome.closed,
            Expect::Answers(statuses) => outcome
                .responses
                .iter()
                .map(|response| response.status)
                .eq(statuses.iter().copied()),
        };
        if !as_expected {
            problems.push(format!("expected {expect:?}"));
        }
        if !problems.is_empty() {
            wrong.push(format!("{summary}: {}", problems.join("; ")));
        }
        eprintln!(
            "  {name}: {} in {:.0} ms",
            if got.is_empty() {
                "closed".to_string()
            } else {
                got.clone()
            },
            ms(took)
        );
        *tally
            .entry(if got.is_empty() { "closed".into() } else { got })
            .or_default() += 1;
        tried += 1;
        // A normal request on a new connection succeeds right after.
        let response = http::get(server.addr, "/types");
        testkit::assert_body(&format!("/types after {name}"), &response, &types);
    }

    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );

    // A valid request dribbled one byte per write is served.
    let request = b"GET /contacts/fetch?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n";
    let bytes: Vec<&[u8]> = request.chunks(1).collect();
    let outcome = probe(
        server.addr,
        &bytes,
        Duration::from_millis(2),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(
        outcome.responses.first().map(|response| response.status),
        Some(200),
        "dribbled request: {:?}",
        outcome.error
    );
    tried += 1;

    // A request cut off, then the write side closed: no answer needed, no hang.
    let outcome = probe(
        server.addr,
        &[b"GET /types HTT"],
        Duration::ZERO,
        true,
        Duration::from_secs(5),
    );
    assert!(
        outcome.closed
            || outcome
                .responses
                .first()
                .is_some_and(|response| response.status == 400)
    );
    tried += 1;

    assert_alive(&mut server);
    figure(
        test,
        format!(
            "{tried} malformed or hostile requests, none answered 5xx, none hung; outcomes {tally:?}"
        ),
    );
}

/// Sends `head` (ignoring a reset: the server may refuse before it has it
/// all) and returns the status of the answer, and whether the server then
/// closed the connection.
fn refused_head(addr: SocketAddr, head: &[u8]) -> (Option<u16>, bool) {
    let mut conn = Conn::connect(addr);
    let _ = conn.try_send(head);
    let status = conn
        .read_response(false)
        .ok()
        .map(|response| response.status);
    let mut stream = conn.stream().try_clone().unwrap();
    (status, closed_within(&mut stream, Duration::from_secs(3)))
}

/// Request heads are bounded (16 KB by default): one long header, many
/// headers or a long request line are refused (431, or 414 for the target)
/// and the connection closed, so an open connection cannot pin more.
#[test]
fn request_heads_over_the_bound_are_refused_and_the_connection_closed() {
    let _serial = serial();
    let test = "bounded request heads";
    let address = KIT.addr();
    let long_header = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..90)
            .map(|index| format!("X-Header-{index}: {}\r\n", "b".repeat(200)))
            .collect::<String>()
    );
    let long_target = format!(
        "GET /version?padding={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "c".repeat(20 * 1024)
    );
    for (case, head, expected) in [
        ("a 100 KB header value", long_header, 431),
        ("90 headers of 200 bytes", many_headers, 431),
        ("a 20 KB request target", long_target, 414),
    ] {
        let (status, closed) = refused_head(address, head.as_bytes());
        assert_eq!(status, Some(expected), "{test}: {case}");
        assert!(closed, "{test}: {case}: the connection stayed open");
    }
    // A head just under the bound is served, on a connection kept alive.
    let mut conn = Conn::connect(address);
    let near = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Near: {}\r\n\r\n",
        "d".repeat(15 * 1024)
    );
    conn.send(near.as_bytes());
    let response = conn.read_response(false).unwrap();
    assert_eq!(response.status, 200, "{test}: a 15 KB head: {response}");
    assert_eq!(conn.get("/version").status, 200);
    // The bound is a setting.
    let server = KIT.start_server(&KIT.fixture().database_url, &[("MAX_HEAD_BYTES", "65536")]);
    let (status, _) = refused_head(
        server.addr,
        format!(
            "GET /version HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
            "e".repeat(40 * 1024)
        )
        .as_bytes(),
    );
    assert_eq!(
        status,
        Some(200),
        "{test}: a 40 KB head with MAX_HEAD_BYTES=65536"
    );
    KIT.assert_bad_setting_refused("MAX_HEAD_BYTES", "4096");
    figure(
        test,
        "a 100 KB header value and 90 × 200-byte headers → 431, a 20 KB target → 414, \
         each connection closed; a 15 KB head → 200 and kept alive; MAX_HEAD_BYTES=65536 \
         serves a 40 KB head",
    );
}
