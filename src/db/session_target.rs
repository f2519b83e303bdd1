//! libpq's `target_session_attrs`: which of the listed hosts a session may
//! be opened on, and the check of an open session against it.
//!
//! tokio-postgres 0.7 knows only `any`, `read-write` and `read-only` of
//! `target_session_attrs`, which it checks with `SHOW
//! transaction_read_only`. That answer follows the *role's*
//! `default_transaction_read_only` as much as the server's role in
//! replication: the read-only role of `sql/roles.sql` is refused by
//! `read-write` on every host, primary included. libpq's `primary`,
//! `standby` and `prefer-standby` ask whether the server is in recovery
//! instead, which is what a read-only API behind a failover needs. So the
//! server checks all six values itself, here, on the sessions `connect.rs`
//! opens.

use tokio_postgres::{Client, SimpleQueryMessage};

/// libpq's `target_session_attrs`: which of the listed hosts a session may
/// be opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTarget {
    /// Any host that accepts the connection (the default).
    Any,
    /// A session that may write: `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// A session that may not write: `transaction_read_only` is `on`.
    ReadOnly,
    /// A server not in recovery: the primary.
    Primary,
    /// A server in recovery: a hot standby.
    Standby,
    /// A standby if one of the hosts is, else any host.
    PreferStandby,
}

impl SessionTarget {
    /// The value as libpq spells it, or `None` for an unknown one.
    pub fn parse(word: &str) -> Option<SessionTarget> {
        Some(match word {
            "any" => SessionTarget::Any,
            "read-write" => SessionTarget::ReadWrite,
            "read-only" => SessionTarget::ReadOnly,
            "primary" => SessionTarget::Primary,
            "standby" => SessionTarget::Standby,
            "prefer-standby" => SessionTarget::PreferStandby,
            _ => return None,
        })
    }

    /// The value as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionTarget::Any => "any",
            SessionTarget::ReadWrite => "read-write",
            SessionTarget::ReadOnly => "read-only",
            SessionTarget::Primary => "primary",
            SessionTarget::Standby => "standby",
            SessionTarget::PreferStandby => "prefer-standby",
        }
    }

    /// The passes over the host list: `prefer-standby` looks for a standby
    /// first and takes any host on a second pass, as libpq does.
    pub(super) fn passes(self) -> &'static [SessionTarget] {
        match self {
            SessionTarget::PreferStandby => &[SessionTarget::Standby, SessionTarget::Any],
            SessionTarget::Any => &[SessionTarget::Any],
            SessionTarget::ReadWrite => &[SessionTarget::ReadWrite],
            SessionTarget::ReadOnly => &[SessionTarget::ReadOnly],
            SessionTarget::Primary => &[SessionTarget::Primary],
            SessionTarget::Standby => &[SessionTarget::Standby],
        }
    }
}

/// Whether the session meets `target`: one round trip, as libpq makes for
/// a server that does not report these settings itself.
pub(super) async fn meets(
    client: &Client,
    target: SessionTarget,
) -> Result<bool, tokio_postgres::Error> {
    let (question, wanted) = match target {
        SessionTarget::Any | SessionTarget::PreferStandby => return Ok(true),
        SessionTarget::ReadWrite => ("SHOW transaction_read_only", "off"),
        SessionTarget::ReadOnly => ("SHOW transaction_read_only", "on"),
        SessionTarget::Primary => ("SELECT pg_catalog.pg_is_in_recovery()", "f"),
        SessionTarget::Standby => ("SELECT pg_catalog.pg_is_in_recovery()", "t"),
    };
    let answer = client.simple_query(question).await?;
    Ok(answer.iter().any(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0) == Some(wanted),
        _ => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_value_parses_and_spells_back() {
        for word in [
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ] {
            assert_eq!(
                SessionTarget::parse(word).map(SessionTarget::as_str),
                Some(word)
            );
        }
        assert_eq!(SessionTarget::parse("master"), None);
    }
}
