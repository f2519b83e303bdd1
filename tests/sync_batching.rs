//! One Sync per batch (`src/db/sync_batching/`) against a real
//! PostgreSQL: statements sent together run in one implicit transaction,
//! each request still gets its own answer, and a failed statement fails the
//! ones PostgreSQL skipped after it, not the connection; each statement
//! keeps its own statement timeout.

use std::time::Duration;

use bakeoff::db::Connector;
use bakeoff::db::address::postgres_config;
use futures_util::future::join3;
use testkit::Kit;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

/// The server's own connector to the test database, batching or not. Made
/// outside the test's runtime: the fixture's first use starts the cluster
/// with a blocking client, which would refuse to run inside one.
fn connector(batch_syncs: bool) -> Connector {
    let mut connector = postgres_config(&KIT.fixture().database_url, Duration::from_secs(10))
        .expect("the test database's URL");
    connector.batch_syncs = batch_syncs;
    connector
}

/// Runs `test` on a single-threaded runtime, where the three requests of a
/// `join3` are all queued before the connection task writes: one batch.
fn on_one_thread<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test());
}

/// Each statement's `transaction_timestamp()`, three sent at once.
async fn three_transaction_starts(client: &Client) -> [String; 3] {
    let statement = client
        .prepare("SELECT transaction_timestamp()::text")
        .await
        .unwrap();
    let one = || async { client.query_one(&statement, &[]).await.unwrap().get(0) };
    let (a, b, c) = join3(one(), one(), one()).await;
    [a, b, c]
}

#[test]
fn statements_sent_together_share_one_transaction_only_when_batched() {
    let (batching, plain) = (connector(true), connector(false));
    on_one_thread(|| async {
        let batched = batching.connect().await.unwrap();
        let starts = three_transaction_starts(&batched).await;
        assert!(
            starts.iter().all(|start| *start == starts[0]),
            "batched statements in separate transactions: {starts:?}"
        );

        // The control: a Sync per statement, a transaction each.
        let plain = plain.connect().await.unwrap();
        let starts = three_transaction_starts(&plain).await;
        assert!(
            starts.iter().any(|start| *start != starts[0]),
            "unbatched statements in one transaction: {starts:?}"
        );
    });
}

#[test]
fn a_failed_statement_fails_the_rest_of_its_batch_and_the_connection_goes_on() {
    let batching = connector(true);
    on_one_thread(|| async {
        let client = batching.connect().await.unwrap();
        let divide = client
            .prepare_typed("SELECT 12 / $1", &[tokio_postgres::types::Type::INT4])
            .await
            .unwrap();
        let quotient = |divisor: i32| {
            let (client, divide) = (&client, &divide);
            async move {
                client
                    .query_one(divide, &[&divisor])
                    .await
                    .map(|row| row.get::<_, i32>(0))
            }
        };
        let (first, second, third) = join3(quotient(3), quotient(0), quotient(4)).await;
        assert_eq!(first.unwrap(), 4);
        let code = |result: Result<i32, tokio_postgres::Error>| {
            result
                .unwrap_err()
                .code()
                .cloned()
                .expect("a database error")
        };
        assert_eq!(code(second), SqlState::DIVISION_BY_ZERO);
        assert_eq!(code(third), SqlState::IN_FAILED_SQL_TRANSACTION);

        // The next batch runs, and the connection still batches.
        let (a, b, c) = join3(quotient(6), quotient(2), quotient(1)).await;
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (2, 6, 12));
        assert!(!client.is_closed());
        let starts = three_transaction_starts(&client).await;
        assert!(starts.iter().all(|start| *start == starts[0]), "{starts:?}");
    });
}

#[test]
fn simple_queries_and_prepares_between_statements_keep_their_own_transactions() {
    let batching = connector(true);
    on_one_thread(|| async {
        let client = batching.connect().await.unwrap();
        // A session setting sent in the middle of a batch applies to the
        // statements after it, as without batching.
        let show = client.prepare("SHOW work_mem").await.unwrap();
        let before = client.query_one(&show, &[]);
        let set = client.batch_execute("SET work_mem = '7MB'");
        let after = client.query_one(&show, &[]);
        let (before, set, after) = join3(before, set, after).await;
        set.unwrap();
        assert_ne!(before.unwrap().get::<_, String>(0), "7MB");
        assert_eq!(after.unwrap().get::<_, String>(0), "7MB");
    });
}

#[test]
fn each_statement_of_a_batch_keeps_its_own_statement_timeout() {
    let batching = connector(true);
    on_one_thread(|| async {
        let client = batching.connect().await.unwrap();
        client
            .batch_execute("SET statement_timeout = 500")
            .await
            .unwrap();
        let sleep = client
            .prepare("SELECT transaction_timestamp()::text FROM pg_sleep(0.25)")
            .await
            .unwrap();
        let one = || async {
            client
                .query_one(&sleep, &[])
                .await
                .map(|row| row.get::<_, String>(0))
        };
        // 750 ms in one batch (one transaction), each statement well within
        // its 500 ms: the timer restarts at each Execute, as the module's
        // comment says.
        let began = std::time::Instant::now();
        let (a, b, c) = join3(one(), one(), one()).await;
        assert!(began.elapsed() >= Duration::from_millis(750));
        let starts = [a.unwrap(), b.unwrap(), c.unwrap()];
        assert!(starts.iter().all(|start| *start == starts[0]), "{starts:?}");
        // And a statement over its own timeout is still cancelled.
        let long = client.prepare("SELECT pg_sleep(0.8)").await.unwrap();
        let error = client.query_one(&long, &[]).await.unwrap_err();
        assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED));
    });
}
