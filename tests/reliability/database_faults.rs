//! Database faults under load: PostgreSQL stopped and restarted, requests
//! failing fast while it is down, its backends killed, a query stuck behind
//! a lock.

use std::thread;
use std::time::{Duration, Instant};

use testkit::http::{self, Conn};
use testkit::{assert_alive, pg};

use crate::database_health::pool_gauge;
use crate::helpers::{
    assert_503, backends, figure, lock_contacts, ms, pg_client, quantile, seed, serial, spread,
    timed_get, url_with, wait_for_200,
};
use crate::load::{Load, Sample, between};
use crate::shutdown::wait_for_lock_waiters;
use crate::{KIT, SECRET};

/// One outage of the database during the load.
struct Outage {
    name: &'static str,
    /// Just before the stop began.
    stopping: Instant,
    /// PostgreSQL has exited.
    stopped: Instant,
    /// PostgreSQL accepts connections again.
    up: Instant,
    /// End of the observation window.
    until: Instant,
}

/// Checks one outage's samples against the rules and returns its figures.
fn check_outage(mode: &str, outage: &Outage, samples: &[Sample], pool_timeout: Duration) -> String {
    let label = format!("{mode}, {}", outage.name);
    // Every request that ended from the moment the stop began until the
    // next outage began (a request running into the next stop is that
    // outage's).
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.end >= outage.stopping && sample.end < outage.until)
        .collect();
    // Never a hang, never a dropped connection, never a 500.
    for sample in &window {
        assert!(sample.result.is_ok(), "{label}: {}", sample.describe());
    }
    // The endpoints without a database keep answering 200.
    let plain: Vec<&&Sample> = window.iter().filter(|sample| !sample.db).collect();
    for sample in &plain {
        assert_eq!(sample.status(), Some(200), "{label}: {}", sample.describe());
    }
    // The first 200 of a database endpoint asked for after PostgreSQL stopped.
    let first_ok = window
        .iter()
        .filter(|sample| {
            sample.db && sample.start >= outage.stopped && sample.status() == Some(200)
        })
        .map(|sample| sample.end)
        .min()
        .unwrap_or_else(|| panic!("{label}: no database request succeeded after the restart"));
    // `up` is when the harness saw PostgreSQL accept a connection (it polls
    // every 25 ms), so the server may beat it by a little: that is zero.
    let recovery = first_ok.saturating_duration_since(outage.up);
    assert!(
        recovery <= Duration::from_secs(1),
        "{label}: first 200 {recovery:?} after PostgreSQL accepted connections (limit 1 s)"
    );
    // While it is down: 503 with Retry-After, within the pool timeout.
    let failed: Vec<&&Sample> = window
        .iter()
        .filter(|sample| sample.db && sample.status() != Some(200))
        .collect();
    let mut failed_latency = Vec::new();
    for sample in &failed {
        assert_503(
            &format!("{label}: {}", sample.target),
            sample.result.as_ref().unwrap(),
        );
        assert!(
            sample.latency() <= pool_timeout + Duration::from_millis(300),
            "{label}: a 503 took {:?}, more than the pool timeout {pool_timeout:?}: {}",
            sample.latency(),
            sample.describe()
        );
        failed_latency.push(sample.latency());
        // From the first 200 on, not one failure.
        assert!(
            sample.start < first_ok,
            "{label}: a failure {:?} after the first 200: {}",
            sample.start - first_ok,
            sample.describe()
        );
    }
    let during = window.iter().filter(|sample| sample.start < first_ok);
    let plain_during = during.clone().filter(|sample| !sample.db).count();
    let after = window
        .iter()
        .filter(|sample| sample.start >= first_ok)
        .count();
    format!(
        "{label}: PostgreSQL down {:.0} ms; until the first 200 again: {} requests, \
         {} database requests answered 503 + Retry-After (latency {}), \
         {plain_during} without a database all 200, 0 errors or hangs; \
         first 200 {:.0} ms after PostgreSQL accepted connections; \
         then {after} requests, 0 failed",
        ms(outage.up - outage.stopping),
        during.count(),
        failed.len(),
        spread(&failed_latency),
        ms(recovery),
    )
}

/// PostgreSQL stopped for two seconds, then restarted at once, both under
/// concurrent load, on a cluster of the test's own.
fn database_restart_under_load(mode: &'static str) {
    let _serial = serial();
    let test = format!("restart under load ({mode})");
    let mut cluster = pg::Cluster::start("bakeoff").expect("a second cluster");
    seed(&cluster, 200);
    let url = format!(
        "postgresql://postgres:{SECRET}@127.0.0.1:{}/bakeoff",
        cluster.port
    );
    // The default pool timeout: 503s must come within it, at most 1 s.
    let mut server = KIT.start_server(&url, &[("POOL_MODE", mode)]);
    wait_for_200(server.addr, "/types", Duration::from_secs(10));
    let pool_timeout = Duration::from_millis(1000);

    let load = Load::start(server.addr, 6, Duration::from_millis(2));
    thread::sleep(Duration::from_millis(800));
    let mut outages = Vec::new();
    for (name, down_for) in [
        ("stopped 2 s", Duration::from_secs(2)),
        ("restarted", Duration::ZERO),
    ] {
        let stopping = Instant::now();
        cluster.stop();
        let stopped = Instant::now();
        thread::sleep(down_for);
        cluster.start_again().expect("restart PostgreSQL");
        let up = Instant::now();
        thread::sleep(Duration::from_millis(2500));
        outages.push(Outage {
            name,
            stopping,
            stopped,
            up,
            until: Instant::now(),
        });
    }
    let samples = load.finish();
    if let Some(last) = outages.last_mut() {
        last.until = Instant::now();
    }
    assert!(
        samples.len() > 500,
        "{test}: only {} requests were made",
        samples.len()
    );
    // Before the first outage: all 200.
    for sample in samples
        .iter()
        .filter(|sample| sample.end < outages[0].stopping)
    {
        assert_eq!(
            sample.status(),
            Some(200),
            "{test}, steady: {}\nserver log:\n{}",
            sample.describe(),
            server.stderr()
        );
    }
    for outage in &outages {
        figure(&test, check_outage(mode, outage, &samples, pool_timeout));
    }
    // The long outage really produced 503s (the test is not vacuous).
    let failures = between(&samples, outages[0].stopping, outages[0].until)
        .filter(|sample| sample.status() == Some(503))
        .count();
    assert!(failures > 0, "{test}: no 503 while PostgreSQL was down");
    // Statements were prepared again on the new connections: the pages
    // and contacts, which use them, answered 200 after each restart.
    for target in ["/contacts/7", "/contacts/fetch?limit=5&offset=10"] {
        let after = between(&samples, outages[1].up, outages[1].until)
            .filter(|sample| sample.target == target && sample.status() == Some(200))
            .count();
        assert!(
            after > 0,
            "{test}: {target} never answered after the restart"
        );
    }
    assert_alive(&mut server);
    assert!(
        !server.stderr().contains(SECRET),
        "{test}: the password is in the log:\n{}",
        server.stderr()
    );
}

#[test]
fn database_stopped_and_restarted_under_load_shared_pool() {
    database_restart_under_load("shared");
}

#[test]
fn database_stopped_and_restarted_under_load_exclusive_pool() {
    database_restart_under_load("exclusive");
}

/// Backends killed while PostgreSQL stays up (an administrator's
/// `pg_terminate_backend`, a pooler restart): the broken connections are
/// noticed without a round trip and replaced, never lent to a request.
#[test]
fn killed_database_connections_are_replaced_and_never_lent() {
    let _serial = serial();
    let test = "killed connections";
    let mut client = pg_client();
    for mode in ["shared", "exclusive"] {
        let app = format!("victim_{mode}");
        let mut server =
            KIT.start_server(&url_with(&app), &[("POOL_MODE", mode), ("POOL_SIZE", "2")]);
        wait_for_200(server.addr, "/types", Duration::from_secs(10));
        // Shared mode adds connections of its own for the `starts` pages.
        let size = pool_gauge(server.addr, "bakeoff_pool_size") as i64;
        assert!(size >= 2, "{mode}: pool size {size}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while backends(&mut client, &app) < size {
            assert!(
                Instant::now() < deadline,
                "{mode}: the pool never opened {size} connections"
            );
            thread::sleep(Duration::from_millis(20));
        }

        // Idle server: kill every pooled connection, then ask.
        let killed: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .unwrap()
            .get(0);
        assert_eq!(killed, size, "{mode}");
        thread::sleep(Duration::from_millis(200));
        let mut conn = Conn::connect(server.addr);
        for round in 0..40 {
            let target = [
                "/types",
                "/contacts/3",
                "/contacts/fetch?limit=3",
                "/contacts/for?limit=3&starts=m",
            ][round % 4];
            let response = conn.get(target);
            assert_eq!(
                response.status, 200,
                "{mode}: request {round} after the kill: {target}: {response}"
            );
        }

        // Under load: the requests in flight on a killed connection may
        // fail (503); everything asked for afterwards succeeds.
        let load = Load::start(server.addr, 4, Duration::from_millis(2));
        thread::sleep(Duration::from_millis(500));
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .unwrap();
        let killed_at = Instant::now();
        thread::sleep(Duration::from_millis(1500));
        let samples = load.finish();
        let mut failed = 0;
        for sample in &samples {
            match sample.status() {
                Some(200) => {}
                Some(503) if sample.start < killed_at + Duration::from_millis(100) => failed += 1,
                _ => panic!("{mode}: {}", sample.describe()),
            }
        }
        let after = between(
            &samples,
            killed_at + Duration::from_millis(100),
            Instant::now(),
        )
        .count();
        figure(
            test,
            format!(
                "{mode}: all {size} pooled connections killed under load: {failed} requests in \
                 flight on them got 503, the next {after} all 200"
            ),
        );
        assert_alive(&mut server);
    }
}

/// A query stuck behind a lock is cancelled by the statement timeout,
/// answered 503, and gives its connection back: with a pool of one, other
/// requests still get it.
#[test]
fn a_query_stuck_behind_a_lock_is_bounded_by_the_statement_timeout() {
    let _serial = serial();
    let test = "statement timeout";
    let fixture = KIT.fixture();
    for mode in ["exclusive", "shared"] {
        let server = KIT.start_server(
            &url_with(&format!("locked_{mode}")),
            &[
                ("POOL_MODE", mode),
                ("POOL_SIZE", "1"),
                ("STATEMENT_TIMEOUT_MS", "500"),
            ],
        );
        wait_for_200(server.addr, "/contacts/1", Duration::from_secs(10));
        let mut locker = pg_client();
        let tx = lock_contacts(&mut locker);

        let addr = server.addr;
        // One query stuck: /types, which reads contact_types (not locked),
        // waits at most for its timeout, then gets the one connection.
        let stuck = thread::spawn(move || timed_get(addr, "/contacts/1"));
        thread::sleep(Duration::from_millis(50));
        let (types_latency, types) = timed_get(addr, "/types");
        let types = types.expect("/types while contacts is locked");
        if types.status != 200 {
            // The log is read from the pipe by another thread: let it catch up.
            thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(
            types.status,
            200,
            "{mode}: /types while contacts is locked, after {types_latency:?}: {types}\nserver log:\n{}",
            server.stderr()
        );
        // At most the stuck query's 500 ms, plus a margin for a loaded machine.
        assert!(
            types_latency < Duration::from_millis(1500),
            "{mode}: /types took {types_latency:?} behind one stuck query"
        );
        let (one_latency, response) = stuck.join().unwrap();
        assert_503(
            &format!("{mode}: /contacts/1 while locked"),
            &response.unwrap(),
        );
        // Ended by PostgreSQL's statement timeout: not before it, well before
        // the server's own deadline (pool timeout 1 s + statement timeout +
        // 1 s = 2.5 s; the margin is for a loaded CI machine), and PostgreSQL
        // said why.
        assert!(
            (Duration::from_millis(450)..Duration::from_millis(2000)).contains(&one_latency),
            "{mode}: the stuck query was answered after {one_latency:?}, not its 500 ms timeout"
        );
        // The log line is written before the 503, but read from the pipe by
        // another thread of this test: give it a moment.
        let logged = Instant::now();
        while !server
            .stderr()
            .contains("canceling statement due to statement timeout")
        {
            assert!(
                logged.elapsed() < Duration::from_secs(3),
                "{mode}: the server did not log PostgreSQL's statement timeout: {}",
                server.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }

        // Three at once, on the one connection: each ends in a 503, by its
        // own statement timeout or by the pool timeout while waiting.
        let stuck: Vec<_> = [
            "/contacts/1",
            "/contacts/fetch?limit=3",
            "/contacts/for?starts=m",
        ]
        .into_iter()
        .map(|target| thread::spawn(move || (target, timed_get(addr, target))))
        .collect();
        let mut stuck_latency = Vec::new();
        for handle in stuck {
            let (target, (latency, response)) = handle.join().unwrap();
            let response =
                response.unwrap_or_else(|error| panic!("{mode}: {target} while locked: {error}"));
            assert_503(&format!("{mode}: {target} while locked"), &response);
            // Below the server's 2.5 s deadline: a timeout ended it.
            assert!(
                latency < Duration::from_millis(2400),
                "{mode}: {target} took {latency:?} while locked"
            );
            stuck_latency.push(latency);
        }
        // The connection was given back: with the lock still held, /types
        // answers at once, once PostgreSQL has cancelled every stuck query
        // (in shared mode they were pipelined on one connection, so their
        // timeouts ran one after the other; on a loaded machine a request
        // may reach its deadline while its query still waits its turn).
        // (Twice, apart: between two pipelined queries the count is
        // briefly 0.)
        let mut admin = pg_client();
        for _ in 0..2 {
            wait_for_lock_waiters(&mut admin, &format!("locked_{mode}"), |waiting| {
                waiting == 0
            });
            thread::sleep(Duration::from_millis(100));
        }
        let (free_latency, response) = timed_get(addr, "/types");
        let response = response.unwrap();
        assert_eq!(
            response.status,
            200,
            "{mode}: /types after the timeouts, after {free_latency:?}: {response}\nserver log:\n{}",
            server.stderr()
        );
        // Not the 1 s pool timeout: the connection was free.
        assert!(
            free_latency < Duration::from_millis(800),
            "{mode}: /types took {free_latency:?} after the timeouts"
        );
        tx.commit().unwrap();
        let response = http::get(addr, "/contacts/1");
        assert_eq!(
            response.status,
            200,
            "{mode}: /contacts/1 after the lock: {response}\nserver log:\n{}",
            server.stderr()
        );
        testkit::assert_body(
            "/contacts/1 after the lock",
            &response,
            &fixture.snapshot.contact_json(1).unwrap(),
        );
        figure(
            test,
            format!(
                "{mode}, pool of 1, statement timeout 500 ms: a query stuck behind a lock \
                 answered 503 in {:.0} ms, /types meanwhile 200 in {:.0} ms; 3 stuck at once \
                 503 in {}; then /types 200 in {:.1} ms",
                ms(one_latency),
                ms(types_latency),
                spread(&stuck_latency),
                ms(free_latency)
            ),
        );
    }
}

/// While PostgreSQL is down, database requests answer 503 at once instead of
/// each waiting the pool timeout; `/readyz` too; the first 200 comes within
/// a second of PostgreSQL accepting connections again, and none fails after.
fn outage_fails_fast(mode: &'static str) {
    let _serial = serial();
    let test = format!("fast failure during an outage ({mode})");
    let mut cluster = pg::Cluster::start("bakeoff").expect("a second cluster");
    seed(&cluster, 100);
    let url = cluster.url("bakeoff");
    // A long pool timeout, so that waiting it out cannot pass for failing fast.
    let mut server = KIT.start_server(&url, &[("POOL_MODE", mode), ("POOL_TIMEOUT_MS", "3000")]);
    let address = server.addr;
    wait_for_200(address, "/types", Duration::from_secs(10));
    let mut conn = Conn::connect(address);
    assert_eq!(conn.get("/types").status, 200);

    cluster.stop();
    let mut latencies = Vec::new();
    for index in 0..60 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let started = Instant::now();
        let response = conn.get(target);
        latencies.push(started.elapsed());
        assert_503(&format!("{test}: {target}"), &response);
    }
    // The first request or two find out that the database is gone.
    let settled = &latencies[2..];
    let (median, worst) = (quantile(settled, 0.5), quantile(settled, 1.0));
    assert!(
        median <= Duration::from_millis(50),
        "{test}: 503s took {} (p50 / p99 / max) with the database known to be down",
        spread(settled)
    );
    assert!(
        worst < Duration::from_millis(1000),
        "{test}: a 503 took {worst:?} with the database known to be down"
    );
    assert_eq!(conn.get("/version").status, 200);

    cluster.start_again().expect("restart PostgreSQL");
    let up = Instant::now();
    let recovery = wait_for_200(address, "/types", Duration::from_secs(5));
    assert!(
        recovery <= Duration::from_secs(1),
        "{test}: first 200 {recovery:?} after PostgreSQL accepted connections"
    );
    let mut conn = Conn::connect(address);
    for index in 0..200 {
        let target = [
            "/types",
            "/contacts/3",
            "/contacts/fetch?limit=5",
            "/readyz",
        ][index % 4];
        let response = conn.get(target);
        assert_eq!(
            response.status, 200,
            "{test}: after recovery, {target}: {response}"
        );
    }
    testkit::assert_alive(&mut server);
    figure(
        &test,
        format!(
            "pool timeout 3 s; database down: 60 requests (incl. /readyz) all 503 + Retry-After, \
             latency {} (first two: {:.1} / {:.1} ms); first 200 {:.0} ms after PostgreSQL \
             accepted connections (polling), then 200 requests all 200",
            spread(settled),
            ms(latencies[0]),
            ms(latencies[1]),
            ms(up.elapsed().min(recovery)),
        ),
    );
}

#[test]
fn while_the_database_is_down_requests_fail_fast_shared_pool() {
    outage_fails_fast("shared");
}

#[test]
fn while_the_database_is_down_requests_fail_fast_exclusive_pool() {
    outage_fails_fast("exclusive");
}
