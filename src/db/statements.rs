//! The statements of `sql/`, one per kind of database request, how they
//! reach PostgreSQL, and which of them PostgreSQL must plan on every call.
//!
//! This file is the one home of the generic-plan story. A prepared statement
//! is planned by PostgreSQL's plan cache: custom plans (for the parameters
//! given) for its first five executions, then the generic plan (for any
//! parameters) once that looks no costlier than the average custom plan, kept
//! for the life of the connection. That is right for a statement with one
//! good plan whatever its parameters (`Types`, `Contact`, `Page`), and wrong
//! for `PageStarts`, whose best plan depends on how common the prefix is: the
//! prefix index for a rare one, a walk along `contact_id` that stops after
//! `limit` matches for a common one (`m`, a quarter of the names). A few
//! costlier calls (a large limit or offset) raise the custom plans' average
//! cost until the generic plan wins, and the generic plan reads every match
//! of the prefix and sorts them. pgbench (`starts=m`, `limit=10`, 16
//! clients, 10,000 contacts): custom plans 10.3–10.5k/s, stuck on the generic
//! plan 2.8k/s; the server's `fetch_starts` fell from ~8.6k to ~2.8k req/s
//! after 40 heavy requests (docs/PERFORMANCE.md has the whole measurement).
//! So `PageStarts` runs where PostgreSQL plans every call: prepared on
//! connections whose sessions set `plan_cache_mode = force_custom_plan`, or
//! as the unnamed statement (see `Database::new`). Forcing custom plans on
//! every connection instead costs `Contact` 2.5× (pgbench 37.7–40.1k →
//! 14.9–16.3k tps).

use postgres_types::Type;

/// A statement of `sql/`, one per kind of database request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `sql/types.sql`: no parameters.
    Types,
    /// `sql/contact.sql`: `$1 int4` contact_id.
    Contact,
    /// `sql/page.sql`: `$1 int8` limit, `$2 int8` offset.
    Page,
    /// `sql/page_starts.sql`: `$1 int8` limit, `$2 int8` offset, `$3 text` starts.
    PageStarts,
}

/// How many statements there are: the size of a connection's statement table.
pub const QUERIES: usize = 4;

impl Query {
    /// The statement's text, embedded from `sql/` at build time.
    pub fn sql(self) -> &'static str {
        match self {
            Query::Types => include_str!("../../sql/types.sql"),
            Query::Contact => include_str!("../../sql/contact.sql"),
            Query::Page => include_str!("../../sql/page.sql"),
            Query::PageStarts => include_str!("../../sql/page_starts.sql"),
        }
    }

    /// The parameter types, given to PostgreSQL rather than inferred.
    pub fn parameter_types(self) -> &'static [Type] {
        match self {
            Query::Types => &[],
            Query::Contact => &[Type::INT4],
            Query::Page => &[Type::INT8, Type::INT8],
            Query::PageStarts => &[Type::INT8, Type::INT8, Type::TEXT],
        }
    }

    /// Where a connection keeps its prepared statement.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether PostgreSQL must plan the statement for its own parameters on
    /// every call rather than from its plan cache (see the top of this file).
    pub fn plans_per_call(self) -> bool {
        self == Query::PageStarts
    }

    /// How many of its requests a shared connection takes before the next
    /// connection of the pool is used (see `SharedSlots::live`). The cheap
    /// statements (tens of microseconds in PostgreSQL) fill one connection
    /// first, so that a batch goes out in one write to one backend; the
    /// pages (a millisecond and more) go to the least loaded connection, so
    /// that none waits behind another page while a backend idles.
    pub fn pipeline_depth(self) -> usize {
        match self {
            Query::Types | Query::Contact => PIPELINE_DEPTH,
            Query::Page | Query::PageStarts => 1,
        }
    }
}

/// The requests a cheap statement's connection takes before the next one is
/// used. With a Sync per statement, 8 to 32 measured alike and 64 (one
/// connection per runtime in practice) worse (docs/PERFORMANCE.md, issue
/// #22). Under one Sync per batch (`sync_batching/`) a deeper batch saves
/// PostgreSQL more: 8, 32 and 64 alternated three times (docs/PERFORMANCE.md,
/// "One Sync per batch"), `types` ÷ `version` 0.48–0.50 at 8, 0.55–0.58 at
/// 32, 0.53–0.61 at 64, statements per write 6 → 9 → 10.
pub const PIPELINE_DEPTH: usize = 32;

/// How statements reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementMode {
    /// Prepared once per connection when the pool opens it, then executed by
    /// handle: the fastest, and what a direct connection should use.
    Prepared,
    /// Sent with every execution as the unnamed statement (Parse, Bind,
    /// Execute in one round trip): what a transaction-pooling PgBouncer
    /// older than 1.21 (Debian's 1.18) or RDS Proxy can carry, since a named
    /// statement lives on one server connection only. PostgreSQL plans the
    /// unnamed statement for its parameters every time.
    Unnamed,
}

/// What the connections of one pool are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Every query but those planned per call; their statements prepared in
    /// prepared mode.
    Default,
    /// Sessions with `plan_cache_mode = force_custom_plan`, for the queries
    /// planned per call ([`Query::plans_per_call`]), prepared there.
    PerCallPlans,
}

impl Sessions {
    /// The statements a connection of these sessions prepares when it opens.
    pub fn prepared(self, mode: StatementMode) -> &'static [Query] {
        match (mode, self) {
            (StatementMode::Unnamed, _) => &[],
            (StatementMode::Prepared, Sessions::Default) => {
                &[Query::Types, Query::Contact, Query::Page]
            }
            (StatementMode::Prepared, Sessions::PerCallPlans) => &[Query::PageStarts],
        }
    }

    /// The `SET …` a connection of these sessions sends when it opens, or
    /// empty. A `SET` after connect rather than a startup option, which
    /// PgBouncer refuses; none in unnamed mode, where a transaction pooler
    /// would not keep it (set the timeout on the role: `sql/roles.sql`).
    pub fn settings(self, mode: StatementMode, statement_timeout_ms: u128) -> String {
        match (mode, self) {
            (StatementMode::Unnamed, _) => String::new(),
            (StatementMode::Prepared, Sessions::Default) => {
                format!("SET statement_timeout = {statement_timeout_ms}")
            }
            (StatementMode::Prepared, Sessions::PerCallPlans) => format!(
                "SET statement_timeout = {statement_timeout_ms}; SET plan_cache_mode = force_custom_plan"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_has_as_many_parameter_types_as_placeholders() {
        for query in [Query::Types, Query::Contact, Query::Page, Query::PageStarts] {
            let placeholders = (1..=9)
                .filter(|n| query.sql().contains(&format!("${n}")))
                .count();
            assert_eq!(placeholders, query.parameter_types().len(), "{query:?}");
            assert!(query.index() < QUERIES);
        }
    }

    #[test]
    fn a_query_planned_per_call_is_prepared_only_on_sessions_that_plan_per_call() {
        for query in Sessions::Default.prepared(StatementMode::Prepared) {
            assert!(!query.plans_per_call(), "{query:?}");
        }
        for query in Sessions::PerCallPlans.prepared(StatementMode::Prepared) {
            assert!(query.plans_per_call(), "{query:?}");
        }
        assert!(
            Sessions::PerCallPlans
                .settings(StatementMode::Prepared, 5000)
                .contains("force_custom_plan")
        );
    }
}
