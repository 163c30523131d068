//! Embedded, ordered schema migrations, tracked in `PRAGMA user_version`.

use assent_store::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::codec::backend;

const MIGRATIONS: &[&str] =
    &[include_str!("../migrations/0001_init.sql"), include_str!("../migrations/0002_outbox.sql")];

pub(crate) fn run(conn: &mut Connection) -> StoreResult<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    let applied = usize::try_from(applied).map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {applied} is newer than this build of Assent knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1)).map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}
