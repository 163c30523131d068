//! The outbox, destinations, deliveries and leases: the SQL behind the `Store` delivery
//! methods (the tables are the SQLite backend's, in PostgreSQL types).

use assent_core::{ControllerId, PurposeId, SubjectId, Timestamp};
use assent_store::{
    Delivery, DeliveryFilter, Destination, DestinationKind, OutboxEntry, Progress, StoreError, StoreResult,
};
use tokio_postgres::Row;

use crate::codec::{from_json, get, hash32, seq_from_sql, seq_to_sql, to_json};
use crate::pool::Conn;

pub(crate) const OUTBOX: &str = "SELECT o.seq, l.bytes, l.leaf_hash, COALESCE(o.erased, s.id)
     FROM outbox o JOIN ledger l ON l.controller = o.controller AND l.seq = o.seq
     LEFT JOIN subjects s ON s.controller = l.controller AND s.number = l.subject_no
     WHERE o.controller = $1 AND o.seq >= $2 ORDER BY o.seq LIMIT $3";

pub(crate) fn outbox_entry(row: &Row) -> StoreResult<OutboxEntry> {
    let subject: Option<&str> = get(row, 3)?;
    Ok(OutboxEntry {
        seq: seq_from_sql(get(row, 0)?)?,
        bytes: get(row, 1)?,
        leaf_hash: hash32(get(row, 2)?, "leaf_hash")?,
        subject: subject.map(|s| SubjectId::parse(s).map_err(StoreError::Corrupt)).transpose()?,
    })
}

/// A row of `SELECT id, controller, kind, url, secret, purposes, created_at, cursor, attempts,
/// first_failure, next_attempt, last_error FROM destinations`.
pub(crate) fn destination(row: &Row) -> StoreResult<Destination> {
    let purposes: Vec<PurposeId> = from_json(get(row, 5)?)?;
    let time = |i: usize| -> StoreResult<Option<Timestamp>> {
        Ok(get::<Option<i64>>(row, i)?.map(Timestamp::from_unix_millis))
    };
    Ok(Destination {
        id: get(row, 0)?,
        controller: ControllerId::parse(get(row, 1)?).map_err(StoreError::Corrupt)?,
        kind: DestinationKind::parse(get(row, 2)?).map_err(StoreError::Corrupt)?,
        url: get(row, 3)?,
        secret: get(row, 4)?,
        purposes,
        created_at: Timestamp::from_unix_millis(get(row, 6)?),
        progress: Progress {
            cursor: seq_from_sql(get(row, 7)?)?,
            attempts: u32::try_from(get::<i64>(row, 8)?).unwrap_or(u32::MAX),
            first_failure: time(9)?,
            next_attempt: time(10)?,
            last_error: get(row, 11)?,
        },
    })
}

pub(crate) async fn create(conn: &mut Conn, d: &Destination) -> StoreResult<()> {
    let purposes = to_json(&d.purposes)?;
    let inserted = conn
        .execute(
            "INSERT INTO destinations (id, controller, kind, url, secret, purposes, created_at, cursor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &d.id,
                &d.controller.as_str(),
                &d.kind.as_str(),
                &d.url,
                &d.secret,
                &purposes,
                &d.created_at.unix_millis(),
                &seq_to_sql(d.progress.cursor)?,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(d.id.clone()));
    }
    Ok(())
}

pub(crate) async fn advance(
    conn: &mut Conn,
    id: &str,
    expected: u64,
    progress: &Progress,
    deliveries: &[Delivery],
) -> StoreResult<()> {
    let mut tx = conn.transaction().await?;
    let controller: Option<String> = tx
        .query_opt(
            "UPDATE destinations SET cursor = $2, attempts = $3, first_failure = $4, next_attempt = $5, last_error = $6
             WHERE id = $1 AND cursor = $7 RETURNING controller",
            &[
                &id,
                &seq_to_sql(progress.cursor)?,
                &i64::from(progress.attempts),
                &progress.first_failure.map(Timestamp::unix_millis),
                &progress.next_attempt.map(Timestamp::unix_millis),
                &progress.last_error,
                &seq_to_sql(expected)?,
            ],
        )
        .await?
        .map(|row| get(&row, 0))
        .transpose()?;
    let Some(controller) = controller else {
        return Err(StoreError::NotFound(format!("destination `{id}` at its expected cursor")));
    };
    if !deliveries.is_empty() {
        let seqs = deliveries.iter().map(|d| seq_to_sql(d.seq)).collect::<StoreResult<Vec<_>>>()?;
        let committed: Vec<i64> = deliveries.iter().map(|d| d.committed_at.unix_millis()).collect();
        let delivered: Vec<Option<i64>> =
            deliveries.iter().map(|d| d.delivered_at.map(Timestamp::unix_millis)).collect();
        let acked: Vec<Option<i64>> = deliveries.iter().map(|d| d.acked_at.map(Timestamp::unix_millis)).collect();
        let attempts: Vec<i64> = deliveries.iter().map(|d| i64::from(d.attempts)).collect();
        let errors: Vec<Option<&str>> = deliveries.iter().map(|d| d.error.as_deref()).collect();
        tx.execute(
            "INSERT INTO deliveries (destination, controller, seq, committed_at, delivered_at, acked_at, attempts, error)
             SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::TEXT[])
             ON CONFLICT DO NOTHING",
            &[&id, &controller, &seqs, &committed, &delivered, &acked, &attempts, &errors],
        )
        .await?;
    }
    tx.commit().await
}

/// A row of `SELECT destination, seq, committed_at, delivered_at, acked_at, attempts, error FROM
/// deliveries`.
pub(crate) fn delivery(row: &Row) -> StoreResult<Delivery> {
    Ok(Delivery {
        destination: get(row, 0)?,
        seq: seq_from_sql(get(row, 1)?)?,
        committed_at: Timestamp::from_unix_millis(get(row, 2)?),
        delivered_at: get::<Option<i64>>(row, 3)?.map(Timestamp::from_unix_millis),
        acked_at: get::<Option<i64>>(row, 4)?.map(Timestamp::from_unix_millis),
        attempts: u32::try_from(get::<i64>(row, 5)?).unwrap_or(u32::MAX),
        error: get(row, 6)?,
    })
}

pub(crate) fn filter_sql(filter: DeliveryFilter) -> &'static str {
    match filter {
        DeliveryFilter::All => {
            "SELECT destination, seq, committed_at, delivered_at, acked_at, attempts, error
             FROM deliveries WHERE destination = $1 ORDER BY seq DESC LIMIT $2"
        }
        DeliveryFilter::Dead => {
            "SELECT destination, seq, committed_at, delivered_at, acked_at, attempts, error
             FROM deliveries WHERE destination = $1 AND delivered_at IS NULL ORDER BY seq DESC LIMIT $2"
        }
        DeliveryFilter::Unacknowledged => {
            "SELECT destination, seq, committed_at, delivered_at, acked_at, attempts, error
             FROM deliveries WHERE destination = $1 AND delivered_at IS NOT NULL AND acked_at IS NULL
             ORDER BY seq DESC LIMIT $2"
        }
        DeliveryFilter::Acknowledged => {
            "SELECT destination, seq, committed_at, delivered_at, acked_at, attempts, error
             FROM deliveries WHERE destination = $1 AND acked_at IS NOT NULL ORDER BY seq DESC LIMIT $2"
        }
    }
}
