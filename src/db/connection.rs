//! One database connection with the statements prepared on it, and the
//! manager that opens such connections for bb8.

use std::sync::Arc;

use bb8::ManageConnection;
use futures_util::future::try_join_all;
use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, RowStream, Statement};

use super::connect::{ConnectError, Connector};
use super::health::Health;
use super::statements::{QUERIES, Query};
use crate::metrics;

/// A pooled connection: the client and its prepared statements side by side.
pub struct Connection {
    /// The tokio-postgres client; its connection task runs on the runtime
    /// that opened it.
    pub client: Client,
    /// The statements prepared on this client, by [`Query::index`]; a
    /// query without one here is sent as the unnamed statement.
    statements: [Option<Statement>; QUERIES],
}

impl Connection {
    /// The prepared statement for `query`, if it has one on this connection.
    #[inline]
    fn prepared(&self, query: Query) -> Option<&Statement> {
        self.statements[query.index()].as_ref()
    }

    /// Runs `query` and returns its rows as a stream, read as they arrive.
    #[inline]
    pub async fn query_raw(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream, tokio_postgres::Error> {
        metrics::database_query();
        match self.prepared(query) {
            Some(statement) => {
                self.client
                    .query_raw(statement, parameters.iter().copied())
                    .await
            }
            None => {
                let typed = parameters
                    .iter()
                    .copied()
                    .zip(query.parameter_types().iter().cloned());
                self.client.query_typed_raw(query.sql(), typed).await
            }
        }
    }

    /// Runs `query` and collects all its rows at once.
    #[inline]
    pub async fn query(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self.prepared(query) {
            Some(statement) => {
                metrics::database_query();
                self.client.query(statement, parameters).await
            }
            None => self.query_raw(query, parameters).await?.try_collect().await,
        }
    }

    /// Runs `query`, which returns at most one row, and returns that row.
    #[inline]
    pub async fn query_opt(
        &self,
        query: Query,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let rows = self.query_raw(query, parameters).await?;
        pin_mut!(rows);
        let row = rows.try_next().await?;
        if row.is_some() {
            // Read to the end, so the command's completion is consumed here.
            // (A stream that has ended must not be polled again.)
            while rows.try_next().await?.is_some() {}
        }
        Ok(row)
    }

    /// Whether the connection's socket has closed: a flag, no round trip.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Opens connections for bb8, sets their session up, prepares the
/// statements on each, and tells the pool's [`Health`] whether PostgreSQL
/// took the connection.
pub struct Manager {
    /// Opens sessions: the hosts in turn, checked against the target.
    pub(super) connector: Connector,
    /// The statements each connection prepares when it opens.
    pub(super) prepare: &'static [Query],
    /// `SET …` sent when a connection opens, or empty.
    pub(super) session_settings: String,
    /// Where the outcome of every connection attempt is recorded.
    pub(super) health: Arc<Health>,
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Connection, ConnectError> {
        // Only the connection itself tells whether the database is reachable:
        // a session set-up or a prepare that fails on an open connection
        // (one blocked by a lock until its statement timeout, say) does not.
        let began = self.health.now();
        // With several hosts, one attempt tries each in turn: it fails only
        // when no host is up and meets `target_session_attrs`, which is what
        // "down" means for the pool (a failover in progress included).
        let client = match self.connector.connect().await {
            Ok(client) => {
                self.health.connected();
                client
            }
            Err(error) => {
                self.health.connect_failed(began);
                return Err(error);
            }
        };
        Ok(self.set_up(client).await?)
    }

    async fn is_valid(&self, connection: &mut Connection) -> Result<(), ConnectError> {
        connection.client.simple_query("").await?;
        Ok(())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.is_closed()
    }
}

impl Manager {
    /// Sets the session up and prepares the statements on a new client.
    async fn set_up(&self, client: Client) -> Result<Connection, tokio_postgres::Error> {
        // Set and prepared concurrently: tokio-postgres pipelines the
        // messages into one round trip.
        let settings = async {
            match self.session_settings.is_empty() {
                true => Ok(()),
                false => client.batch_execute(&self.session_settings).await,
            }
        };
        let prepared = try_join_all(self.prepare.iter().map(|&query| {
            let client = &client;
            async move {
                let statement = client
                    .prepare_typed(query.sql(), query.parameter_types())
                    .await?;
                Ok::<_, tokio_postgres::Error>((query, statement))
            }
        }));
        let ((), prepared) = tokio::try_join!(settings, prepared)?;
        let mut statements = [const { None }; QUERIES];
        for (query, statement) in prepared {
            statements[query.index()] = Some(statement);
        }
        Ok(Connection { client, statements })
    }
}
