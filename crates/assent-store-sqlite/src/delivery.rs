//! The outbox, destinations and deliveries: the SQL behind the `Store` delivery methods.

use assent_core::{ControllerId, PurposeId, SubjectId, Timestamp};
use assent_store::{
    Delivery, DeliveryFilter, Destination, DestinationKind, OutboxEntry, Progress, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{backend, from_json, hash32, seq_from_sql, seq_to_sql, to_json};

pub(crate) fn outbox(
    conn: &Connection,
    controller: &ControllerId,
    from: u64,
    limit: u64,
) -> StoreResult<Vec<OutboxEntry>> {
    // A consent's subject comes from the live record (gone once erased); an erasure's from the
    // outbox row.
    let mut stmt = conn
        .prepare_cached(
            "SELECT o.seq, l.bytes, l.leaf_hash, COALESCE(o.erased, s.id)
             FROM outbox o JOIN ledger l ON l.controller = o.controller AND l.seq = o.seq
             LEFT JOIN subjects s ON s.controller = l.controller AND s.number = l.subject_no
             WHERE o.controller = ?1 AND o.seq >= ?2 ORDER BY o.seq LIMIT ?3",
        )
        .map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![controller.as_str(), seq_to_sql(from)?, limit]).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let leaf: Vec<u8> = row.get(2).map_err(backend)?;
        let subject: Option<String> = row.get(3).map_err(backend)?;
        out.push(OutboxEntry {
            seq: seq_from_sql(row.get(0).map_err(backend)?)?,
            bytes: row.get(1).map_err(backend)?,
            leaf_hash: hash32(&leaf, "leaf_hash")?,
            subject: subject.map(|s| SubjectId::parse(&s).map_err(StoreError::Corrupt)).transpose()?,
        });
    }
    Ok(out)
}

pub(crate) fn prune(conn: &Connection, controller: &ControllerId, below: u64) -> StoreResult<u64> {
    let below = seq_to_sql(below)?;
    let n = conn
        .prepare_cached("DELETE FROM outbox WHERE controller = ?1 AND seq < ?2")
        .and_then(|mut s| s.execute(params![controller.as_str(), below]))
        .map_err(backend)?;
    Ok(n as u64)
}

pub(crate) fn create(conn: &Connection, d: &Destination) -> StoreResult<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO destinations (id, controller, kind, url, secret, purposes, created_at, cursor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                d.id,
                d.controller.as_str(),
                d.kind.as_str(),
                d.url,
                d.secret,
                to_json(&d.purposes).unwrap_or_default(),
                d.created_at.unix_millis(),
                seq_to_sql(d.progress.cursor).unwrap_or(i64::MAX),
            ])
        })
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(d.id.clone()));
    }
    Ok(())
}

const DESTINATION_COLUMNS: &str = "id, controller, kind, url, secret, purposes, created_at, cursor, attempts, first_failure, next_attempt, last_error";

pub(crate) fn list(conn: &Connection, controller: Option<&ControllerId>) -> StoreResult<Vec<Destination>> {
    let sql = match controller {
        Some(_) => {
            format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE controller = ?1 ORDER BY created_at, id")
        }
        None => format!("SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY controller, created_at, id"),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let mut rows = match controller {
        Some(c) => stmt.query([c.as_str()]),
        None => stmt.query([]),
    }
    .map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        out.push(destination(row)?);
    }
    Ok(out)
}

fn destination(row: &Row<'_>) -> StoreResult<Destination> {
    let text = |i: usize| -> StoreResult<String> { row.get(i).map_err(backend) };
    let time = |i: usize| -> StoreResult<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(i).map_err(backend)?.map(Timestamp::from_unix_millis))
    };
    let purposes: Vec<PurposeId> = from_json(&text(5)?)?;
    Ok(Destination {
        id: text(0)?,
        controller: ControllerId::parse(&text(1)?).map_err(StoreError::Corrupt)?,
        kind: DestinationKind::parse(&text(2)?).map_err(StoreError::Corrupt)?,
        url: text(3)?,
        secret: row.get(4).map_err(backend)?,
        purposes,
        created_at: Timestamp::from_unix_millis(row.get(6).map_err(backend)?),
        progress: Progress {
            cursor: seq_from_sql(row.get(7).map_err(backend)?)?,
            attempts: u32::try_from(row.get::<_, i64>(8).map_err(backend)?).unwrap_or(u32::MAX),
            first_failure: time(9)?,
            next_attempt: time(10)?,
            last_error: row.get(11).map_err(backend)?,
        },
    })
}

pub(crate) fn delete(conn: &Connection, controller: &ControllerId, id: &str) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("DELETE FROM destinations WHERE controller = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![controller.as_str(), id]))
        .map_err(backend)?;
    Ok(n > 0)
}

pub(crate) fn advance(
    conn: &Connection,
    id: &str,
    expected: u64,
    progress: &Progress,
    deliveries: &[Delivery],
) -> StoreResult<()> {
    let expected = seq_to_sql(expected)?;
    let updated = conn
        .prepare_cached(
            "UPDATE destinations SET cursor = ?2, attempts = ?3, first_failure = ?4, next_attempt = ?5, last_error = ?6
             WHERE id = ?1 AND cursor = ?7",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                seq_to_sql(progress.cursor).unwrap_or(i64::MAX),
                i64::from(progress.attempts),
                progress.first_failure.map(Timestamp::unix_millis),
                progress.next_attempt.map(Timestamp::unix_millis),
                progress.last_error,
                expected,
            ])
        })
        .map_err(backend)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("destination `{id}` at its expected cursor")));
    }
    let controller: String = conn
        .prepare_cached("SELECT controller FROM destinations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)))
        .map_err(backend)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO deliveries (destination, seq, controller, committed_at, delivered_at, acked_at, attempts, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )
        .map_err(backend)?;
    for d in deliveries {
        insert
            .execute(params![
                d.destination,
                seq_to_sql(d.seq)?,
                controller,
                d.committed_at.unix_millis(),
                d.delivered_at.map(Timestamp::unix_millis),
                d.acked_at.map(Timestamp::unix_millis),
                i64::from(d.attempts),
                d.error,
            ])
            .map_err(backend)?;
    }
    Ok(())
}

const DELIVERY_COLUMNS: &str = "destination, seq, committed_at, delivered_at, acked_at, attempts, error";

/// A deliveries row as SQLite gives it, before conversion (which can fail outside rusqlite).
type DeliveryRow = (String, i64, i64, Option<i64>, Option<i64>, i64, Option<String>);

fn delivery(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
}

fn to_delivery(r: DeliveryRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        destination: r.0,
        seq: seq_from_sql(r.1)?,
        committed_at: Timestamp::from_unix_millis(r.2),
        delivered_at: r.3.map(Timestamp::from_unix_millis),
        acked_at: r.4.map(Timestamp::from_unix_millis),
        attempts: u32::try_from(r.5).unwrap_or(u32::MAX),
        error: r.6,
    })
}

pub(crate) fn ack(
    conn: &Connection,
    controller: &ControllerId,
    destination: &str,
    seq: u64,
    at: Timestamp,
) -> StoreResult<Option<Delivery>> {
    let seq = seq_to_sql(seq)?;
    conn.prepare_cached(
        "UPDATE deliveries SET acked_at = ?4
         WHERE controller = ?1 AND destination = ?2 AND seq = ?3 AND acked_at IS NULL AND delivered_at IS NOT NULL",
    )
    .and_then(|mut s| s.execute(params![controller.as_str(), destination, seq, at.unix_millis()]))
    .map_err(backend)?;
    conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE controller = ?1 AND destination = ?2 AND seq = ?3"
    ))
    .and_then(|mut s| s.query_row(params![controller.as_str(), destination, seq], delivery).optional())
    .map_err(backend)?
    .map(to_delivery)
    .transpose()
}

pub(crate) fn list_deliveries(
    conn: &Connection,
    destination: &str,
    filter: DeliveryFilter,
    limit: u64,
) -> StoreResult<Vec<Delivery>> {
    let condition = match filter {
        DeliveryFilter::All => "",
        DeliveryFilter::Dead => "AND delivered_at IS NULL",
        DeliveryFilter::Unacknowledged => "AND delivered_at IS NOT NULL AND acked_at IS NULL",
        DeliveryFilter::Acknowledged => "AND acked_at IS NOT NULL",
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE destination = ?1 {condition} ORDER BY seq DESC LIMIT ?2"
        ))
        .map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![destination, limit], delivery).map_err(backend)?;
    rows.map(|r| r.map_err(backend).and_then(to_delivery)).collect()
}
