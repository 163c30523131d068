//! Embedded, ordered schema migrations, recorded in the schema's `schema_migrations` table.
//!
//! All of it runs in one transaction that first takes a transaction-scoped advisory lock keyed
//! by the schema name: nodes starting together queue on the lock, and each one after the first
//! finds the work done. A failed migration rolls back whole, its record included.

use assent_store::{StoreError, StoreResult};
use tokio_postgres::Client;

use crate::codec::{db, get};

/// `(version, name, SQL)`, in order. Applied migrations are never edited: a change is a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init", include_str!("../migrations/0001_init.sql")),
    (2, "0002_nodes", include_str!("../migrations/0002_nodes.sql")),
    (3, "0003_outbox", include_str!("../migrations/0003_outbox.sql")),
];

/// First key of the migration lock ("ASNT"); the second is `hashtext(schema)`.
const LOCK_CLASS: i32 = 0x4153_4E54;

/// Creates `schema` if missing and applies the migrations it lacks. The connection's
/// `search_path` must already name `schema` (the migration SQL is unqualified).
pub(crate) async fn run(client: &mut Client, schema: &str) -> StoreResult<()> {
    let quoted = crate::quote_ident(schema);
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_CLASS, &schema]).await.map_err(db)?;
    // Checked first rather than `CREATE SCHEMA IF NOT EXISTS`, which demands the CREATE
    // privilege on the database even when the schema exists (a role given only its schema).
    let exists: bool = get(
        &tx.query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&schema]).await.map_err(db)?,
        0,
    )?;
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {quoted}")).await.map_err(db)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )"
    ))
    .await
    .map_err(db)?;
    let applied: Vec<i64> = tx
        .query(&format!("SELECT version FROM {quoted}.schema_migrations ORDER BY version"), &[])
        .await
        .map_err(db)?
        .iter()
        .map(|row| get(row, 0))
        .collect::<StoreResult<_>>()?;
    let known = MIGRATIONS.iter().map(|(version, _, _)| *version).collect::<Vec<_>>();
    if let Some(unknown) = applied.iter().find(|version| !known.contains(version)) {
        return Err(StoreError::Corrupt(format!(
            "schema `{schema}` has migration {unknown}, which this build of Assent does not know: it was \
             migrated by a newer version"
        )));
    }
    let record = format!("INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)");
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(schema, migration = name, "applying PostgreSQL migration");
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(&record, &[version, name]).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
