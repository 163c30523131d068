//! Conversions between Rust values and PostgreSQL columns, and driver errors into store errors.

use assent_core::event::{Action, Method, Pseudonym};
use assent_core::{ConsentState, PurposeId, Timestamp};
use assent_store::{StoreError, StoreResult, StoredCheckpoint, StoredEntry, StoredState, SubjectRecord};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;

pub(crate) use assent_store::codec::{from_json, hash32, seq_from_sql, seq_to_sql, to_json};

/// A driver error as a store error. A unique violation means the row is already there: it
/// becomes [`StoreError::AlreadyExists`] naming the constraint (never the key's value, which may
/// be a secret's hash). Everything else is the backend failing.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let what = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("row").to_owned();
        return StoreError::AlreadyExists(what);
    }
    StoreError::Backend(Box::new(e))
}

/// Whether running the same transaction again may succeed: a serialization failure or a
/// deadlock, after which PostgreSQL has rolled the transaction back.
pub(crate) fn is_transient(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else { return false };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|code| *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Column `i` of `row`; a type mismatch means the schema is not the one this build wrote.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

/// A range bound as a BIGINT: values past what PostgreSQL can hold clamp to its largest.
pub(crate) fn bound_to_sql(bound: u64) -> i64 {
    i64::try_from(bound).unwrap_or(i64::MAX)
}

/// A row of `SELECT seq, bytes, leaf_hash, nodes, subject_no FROM ledger`.
pub(crate) fn entry(row: &Row) -> StoreResult<StoredEntry> {
    let seq: i64 = get(row, 0)?;
    let leaf: &[u8] = get(row, 2)?;
    let nodes: Option<&[u8]> = get(row, 3)?;
    let nodes = nodes.unwrap_or_default();
    if !nodes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!("entry {seq}: stored subtree hashes are not whole")));
    }
    Ok(StoredEntry {
        seq: seq_from_sql(seq)?,
        bytes: get(row, 1)?,
        leaf_hash: hash32(leaf, "leaf_hash")?,
        nodes: nodes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect(),
        subject_number: get::<Option<i64>>(row, 4)?.map(seq_from_sql).transpose()?,
    })
}

/// A row of `SELECT id, secret, pseudonym, created_at, number FROM subjects`.
pub(crate) fn subject(row: &Row) -> StoreResult<SubjectRecord> {
    Ok(SubjectRecord {
        number: seq_from_sql(get(row, 4)?)?,
        id: assent_core::SubjectId::parse(get(row, 0)?).map_err(StoreError::Corrupt)?,
        secret: hash32(get(row, 1)?, "secret")?,
        pseudonym: Pseudonym(hash32(get(row, 2)?, "pseudonym")?),
        created_at: assent_core::Timestamp::from_unix_millis(get(row, 3)?),
    })
}

/// A row of `SELECT subject, purpose, action, version, since, method, seq FROM consent_state`.
pub(crate) fn state(row: &Row) -> StoreResult<StoredState> {
    let subject: &[u8] = get(row, 0)?;
    let version: Option<i64> = get(row, 3)?;
    Ok(StoredState {
        subject: Pseudonym(hash32(subject, "subject")?),
        purpose: PurposeId::parse(get(row, 1)?).map_err(StoreError::Corrupt)?,
        state: ConsentState {
            action: Action::parse(get(row, 2)?).map_err(StoreError::Corrupt)?,
            version: version
                .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("version out of range".into())))
                .transpose()?,
            since: Timestamp::from_unix_millis(get(row, 4)?),
            method: Method::parse_any(get(row, 5)?).map_err(StoreError::Corrupt)?,
            seq: seq_from_sql(get(row, 6)?)?,
        },
    })
}

/// A row of `SELECT tree_size, root, note, signed_at FROM checkpoints`.
pub(crate) fn checkpoint(row: &Row) -> StoreResult<StoredCheckpoint> {
    let root: &[u8] = get(row, 1)?;
    Ok(StoredCheckpoint {
        tree_size: seq_from_sql(get(row, 0)?)?,
        root: hash32(root, "checkpoint root")?,
        note: get(row, 2)?,
        signed_at: Timestamp::from_unix_millis(get(row, 3)?),
    })
}
