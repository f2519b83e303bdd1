//! Graceful shutdown: requests in flight finish on SIGTERM and SIGINT, the
//! drain timeout bounds the wait, and a shutdown delay fails `/readyz` first.

use std::io::Read;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use testkit::http::Conn;

use crate::KIT;
use crate::helpers::{
    assert_503, backends, figure, lock_contacts, ms, pg_client, serial, timed_get, try_get,
    url_with, wait_for_200,
};

/// Waits until a backend of `application_name` waits on a lock.
pub(crate) fn wait_for_lock_wait(client: &mut postgres::Client, application_name: &str) {
    wait_for_lock_waiters(client, application_name, |waiting| waiting > 0);
}

/// Polls (10 s at most) until the number of `application_name`'s queries
/// waiting on a lock satisfies `done`.
pub(crate) fn wait_for_lock_waiters(
    client: &mut postgres::Client,
    application_name: &str,
    done: impl Fn(i64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&application_name],
            )
            .unwrap()
            .get(0);
        if done(waiting) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{application_name}: {waiting} queries wait on the lock"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM (and SIGINT): no new connections, every request in flight
/// finishes with its 200 (a slow /fibonacci/40, a query held by a lock),
/// idle connections are closed, the pool's connections end, exit code 0.
#[test]
fn sigterm_and_sigint_let_requests_in_flight_finish_then_exit_0() {
    let _serial = serial();
    let test = "graceful shutdown";
    let fixture = KIT.fixture();
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let app = format!("shutdown_{name}");
        let mut server = KIT.start_server(
            &url_with(&app),
            &[("STATEMENT_TIMEOUT_MS", "20000"), ("POOL_SIZE", "2")],
        );
        let addr = server.addr;
        wait_for_200(addr, "/contacts/1", Duration::from_secs(10));
        let mut admin = pg_client();
        let mut locker = pg_client();
        let tx = lock_contacts(&mut locker);

        let fib = thread::spawn(move || {
            let answer = timed_get(addr, "/fibonacci/40");
            (Instant::now(), answer)
        });
        let contact = thread::spawn(move || timed_get(addr, "/contacts/1"));
        let mut idle = Conn::connect(addr);
        assert_eq!(idle.get("/version").status, 200);
        wait_for_lock_wait(&mut admin, &app);
        thread::sleep(Duration::from_millis(100));

        server.signal(signal);
        let signalled = Instant::now();
        // It stops accepting.
        thread::sleep(Duration::from_millis(200));
        let refused = TcpStream::connect(addr);
        assert!(
            refused.is_err(),
            "{name}: a connection was accepted after the signal"
        );
        // An idle keep-alive connection is closed.
        idle.stream()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(idle.stream().read(&mut byte), Ok(0)),
            "{name}: the idle connection was not closed"
        );
        // The held query finishes once the lock is released.
        thread::sleep(Duration::from_millis(500));
        tx.commit().unwrap();
        let (fib_done, (fib_took, fib_response)) = fib.join().unwrap();
        let fib_response =
            fib_response.unwrap_or_else(|error| panic!("{name}: /fibonacci/40 in flight: {error}"));
        assert!(
            fib_done > signalled,
            "{name}: /fibonacci/40 ended before the signal"
        );
        assert_eq!(
            fib_response.body_str(),
            r#"{"result":165580141}"#,
            "{name}: {fib_response}"
        );
        let (contact_took, contact_response) = contact.join().unwrap();
        let contact_response = contact_response
            .unwrap_or_else(|error| panic!("{name}: /contacts/1 in flight: {error}"));
        testkit::assert_body(
            "/contacts/1 in flight",
            &contact_response,
            &fixture.snapshot.contact_json(1).unwrap(),
        );

        let status = server
            .wait_exit(Duration::from_secs(10))
            .expect("no exit within 10 s");
        let exited = signalled.elapsed();
        assert_eq!(status.code(), Some(0), "{name}: {status}");
        // Its database connections are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while backends(&mut admin, &app) > 0 {
            assert!(
                Instant::now() < deadline,
                "{name}: the pool's connections outlive the server"
            );
            thread::sleep(Duration::from_millis(20));
        }
        figure(
            test,
            format!(
                "{name}: 2 requests in flight (/fibonacci/40, {:.0} ms; a query held by a lock \
                 released 700 ms after the signal, {:.0} ms) both answered 200; new connections \
                 refused, idle ones closed; exit 0 {:.0} ms after the signal; no database \
                 connection left",
                ms(fib_took),
                ms(contact_took),
                ms(exited)
            ),
        );
    }
}

/// A request that outlasts the drain timeout does not keep the server up.
#[test]
fn the_drain_timeout_bounds_the_shutdown() {
    let _serial = serial();
    let app = "drain_timeout";
    let mut server = KIT.start_server(
        &url_with(app),
        &[("STATEMENT_TIMEOUT_MS", "30000"), ("DRAIN_TIMEOUT_S", "1")],
    );
    let addr = server.addr;
    wait_for_200(addr, "/contacts/1", Duration::from_secs(10));
    let mut admin = pg_client();
    let mut locker = pg_client();
    let tx = lock_contacts(&mut locker);
    let held = thread::spawn(move || timed_get(addr, "/contacts/1"));
    wait_for_lock_wait(&mut admin, app);
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s");
    let exited = signalled.elapsed();
    tx.rollback().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        exited < Duration::from_millis(2500),
        "exit {exited:?} after SIGTERM with a 1 s drain timeout"
    );
    let (_, response) = held.join().unwrap();
    assert!(
        response.is_err(),
        "the held request was answered: {:?}",
        response.map(|response| response.status)
    );
    figure(
        "drain timeout",
        format!(
            "a request held past the 1 s drain timeout: exit 0 {:.0} ms after SIGTERM",
            ms(exited)
        ),
    );
}

/// `SHUTDOWN_DELAY_MS` (readiness, then stop): on SIGTERM `/readyz` answers
/// 503 at once while everything else is still served, new connections
/// included, each answer closing its connection (`Connection: close`); once
/// the delay is over the listener closes and the process exits 0.
#[test]
fn a_shutdown_delay_fails_readyz_first_and_keeps_serving_until_it_ends() {
    let _serial = serial();
    let delay = Duration::from_millis(2000);
    let mut server = KIT.start_server(
        &url_with("shutdown_delay"),
        &[("SHUTDOWN_DELAY_MS", "2000"), ("POOL_SIZE", "2")],
    );
    let addr = server.addr;
    wait_for_200(addr, "/readyz", Duration::from_secs(10));
    // A keep-alive connection opened before the signal, as a balancer's.
    let mut kept = Conn::connect(addr);
    let before = kept.get("/version");
    assert_eq!(before.status, 200, "{before}");
    assert_eq!(before.header("connection"), None, "{before}");

    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    // The signal is handled asynchronously: /readyz turns 503 at once.
    let readyz_failed = loop {
        let response =
            try_get(addr, "/readyz", Duration::from_secs(2)).expect("/readyz during the delay");
        if response.status == 503 {
            assert_503("/readyz while draining", &response);
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "/readyz still {} after the signal",
            response.status
        );
        thread::sleep(Duration::from_millis(5));
    };
    // Everything else is served, on new connections and on the kept one,
    // and each answer closes its connection.
    for target in ["/version", "/types", "/contacts/1"] {
        let response = try_get(addr, target, Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("{target} during the delay: {error}"));
        assert_eq!(response.status, 200, "{target}: {response}");
        assert_eq!(response.header("connection"), Some("close"), "{target}");
    }
    let on_kept = kept.get("/version");
    assert_eq!(on_kept.status, 200, "{on_kept}");
    assert_eq!(on_kept.header("connection"), Some("close"), "{on_kept}");
    kept.stream()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(kept.stream().read(&mut byte), Ok(0)),
        "the kept connection stayed open after its Connection: close answer"
    );
    let served_until = signalled.elapsed();
    assert!(
        served_until < delay,
        "the checks took {served_until:?}, past the {delay:?} delay"
    );

    // Then the listener closes, and the process exits 0.
    let refused_after = loop {
        if TcpStream::connect(addr).is_err() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < delay + Duration::from_secs(5),
            "still accepting {:?} after the signal",
            signalled.elapsed()
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert!(
        refused_after >= delay,
        "connections refused {refused_after:?} after the signal, before the {delay:?} delay"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("no exit within 10 s");
    assert_eq!(status.code(), Some(0), "{status}");
    figure(
        "shutdown delay",
        format!(
            "SHUTDOWN_DELAY_MS=2000: /readyz 503 {:.0} ms after SIGTERM; /version, /types, \
             /contacts/1 and a kept-alive connection served 200 with Connection: close until \
             {:.0} ms; connections refused from {:.0} ms; exit 0 {:.0} ms after the signal",
            ms(readyz_failed),
            ms(served_until),
            ms(refused_after),
            ms(signalled.elapsed())
        ),
    );
}
