//! The rewriting of both streams, driven with whole, split and failing
//! streams of hand-written protocol messages, without a socket.

use super::*;

/// A frontend or backend message with this tag and body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn bind() -> Vec<u8> {
    message(b'B', b"\0s1\0\0\0\0\0\0\0")
}

fn execute() -> Vec<u8> {
    message(b'E', b"\0\0\0\0\0")
}

fn sync() -> Vec<u8> {
    message(b'S', b"")
}

fn statement() -> Vec<u8> {
    [bind(), execute(), sync()].concat()
}

/// The tags of a stream of whole messages.
fn tags(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    while !bytes.is_empty() {
        let length = 1 + be_length(&bytes[1..5]);
        out.push(bytes[0] as char);
        bytes = &bytes[length..];
    }
    out
}

/// A layer past the session's start (whose ReadyForQuery was read).
fn started() -> Streams {
    let mut layer = Streams::new(1024);
    layer.incoming.extend_from_slice(&[0, 0, 0, 8, 0, 3, 0, 0]);
    layer.take_frontend();
    layer.outgoing.clear();
    layer.raw.extend_from_slice(&message(b'Z', b"I"));
    layer.take_backend().unwrap();
    layer.answers.clear();
    layer
}

/// Writes `bytes` and ends the batch as a flush does.
fn write_batch(layer: &mut Streams, bytes: &[u8]) -> String {
    layer.incoming.extend_from_slice(bytes);
    layer.take_frontend();
    layer.end_batch();
    let sent = tags(&layer.outgoing);
    layer.outgoing.clear();
    sent
}

/// Feeds PostgreSQL's answer and returns what tokio-postgres reads.
fn answer(layer: &mut Streams, bytes: &[u8]) -> io::Result<String> {
    layer.raw.extend_from_slice(bytes);
    layer.take_backend()?;
    let read = tags(&layer.answers);
    layer.answers.clear();
    Ok(read)
}

fn rows(count: usize) -> Vec<u8> {
    let mut out = message(b'2', b"");
    for _ in 0..count {
        out.extend(message(b'D', b"\0\x01\0\0\0\x01x"));
    }
    out.extend(message(b'C', b"SELECT 1\0"));
    out
}

#[test]
fn a_batch_of_executions_goes_out_under_one_sync_and_each_gets_its_ready() {
    let mut layer = started();
    let sent = write_batch(
        &mut layer,
        &[statement(), statement(), statement()].concat(),
    );
    assert_eq!(sent, "BEBEBES");
    let backend = [rows(2), rows(1), rows(3), message(b'Z', b"T")].concat();
    assert_eq!(answer(&mut layer, &backend).unwrap(), "2DDCZ2DCZ2DDDCZ");
    assert!(layer.endings.is_empty());
}

#[test]
fn prepares_queries_and_a_lone_statement_keep_their_syncs() {
    let mut layer = started();
    let parse = [
        message(b'P', b"s1\0SELECT 1\0\0\0"),
        message(b'D', b"Ss1\0"),
        sync(),
    ]
    .concat();
    let query = message(b'Q', b"SET x = 1\0");
    let sent = write_batch(
        &mut layer,
        &[parse, statement(), query, statement()].concat(),
    );
    assert_eq!(sent, "PDSBESQBES");
    assert_eq!(layer.endings.len(), 4);
    assert!(layer.endings.iter().all(|ending| *ending == Ending::Real));
}

#[test]
fn a_batch_split_across_writes_is_still_one_batch() {
    let mut layer = started();
    let bytes = [statement(), statement()].concat();
    layer.incoming.extend_from_slice(&bytes[..7]);
    layer.take_frontend();
    let sent = write_batch(&mut layer, &bytes[7..]);
    assert_eq!(sent, "BEBES");
}

#[test]
fn a_failed_statement_gets_its_error_and_those_skipped_after_it_theirs() {
    let mut layer = started();
    write_batch(
        &mut layer,
        &[statement(), statement(), statement(), statement()].concat(),
    );
    let error = message(b'E', b"SERROR\0C57014\0Mcanceled\0\0");
    // The first answers; the second fails; PostgreSQL skips the last two
    // and answers their Sync.
    let backend = [rows(1), message(b'2', b""), error, message(b'Z', b"E")].concat();
    assert_eq!(answer(&mut layer, &backend).unwrap(), "2DCZ2EZEZEZ");
    assert!(layer.endings.is_empty());
    // The connection goes on.
    write_batch(&mut layer, &statement());
    assert_eq!(
        answer(&mut layer, &[rows(1), message(b'Z', b"I")].concat()).unwrap(),
        "2DCZ"
    );
}

#[test]
fn an_error_before_the_last_sync_went_out_sends_it() {
    let mut layer = started();
    layer
        .incoming
        .extend_from_slice(&[statement(), statement()].concat());
    layer.take_frontend();
    assert!(layer.held);
    // The first fails (ErrorResponse is flushed at once), the second is
    // skipped, before the flush sent the held Sync.
    let error = message(b'E', b"SERROR\0C57014\0Mcanceled\0\0");
    assert_eq!(answer(&mut layer, &error).unwrap(), "EZE");
    // A Bind now must not drop the Sync of a statement already answered.
    layer.incoming.extend_from_slice(&statement());
    layer.take_frontend();
    assert_eq!(tags(&layer.outgoing), "BEBESBE");
    assert_eq!(answer(&mut layer, &message(b'Z', b"E")).unwrap(), "Z");
}

#[test]
fn a_ready_for_query_no_request_waits_for_is_an_error() {
    let mut layer = started();
    write_batch(&mut layer, &[statement(), statement()].concat());
    assert!(answer(&mut layer, &message(b'Z', b"I")).is_err());
}

#[test]
fn messages_split_across_reads_are_read_whole() {
    let mut layer = started();
    write_batch(&mut layer, &[statement(), statement()].concat());
    let backend = [rows(1), rows(1), message(b'Z', b"I")].concat();
    let mut read = String::new();
    for chunk in backend.chunks(3) {
        read.push_str(&answer(&mut layer, chunk).unwrap());
    }
    assert_eq!(read, "2DCZ2DCZ");
}
