//! Conversions between Rust values and SQLite columns.

use assent_core::event::{Action, Method, Pseudonym};
use assent_core::{ConsentState, ControllerId, PurposeId, Timestamp};
use assent_store::{StoreError, StoreResult, StoredCheckpoint, StoredState};
use rusqlite::Connection;

pub(crate) use assent_store::codec::{from_json, hash32, seq_from_sql, seq_to_sql, to_json};

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn load_states(conn: &Connection, controller: &ControllerId) -> StoreResult<Vec<StoredState>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT subject, purpose, action, version, since, method, seq FROM consent_state WHERE controller = ?1",
        )
        .map_err(backend)?;
    let mut rows = stmt.query([controller.as_str()]).map_err(backend)?;
    let mut out = Vec::new();
    // Columns are borrowed rather than copied: the audit loads every state of a controller.
    while let Some(r) = rows.next().map_err(backend)? {
        let text = |i: usize| r.get_ref(i).and_then(|v| v.as_str().map_err(Into::into)).map_err(backend);
        let subject = r.get_ref(0).and_then(|v| v.as_blob().map_err(Into::into)).map_err(backend)?;
        let version: Option<i64> = r.get(3).map_err(backend)?;
        out.push(StoredState {
            subject: Pseudonym(hash32(subject, "subject")?),
            purpose: PurposeId::parse(text(1)?).map_err(StoreError::Corrupt)?,
            state: ConsentState {
                action: Action::parse(text(2)?).map_err(StoreError::Corrupt)?,
                version: version
                    .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("version out of range".into())))
                    .transpose()?,
                since: Timestamp::from_unix_millis(r.get(4).map_err(backend)?),
                method: Method::parse_any(text(5)?).map_err(StoreError::Corrupt)?,
                seq: seq_from_sql(r.get(6).map_err(backend)?)?,
            },
        });
    }
    Ok(out)
}

pub(crate) fn read_checkpoints(
    conn: &Connection,
    sql: &str,
    controller: &ControllerId,
) -> StoreResult<Vec<StoredCheckpoint>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map([controller.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (size, root, note, signed_at) = row.map_err(backend)?;
        Ok(StoredCheckpoint {
            tree_size: seq_from_sql(size)?,
            root: hash32(&root, "checkpoint root")?,
            note,
            signed_at: Timestamp::from_unix_millis(signed_at),
        })
    })
    .collect()
}
