//! Failover without a restart: a primary and its streaming standby, both in
//! `DATABASE_URL` with libpq's `target_session_attrs`; the primary stops,
//! the standby is promoted, and the running server answers again.

use std::thread;
use std::time::{Duration, Instant};

use testkit::pg;

use crate::helpers::{assert_503, figure, ms, seed, serial, timed_get, try_get, wait_for_200};
use crate::{KIT, SECRET};

/// The primary and its standby, seeded, the read-only role created, and
/// the standby caught up.
fn replicated_pair() -> (pg::Cluster, pg::Cluster) {
    let primary = pg::Cluster::start("bakeoff").expect("start the primary");
    seed(&primary, 200);
    let mut admin = postgres::Client::connect(&primary.conn_string("bakeoff"), postgres::NoTls)
        .expect("connect to the primary");
    let roles = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/roles.sql"))
        .expect("read sql/roles.sql");
    admin.batch_execute(&roles).expect("sql/roles.sql");
    let standby = pg::Cluster::standby_of(&primary).expect("start the standby");
    let mut reader = postgres::Client::connect(&standby.conn_string("bakeoff"), postgres::NoTls)
        .expect("connect to the standby");
    let in_recovery: bool = reader
        .query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get(0);
    assert!(in_recovery, "the standby is not in recovery");
    (primary, standby)
}

/// `DATABASE_URL` listing the standby first, then the primary, as the
/// read-only role of `sql/roles.sql`, with `target_session_attrs`.
fn url(standby: &pg::Cluster, primary: &pg::Cluster, target: &str, application: &str) -> String {
    format!(
        "postgresql://bakeoff_reader:{SECRET}@127.0.0.1:{},127.0.0.1:{}/bakeoff\
         ?target_session_attrs={target}&application_name={application}",
        standby.port, primary.port
    )
}

/// Sessions of `application` on `cluster`.
fn sessions(cluster: &pg::Cluster, application: &str) -> i64 {
    let mut client = postgres::Client::connect(&cluster.conn_string("postgres"), postgres::NoTls)
        .expect("connect");
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .unwrap()
        .get(0)
}

/// `primary` picks the primary though the standby is listed first, and
/// `standby` the standby; `read-write` refuses both for the read-only role
/// (its sessions are read-only everywhere, which is what tokio-postgres's
/// own check looks at). Then the primary stops: database requests get 503
/// at once, and once the standby is promoted the same server process
/// answers 200 again, within a second, and keeps answering.
#[test]
fn after_a_failover_the_server_reconnects_to_the_new_primary_without_a_restart() {
    let _serial = serial();
    let test = "failover";
    let (mut primary, standby) = replicated_pair();

    // Reads from the standby, where a deployment chooses to.
    let reads = KIT.start_server(
        &url(&standby, &primary, "standby", "failover_reads"),
        &[("POOL_SIZE", "2")],
    );
    wait_for_200(reads.addr, "/types", Duration::from_secs(10));
    assert!(sessions(&standby, "failover_reads") > 0);
    assert_eq!(sessions(&primary, "failover_reads"), 0);
    drop(reads);

    // `read-write` with a read-only role: no host qualifies.
    let refused = KIT.start_server(
        &url(&standby, &primary, "read-write", "failover_rw"),
        &[("POOL_SIZE", "2"), ("POOL_TIMEOUT_MS", "300")],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refused.stderr().contains("target_session_attrs=read-write") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged: {}",
            refused.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let (_, ready) = timed_get(refused.addr, "/readyz");
    assert_503("/readyz, read-write with a read-only role", &ready.unwrap());
    assert!(
        !refused.stderr().contains(SECRET),
        "the password in the log: {}",
        refused.stderr()
    );
    drop(refused);

    let server = KIT.start_server(
        &url(&standby, &primary, "primary", "failover"),
        &[("POOL_SIZE", "2"), ("POOL_TIMEOUT_MS", "1000")],
    );
    assert!(
        server.first_line.contains(&format!(
            ",127.0.0.1:{}/bakeoff target_session_attrs=primary",
            primary.port
        )),
        "{}",
        server.first_line
    );
    assert!(!server.first_line.contains(SECRET), "{}", server.first_line);
    wait_for_200(server.addr, "/types", Duration::from_secs(10));
    let types = try_get(server.addr, "/types", Duration::from_secs(5)).unwrap();
    assert_eq!(types.status, 200);
    assert_eq!(
        sessions(&standby, "failover"),
        0,
        "a session on the standby"
    );
    let pid = server.pid();

    // The primary goes away: fast 503s, not a pool timeout each.
    primary.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let down_latency = loop {
        let (latency, response) = timed_get(server.addr, "/types");
        let response = response.expect("/types with the primary gone");
        if response.status == 503 && latency < Duration::from_millis(300) {
            assert_503("/types, primary gone", &response);
            break latency;
        }
        assert!(
            Instant::now() < deadline,
            "/types not failing fast: {} in {latency:?}",
            response.status
        );
        thread::sleep(Duration::from_millis(20));
    };

    // Failover: the standby becomes the primary.
    standby.promote().expect("promote the standby");
    let promoted = Instant::now();
    let first_200 = wait_for_200(server.addr, "/types", Duration::from_secs(5));
    assert!(
        first_200 < Duration::from_secs(1),
        "the first 200 came {first_200:?} after the promotion"
    );
    let expected = types.body_str();
    for index in 0..200 {
        let response = try_get(server.addr, "/types", Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("request {index} after the failover: {error}"));
        assert_eq!(response.status, 200, "request {index}: {response}");
        assert_eq!(response.body_str(), expected);
    }
    assert_eq!(server.pid(), pid);
    assert!(sessions(&standby, "failover") > 0);
    figure(
        test,
        format!(
            "primary listed second with target_session_attrs=primary: served by it; primary \
             stopped: /types 503 in {:.1} ms; the first 200 {:.0} ms after pg_promote returned, \
             then 200 of 200 (no restart); standby reads with `standby`; `read-write` refused \
             for the read-only role ({:.1} s from the promotion to the last answer)",
            ms(down_latency),
            ms(first_200),
            promoted.elapsed().as_secs_f64()
        ),
    );
}
