//! `bakeoff seed`: the schema of `sql/schema.sql` and the deterministic
//! sample data of `sql/seed.sql`, generated inside PostgreSQL by set-based
//! statements (no row-by-row inserts), so a million contacts take seconds.

use std::time::Instant;

use tokio_postgres::NoTls;

use crate::config::SeedConfig;

const SCHEMA_SQL: &str = include_str!("../sql/schema.sql");
const SEED_SQL: &str = include_str!("../sql/seed.sql");

/// [`run`] on a runtime of its own, for `main`.
pub fn run_blocking(config: &SeedConfig) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?
        .block_on(run(config))
}

/// Creates the schema and loads `config.contacts` contacts.
pub async fn run(config: &SeedConfig) -> Result<(), String> {
    let postgres: tokio_postgres::Config = config
        .database_url
        .parse()
        .map_err(|error| format!("invalid DATABASE_URL: {error}"))?;
    let started = Instant::now();
    let (client, connection) = postgres
        .connect(NoTls)
        .await
        .map_err(|error| format!("cannot connect to the database: {error}"))?;
    let connection = tokio::spawn(connection);

    client
        .batch_execute(&format!("SET client_min_messages = warning;\n{SCHEMA_SQL}"))
        .await
        .map_err(|error| format!("loading sql/schema.sql failed: {error}"))?;
    for statement in statements(SEED_SQL) {
        let result = if statement.contains("$1") {
            client.execute(statement, &[&config.contacts]).await
        } else {
            client.execute(statement, &[]).await
        };
        result.map_err(|error| format!("sql/seed.sql failed: {error}"))?;
    }

    drop(client);
    let _ = connection.await;
    eprintln!(
        "bakeoff: seeded {} contacts in {:.1} s",
        config.contacts,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The statements of a file whose statements each end with `;` at the end
/// of a line, without comment-only pieces.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(";\n").map(str::trim).filter(|statement| {
        statement
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_file_splits_into_its_statements() {
        let pieces: Vec<&str> = statements(SEED_SQL).collect();
        assert!(pieces[0].contains("TRUNCATE"), "{}", pieces[0]);
        assert!(pieces.iter().all(|piece| !piece.ends_with(';')));
        assert!(pieces.last().unwrap().contains("ANALYZE"));
        assert_eq!(
            pieces
                .iter()
                .filter(|piece| piece.contains("INSERT"))
                .count(),
            6
        );
    }
}
