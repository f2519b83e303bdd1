//! Third-party HTTP/1.1 conformance: the cases of the public suites
//! Http11Probe and h1spec, ported as data (`tests/conformance/*.json`), sent
//! byte for byte to the real server on fresh connections.
//!
//! Each case names its upstream id, the requirement it tests (MUST, SHOULD,
//! MAY, or none for plain robustness) and the RFC section, and says what
//! this server must answer: a set of statuses, and whether a close (or
//! silence: the server waiting for more bytes) also conforms. The
//! expectations are ours, read from RFC 9110/9112 and `shared/API.md`, not
//! upstream's: their targets are aimed at `/version` (no database), and
//! their echo endpoints do not exist here, so a POST is answered 405 and a
//! follow-up GET on the same connection shows the body was framed right.
//!
//! On every case the runner also fails on an answer nobody asked for (a
//! smuggled request served). A case whose expectation does not hold is a
//! failure unless it is marked: `known_failure` (a MUST this server breaks,
//! for the lead to fix) or `departure` (a SHOULD or MAY it does not follow,
//! written down in docs/CONFORMANCE.md). A marked case that starts to pass
//! fails too, so the mark is removed when the server is fixed.

use serde::Deserialize;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use testkit::{Kit, http};

/// The kit, bound to the binary under test.
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

/// How long an answer may take before the case counts it as silence.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long a case that allows silence waits for an answer.
const SILENCE_WAIT: Duration = Duration::from_millis(1500);
/// How long the connection must stay quiet after the expected answers, to
/// show no further (smuggled) answer follows.
const QUIET_WAIT: Duration = Duration::from_millis(400);
/// Cases run at once (each on its own connection).
const WORKERS: usize = 6;
/// The suite files, in the order docs/CONFORMANCE.md lists them.
const SUITE_FILES: [&str; 2] = ["http11probe.json", "h1spec.json"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    suite: String,
    upstream: String,
    commit: String,
    cases: Vec<Case>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "SHOULD")]
    Should,
    #[serde(rename = "MAY")]
    May,
    /// Robustness with no RFC requirement behind it.
    #[serde(rename = "none")]
    Robustness,
}

impl Level {
    /// The word the data and docs/CONFORMANCE.md use.
    fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
            Level::Robustness => "none",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    level: Level,
    section: String,
    applies: bool,
    /// Why a case does not apply to an origin server like this one.
    #[serde(default)]
    reason: Option<String>,
    request: Request,
    #[serde(default)]
    expect: Option<Expect>,
    /// A MUST (or robustness case) this server is known to break.
    #[serde(default)]
    known_failure: Option<String>,
    /// A SHOULD or MAY this server does not follow, on purpose.
    #[serde(default)]
    departure: Option<String>,
    #[serde(default)]
    /// For people and docs/CONFORMANCE.md; never empty when given.
    note: Option<String>,
}

/// Request bytes: a string whose every character is one byte (U+0000 to
/// U+00FF, so JSON's `\u0000` escapes write any byte), or a list of such
/// strings and repeated runs, for requests of 100 KB.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Request {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Part {
    Text(String),
    Repeat { repeat: String, times: usize },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Statuses the first final answer may have.
    #[serde(default)]
    status: Vec<u16>,
    /// A close without an answer conforms too (a rejection without a status).
    #[serde(default)]
    or_close: bool,
    /// No answer at all conforms too (the server waits for more bytes).
    #[serde(default)]
    or_silence: bool,
    /// The server must neither answer nor close: it waits for the rest.
    #[serde(default)]
    silence: bool,
    /// The connection's state after the first answer: "closed" (RFC 9112
    /// §6.1, §6.3, §9.6 demand a close) or unconstrained.
    #[serde(default)]
    then: Option<Then>,
    /// Header fields the first answer must carry.
    #[serde(default)]
    headers: Vec<String>,
    /// Header fields it must not carry.
    #[serde(default)]
    no_headers: Vec<String>,
    /// The first answer has no body.
    #[serde(default)]
    empty_body: bool,
    /// Its Date is an IMF-fixdate (RFC 9110 §5.6.7).
    #[serde(default)]
    imf_fixdate: bool,
    /// Interim (1xx) statuses allowed before the final answer.
    #[serde(default)]
    interim: Vec<u16>,
    /// A second exchange on the same connection, when it is still open.
    #[serde(default)]
    next: Option<Next>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
enum Then {
    #[serde(rename = "closed")]
    Closed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Next {
    /// Bytes sent after the first answer; without them, the answer read is
    /// the one to bytes already sent (a pipelined second request).
    #[serde(default)]
    request: Option<Request>,
    status: Vec<u16>,
    #[serde(default)]
    or_close: bool,
}

impl Request {
    fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let parts = match self {
            Request::Text(text) => vec![Part::Text(text.clone())],
            Request::Parts(parts) => parts.clone(),
        };
        let mut bytes = Vec::new();
        for part in parts {
            let (text, times) = match part {
                Part::Text(text) => (text, 1),
                Part::Repeat { repeat, times } => (repeat, times),
            };
            let mut one = Vec::with_capacity(text.len());
            for character in text.chars() {
                let byte = u8::try_from(u32::from(character))
                    .map_err(|_| format!("character {character:?} is not one byte"))?;
                one.push(byte);
            }
            for _ in 0..times {
                bytes.extend_from_slice(&one);
            }
        }
        Ok(bytes)
    }
}

/// One answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn show(&self) -> String {
        let fields: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        format!(
            "{} [{}] body {:?}",
            self.status,
            fields.join(", "),
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// What the connection did next.
#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    /// The server closed (or reset) the connection before any byte of an answer.
    Closed,
    /// Nothing arrived within the wait, and the connection is still open.
    Silent,
    /// Bytes that are not a whole answer.
    Garbage(String),
}

impl Outcome {
    fn show(&self) -> String {
        match self {
            Outcome::Answer(answer) => answer.show(),
            Outcome::Closed => "the connection closed without an answer".to_string(),
            Outcome::Silent => "no answer (the connection stayed open)".to_string(),
            Outcome::Garbage(what) => format!("not an HTTP answer: {what}"),
        }
    }
}

/// A client connection that keeps what it read past one answer for the next.
struct Wire {
    stream: TcpStream,
    buffer: Vec<u8>,
    closed: bool,
}

impl Wire {
    fn connect(addr: SocketAddr) -> io::Result<Wire> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            buffer: Vec::new(),
            closed: false,
        })
    }

    /// Sends bytes. A server may refuse a request and close before reading
    /// all of it; the answer (or the close) is what the case judges, so a
    /// failed write is not an error here.
    fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    /// The next answer, waiting at most `wait` for it. `head` says it
    /// answers a HEAD (no body follows).
    fn answer(&mut self, head: bool, wait: Duration) -> Outcome {
        let deadline = Instant::now() + wait;
        loop {
            match parse_answer(&self.buffer, head, self.closed) {
                Parsed::Whole(answer, used) => {
                    self.buffer.drain(..used);
                    return Outcome::Answer(answer);
                }
                Parsed::Bad(why) => return Outcome::Garbage(why),
                Parsed::Partial => {}
            }
            if self.closed {
                return if self.buffer.is_empty() {
                    Outcome::Closed
                } else {
                    Outcome::Garbage(format!(
                        "the connection closed inside an answer: {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    ))
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return if self.buffer.is_empty() {
                    Outcome::Silent
                } else {
                    Outcome::Garbage(format!(
                        "an unfinished answer: {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    ))
                };
            }
            if let Err(error) = self.fill(left) {
                return Outcome::Garbage(format!("read failed: {error}"));
            }
        }
    }

    /// Reads what arrives within `wait`; a close or reset marks the wire closed.
    fn fill(&mut self, wait: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.closed = true,
            Ok(count) => self.buffer.extend_from_slice(&chunk[..count]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                self.closed = true
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }
}

enum Parsed {
    Whole(Answer, usize),
    Partial,
    Bad(String),
}

/// Parses one answer from the front of `bytes` (RFC 9112 §4, §6): the
/// status line, the fields, and a body framed by chunked coding, by
/// Content-Length, or by the close.
fn parse_answer(bytes: &[u8], head: bool, closed: bool) -> Parsed {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return Parsed::Partial;
    };
    let Ok(text) = std::str::from_utf8(&bytes[..end]) else {
        return Parsed::Bad("the answer's head is not UTF-8".to_string());
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    let status = words.next().and_then(|code| code.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Parsed::Bad(format!("bad status line {status_line:?}"));
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Bad(format!("bad field line {line:?}"));
        };
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let start = end + 4;
    if head || status < 200 || status == 204 || status == 304 {
        return Parsed::Whole(answer, start);
    }
    let chunked = answer
        .header("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
    if chunked {
        return match dechunk(&bytes[start..]) {
            Some(Ok((body, used))) => {
                answer.body = body;
                Parsed::Whole(answer, start + used)
            }
            Some(Err(why)) => Parsed::Bad(why),
            None => Parsed::Partial,
        };
    }
    if let Some(length) = answer.header("content-length") {
        let Ok(length) = length.parse::<usize>() else {
            return Parsed::Bad(format!("bad Content-Length {length:?}"));
        };
        if bytes.len() < start + length {
            return Parsed::Partial;
        }
        answer.body = bytes[start..start + length].to_vec();
        return Parsed::Whole(answer, start + length);
    }
    // Neither: the body runs to the close.
    if !closed {
        return Parsed::Partial;
    }
    answer.body = bytes[start..].to_vec();
    Parsed::Whole(answer, bytes.len())
}

/// Decodes a chunked body: `None` while incomplete, else the body and the
/// bytes it took, trailers included.
fn dechunk(bytes: &[u8]) -> Option<Result<(Vec<u8>, usize), String>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&bytes[at..], b"\r\n")?;
        let line = String::from_utf8_lossy(&bytes[at..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Some(Err(format!("bad chunk size {line:?}")));
        };
        at = line_end + 2;
        if size == 0 {
            // Trailer fields, up to an empty line.
            loop {
                let field_end = at + find(&bytes[at..], b"\r\n")?;
                let empty = field_end == at;
                at = field_end + 2;
                if empty {
                    return Some(Ok((body, at)));
                }
            }
        }
        if bytes.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[at..at + size]);
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Some(Err("a chunk not followed by CRLF".to_string()));
        }
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), checked field by field.
fn is_imf_fixdate(date: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let words: Vec<&str> = date.split(' ').collect();
    let [day_name, day, month, year, time, zone] = words[..] else {
        return false;
    };
    let digits = |text: &str, count: usize| {
        text.len() == count && text.bytes().all(|byte| byte.is_ascii_digit())
    };
    let clock: Vec<&str> = time.split(':').collect();
    day_name
        .strip_suffix(',')
        .is_some_and(|name| DAYS.contains(&name))
        && digits(day, 2)
        && MONTHS.contains(&month)
        && digits(year, 4)
        && clock.len() == 3
        && clock.iter().all(|part| digits(part, 2))
        && zone == "GMT"
}

fn is_head(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HEAD ")
}

/// Runs one case. `Ok` tells what the server did, briefly (`400, closed`;
/// `405, then 200`); `Err` says how that differs from the expectation.
fn run_case(addr: SocketAddr, case: &Case, expect: &Expect) -> Result<String, String> {
    let bytes = case.request.to_bytes()?;
    let mut wire = Wire::connect(addr).map_err(|error| format!("connect: {error}"))?;
    wire.send(&bytes);

    if expect.silence {
        return match wire.answer(false, SILENCE_WAIT) {
            Outcome::Silent => Ok("waited".to_string()),
            other => Err(format!(
                "expected the server to wait for the rest; got {}",
                other.show()
            )),
        };
    }

    let wait = if expect.or_silence {
        SILENCE_WAIT
    } else {
        ANSWER_WAIT
    };
    let mut outcome = wire.answer(is_head(&bytes), wait);
    let mut interim = String::new();
    while let Outcome::Answer(answer) = &outcome {
        if !(100..200).contains(&answer.status) || !expect.interim.contains(&answer.status) {
            break;
        }
        interim.push_str(&format!("{}, ", answer.status));
        outcome = wire.answer(is_head(&bytes), wait);
    }
    let answer = match outcome {
        Outcome::Answer(answer) => answer,
        Outcome::Closed if expect.or_close => return Ok("closed without an answer".to_string()),
        Outcome::Silent if expect.or_silence => return Ok("waited".to_string()),
        other => {
            return Err(format!(
                "expected {:?}; got {}",
                expect.status,
                other.show()
            ));
        }
    };
    check_answer(expect, &answer)?;
    let first = format!("{interim}{}", answer.status);

    // The state after the answer: a pipelined answer is read at once;
    // otherwise a quiet spell shows whether the server closed, kept the
    // connection, or served something nobody asked for.
    let pipelined = expect
        .next
        .as_ref()
        .is_some_and(|next| next.request.is_none());
    if !pipelined {
        let wait = if expect.then == Some(Then::Closed) {
            ANSWER_WAIT
        } else {
            QUIET_WAIT
        };
        match wire.answer(false, wait) {
            Outcome::Closed => return Ok(format!("{first}, closed")),
            Outcome::Silent if expect.then == Some(Then::Closed) => {
                return Err(format!(
                    "answered {first} but left the connection open; it must close"
                ));
            }
            Outcome::Silent => {}
            other => {
                return Err(format!(
                    "after {first}, an answer nobody asked for: {}",
                    other.show()
                ));
            }
        }
    }
    let Some(next) = &expect.next else {
        return Ok(format!("{first}, kept open"));
    };
    let mut head = false;
    if let Some(request) = &next.request {
        let follow_up = request.to_bytes()?;
        head = is_head(&follow_up);
        wire.send(&follow_up);
    }
    let second = match wire.answer(head, ANSWER_WAIT) {
        Outcome::Answer(second) if next.status.contains(&second.status) => second,
        Outcome::Closed if next.or_close => return Ok(format!("{first}, then closed")),
        other => {
            return Err(format!(
                "first answer {first}, then expected {:?}; got {}",
                next.status,
                other.show()
            ));
        }
    };
    match wire.answer(false, QUIET_WAIT) {
        Outcome::Closed => Ok(format!("{first}, then {}, closed", second.status)),
        Outcome::Silent => Ok(format!("{first}, then {}, kept open", second.status)),
        other => Err(format!(
            "after {first} and {}, an answer nobody asked for: {}",
            second.status,
            other.show()
        )),
    }
}

fn check_answer(expect: &Expect, answer: &Answer) -> Result<(), String> {
    if !expect.status.contains(&answer.status) {
        return Err(format!(
            "expected {:?}; got {}",
            expect.status,
            answer.show()
        ));
    }
    for name in &expect.headers {
        if answer.header(name).is_none() {
            return Err(format!("no {name} field in {}", answer.show()));
        }
    }
    for name in &expect.no_headers {
        if answer.header(name).is_some() {
            return Err(format!("a {name} field in {}", answer.show()));
        }
    }
    if expect.empty_body && !answer.body.is_empty() {
        return Err(format!("a body in {}", answer.show()));
    }
    if expect.imf_fixdate && !answer.header("date").is_some_and(is_imf_fixdate) {
        return Err(format!("Date is not an IMF-fixdate in {}", answer.show()));
    }
    Ok(())
}

/// Checks the data of a case before it runs.
fn validate(case: &Case) -> Result<(), String> {
    if case.section.is_empty() {
        return Err("no section".to_string());
    }
    if case
        .note
        .as_deref()
        .is_some_and(|note| note.trim().is_empty())
    {
        return Err("an empty note".to_string());
    }
    if !case.applies {
        return match (&case.reason, &case.expect) {
            (Some(_), None) => Ok(()),
            _ => Err("a case that does not apply needs a reason and no expect".to_string()),
        };
    }
    let Some(expect) = &case.expect else {
        return Err("no expect".to_string());
    };
    if !expect.silence && expect.status.is_empty() {
        return Err("expect names no status".to_string());
    }
    if case.known_failure.is_some() && !matches!(case.level, Level::Must | Level::Robustness) {
        return Err(
            "known_failure marks a MUST; a SHOULD or MAY not followed is a departure".into(),
        );
    }
    if case.departure.is_some() && !matches!(case.level, Level::Should | Level::May) {
        return Err("departure marks a SHOULD or MAY; a MUST broken is a known_failure".into());
    }
    case.request.to_bytes().map(|_| ())
}

impl Case {
    /// The result docs/CONFORMANCE.md gives the case, read from its marks.
    fn result(&self) -> &'static str {
        if !self.applies {
            "n/a"
        } else if self.known_failure.is_some() {
            "known failure"
        } else if self.departure.is_some() {
            "departure"
        } else {
            "pass"
        }
    }
}

fn load_suite(file: &str) -> Suite {
    let path = format!("{}/tests/conformance/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Runs every applicable case of a suite file and fails with the whole list
/// of cases whose result is not what the data says.
fn run_suite(file: &str) {
    let path = format!("tests/conformance/{file}");
    let suite = load_suite(file);
    assert!(
        !suite.upstream.is_empty() && suite.commit.len() == 40,
        "{path}: name the upstream repository and the commit the cases come from"
    );
    let mut problems: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for case in &suite.cases {
        if !seen.insert(case.id.as_str()) {
            problems.push(format!("{}: the id appears twice", case.id));
        }
        if let Err(why) = validate(case) {
            problems.push(format!("{}: bad data: {why}", case.id));
        }
    }
    assert!(problems.is_empty(), "{path}:\n{}", problems.join("\n"));

    let server = KIT.server();
    let addr = server.addr;
    let runnable: Vec<&Case> = suite.cases.iter().filter(|case| case.applies).collect();
    let next_case = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let index = next_case.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = runnable.get(index) else {
                        break;
                    };
                    let expect = case.expect.as_ref().expect("validated");
                    let result = run_case(addr, case, expect);
                    results
                        .lock()
                        .unwrap_or_else(|error| error.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(|error| error.into_inner());
    results.sort_by_key(|(index, _)| *index);

    // CONFORMANCE_VERBOSE=1 prints what the server did on every case.
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();
    let mut failures = Vec::new();
    let mut marked = Vec::new();
    for (index, result) in &results {
        let case = runnable[*index];
        if verbose {
            match result {
                Ok(seen) => eprintln!("  {}: {seen}", case.id),
                Err(why) => eprintln!("  {}: {why}", case.id),
            }
        }
        let mark = case.known_failure.as_ref().or(case.departure.as_ref());
        match (result, mark) {
            (Ok(_), None) => {}
            (Err(why), None) => {
                failures.push(format!("{} ({:?}, {}): {why}", case.id, case.level, case.section))
            }
            (Ok(_), Some(_)) => failures.push(format!(
                "{}: marked as not conforming, but it passes now: remove the mark (and update docs/CONFORMANCE.md)",
                case.id
            )),
            (Err(why), Some(mark)) => marked.push(format!("{}: {mark} [{why}]", case.id)),
        }
    }
    eprintln!(
        "{} ({} at {}): {} cases, {} run, {} marked as known failures or departures:",
        suite.suite,
        suite.upstream,
        &suite.commit[..10],
        suite.cases.len(),
        runnable.len(),
        marked.len()
    );
    for line in &marked {
        eprintln!("  {line}");
    }

    // The server survived every case and still serves.
    let version = http::get(addr, "/version");
    assert_eq!(version.status, 200, "/version after {file}: {version}");
    assert!(
        !server.stderr().contains("panicked"),
        "the server panicked during {file}:\n{}",
        server.stderr()
    );
    assert!(
        failures.is_empty(),
        "{} of {} {} cases do not conform:\n{}",
        failures.len(),
        runnable.len(),
        suite.suite,
        failures.join("\n")
    );
}

#[test]
fn http11probe() {
    run_suite(SUITE_FILES[0]);
}

#[test]
fn h1spec() {
    run_suite(SUITE_FILES[1]);
}

/// docs/CONFORMANCE.md lists every case with the result its marks give it,
/// and its counts add up, so the page cannot drift from the data.
#[test]
fn the_doc_lists_every_case_and_the_counts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFORMANCE.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let mut missing = Vec::new();
    for file in SUITE_FILES {
        let suite = load_suite(file);
        for case in &suite.cases {
            let row = format!(
                "| {} | `{}` | {} | {} | {} | {} |",
                suite.suite,
                case.id,
                case.level.as_str(),
                case.section,
                if case.applies { "yes" } else { "no" },
                case.result()
            );
            if !doc.contains(&row) {
                missing.push(row);
            }
        }
        let applicable: Vec<&Case> = suite.cases.iter().filter(|case| case.applies).collect();
        let count = |result: &str, robustness: Option<bool>| {
            applicable
                .iter()
                .filter(|case| case.result() == result)
                .filter(|case| {
                    robustness.is_none_or(|yes| yes == (case.level == Level::Robustness))
                })
                .count()
        };
        let counts = format!(
            "| {} | {} | {} | {} | {} | {} |",
            suite.cases.len(),
            applicable.len(),
            count("pass", None),
            count("known failure", Some(false)),
            count("known failure", Some(true)),
            count("departure", None)
        );
        let line_start = format!("| {} | ", suite.suite);
        if !doc
            .lines()
            .any(|line| line.starts_with(&line_start) && line.ends_with(&counts))
        {
            missing.push(format!(
                "the counts of {}: {line_start}… {counts}",
                suite.suite
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{path} lacks these rows (the data says they should read so):\n{}",
        missing.join("\n")
    );
}

#[test]
fn imf_fixdate_is_checked_field_by_field() {
    assert!(is_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert!(!is_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"));
    assert!(!is_imf_fixdate("Sun Nov  6 08:49:37 1994"));
    assert!(!is_imf_fixdate("Sun, 06 Nov 1994 08:49:37 UTC"));
    assert!(!is_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"));
}

#[test]
fn request_bytes_are_one_byte_per_character() {
    let request = Request::Parts(vec![
        Part::Text("A\u{0}\u{ff}".to_string()),
        Part::Repeat {
            repeat: "xy".to_string(),
            times: 3,
        },
    ]);
    assert_eq!(request.to_bytes(), Ok(b"A\x00\xffxyxyxy".to_vec()));
    assert!(Request::Text("\u{100}".to_string()).to_bytes().is_err());
}

#[test]
fn answers_are_framed_by_chunks_length_or_close() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1";
    let Parsed::Whole(answer, used) = parse_answer(chunked, false, false) else {
        panic!("a whole chunked answer was not parsed");
    };
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"abc"[..]));
    assert_eq!(&chunked[used..], b"HTTP/1.1");
    let short = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab";
    assert!(matches!(parse_answer(short, false, false), Parsed::Partial));
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
    assert!(matches!(
        parse_answer(head, true, false),
        Parsed::Whole(_, 38)
    ));
    let to_close = b"HTTP/1.0 200 OK\r\n\r\nbody";
    assert!(matches!(
        parse_answer(to_close, false, false),
        Parsed::Partial
    ));
    let Parsed::Whole(answer, _) = parse_answer(to_close, false, true) else {
        panic!("a body ended by the close was not parsed");
    };
    assert_eq!(answer.body, b"body");
}
