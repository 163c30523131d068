//! Group commit: one writer task per store, on a connection of its own.
//!
//! [`Writer::append`] queues its batch and waits. The task takes the first waiting batch and
//! whatever else is already queued (up to [`MAX_GROUP`]), and writes them all in one READ
//! COMMITTED transaction. When every batch of the group only records events (no erasure, no
//! notice), the group is checked with one read of each kind and written with one statement per
//! controller (`together.rs`); otherwise, or if that statement fails, each batch is written under
//! a savepoint of its own (`append::write`): a batch the store refuses is rolled back to its
//! savepoint alone, keeping its error for its caller, and the others go on. Either way a refused
//! batch gets the same error and takes no numbers. One COMMIT, one WAL flush, for the whole
//! group; only after it returns is each caller answered with its own result. If the COMMIT (or
//! the connection) fails, every caller in the group gets an error and the next group opens a new
//! connection.
//!
//! The first batch of a controller in a group locks its head row and reads the head and the
//! tree's right edge; later batches of the same controller continue from what the previous one
//! left (`append::GroupState`: the lock is held until the group ends, so nothing else can move
//! them). Numbers stay gapless within the group and, through the row lock, across nodes. Batches
//! are written in controller order (stable, so one controller's batches keep their queue order):
//! two nodes' groups then lock head rows in the same order and do not deadlock on them.
//!
//! A deadlock or serialization failure anywhere rolls the whole transaction back and runs the
//! group again, at most [`MAX_ATTEMPTS`] times.

use std::sync::Arc;

use assent_store::{AppendBatch, Appended, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::codec::is_transient;
use crate::pool::{Conn, Pool, Tx};
use crate::{append, feed, together};

/// The most batches one transaction writes. Each batch's savepoint becomes a subtransaction with
/// an XID of its own, and PostgreSQL caches 64 of those per session
/// (`PGPROC_MAX_CACHED_SUBXIDS`): past that, every other session's snapshot checks fall back to
/// reading `pg_subtrans` while the group is open.
pub(crate) const MAX_GROUP: usize = 64;

/// How many times a group that hit a deadlock or serialization failure is run again. Neither
/// should happen (appends to one controller queue on its head row, and groups lock heads in
/// controller order), but both are PostgreSQL's answer to "try again", not a failure.
const MAX_ATTEMPTS: u32 = 5;

const SAVEPOINT: &str = "SAVEPOINT batch";
/// After a batch succeeded: fold its savepoint into the transaction and open the next one, in
/// one round trip.
const NEXT_SAVEPOINT: &str = "RELEASE SAVEPOINT batch; SAVEPOINT batch";
/// After a batch failed; the savepoint stays, ready for the next batch.
const ROLLBACK_BATCH: &str = "ROLLBACK TO SAVEPOINT batch";

struct Request {
    batch: Arc<AppendBatch>,
    reply: oneshot::Sender<StoreResult<Appended>>,
}

/// The queue into a store's writer task. The task ends when every clone of this is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Request>,
}

impl Writer {
    /// Spawns the writer task on the current Tokio runtime, writing on `conn` (and on new
    /// connections from `pool`'s config after a failure).
    pub(crate) fn spawn(pool: Arc<Pool>, conn: Conn, channel: String) -> Self {
        let (queue, requests) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(pool, Some(conn), channel, requests));
        Self { queue }
    }

    /// Writes `batch` with whatever else is waiting; returns once its group has committed.
    pub(crate) async fn append(&self, batch: Arc<AppendBatch>) -> StoreResult<Appended> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request { batch, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the PostgreSQL writer task has stopped".into())
}

async fn run(pool: Arc<Pool>, mut conn: Option<Conn>, channel: String, mut requests: mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while requests.recv_many(&mut group, MAX_GROUP).await > 0 {
        // A caller that stopped waiting (its request was cancelled) is not written for.
        group.retain(|r: &Request| !r.reply.is_closed());
        group.sort_by(|a, b| a.batch.controller.as_str().cmp(b.batch.controller.as_str()));
        let batches: Vec<Arc<AppendBatch>> = group.iter().map(|r| Arc::clone(&r.batch)).collect();
        match commit_group(&pool, &mut conn, &batches, &channel).await {
            Ok(results) => {
                for (request, result) in group.drain(..).zip(results) {
                    // The caller may have gone meanwhile; its batch is committed all the same.
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = group.len(), "a group of appends failed; reconnecting");
                // Whatever state the connection is in, the next group starts on a fresh one.
                conn = None;
                let message = e.to_string();
                for request in group.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Backend(format!("the append's group commit failed: {message}").into())));
                }
            }
        }
        group.clear();
    }
}

/// Writes and commits `batches` in one transaction, running it again after a transient
/// conflict. `Ok` holds one result per batch, in order, all committed; `Err` means none were.
async fn commit_group(
    pool: &Pool,
    conn: &mut Option<Conn>,
    batches: &[Arc<AppendBatch>],
    channel: &str,
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let mut attempt = 1;
    loop {
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            *conn = Some(pool.connect().await?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(StoreError::Corrupt("the writer's connection vanished".into()));
        };
        match commit_once(c, batches, channel).await {
            Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                tracing::warn!(error = %e, attempt, "a group of appends hit a transient conflict; running it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn commit_once(
    conn: &mut Conn,
    batches: &[Arc<AppendBatch>],
    channel: &str,
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let mut tx = conn.transaction().await?;
    match write_all(&mut tx, batches, channel).await {
        Ok(results) => tx.commit().await.map(|()| results),
        Err(e) => {
            // Waited for, so the head rows are unlocked for other nodes before a retry.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed group of appends failed");
            }
            Err(e)
        }
    }
}

/// Each batch under its savepoint: a refused batch is rolled back to it and its error kept. An
/// error from the savepoint statements themselves (a broken connection) or a transient
/// conflict fails the whole transaction.
async fn write_each(tx: &mut Tx<'_>, batches: &[Arc<AppendBatch>]) -> StoreResult<Vec<StoreResult<Appended>>> {
    let mut results = Vec::with_capacity(batches.len());
    let mut group = append::GroupState::default();
    let mut before_next = Some(SAVEPOINT);
    for batch in batches {
        if let Some(sql) = before_next {
            tx.batch_execute(sql).await?;
        }
        match append::write(tx, batch, &mut group).await {
            Ok(appended) => {
                results.push(Ok(appended));
                before_next = Some(NEXT_SAVEPOINT);
            }
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                // Needed before anything else, COMMIT included: after a failed statement the
                // transaction is aborted, and a COMMIT would silently roll every batch back.
                tx.batch_execute(ROLLBACK_BATCH).await?;
                results.push(Err(e));
                before_next = None;
            }
        }
    }
    Ok(results)
}

/// The fast path for the whole group, one controller after another, under a savepoint of its
/// own: on any error it is rolled back whole, and the caller writes the group batch by batch.
async fn write_together(tx: &mut Tx<'_>, batches: &[Arc<AppendBatch>]) -> StoreResult<Vec<StoreResult<Appended>>> {
    tx.batch_execute("SAVEPOINT together").await?;
    let mut results = Vec::with_capacity(batches.len());
    let mut rest = batches;
    while let Some(first) = rest.first() {
        let same = rest.iter().take_while(|b| b.controller == first.controller).count();
        let (run, after) = rest.split_at(same);
        match together::write(tx, first.controller.as_str(), run).await {
            Ok(written) => results.extend(written),
            Err(e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT together; RELEASE SAVEPOINT together").await?;
                return Err(e);
            }
        }
        rest = after;
    }
    tx.batch_execute("RELEASE SAVEPOINT together").await?;
    Ok(results)
}

/// The group's batches, with the one-statement fast path (`together.rs`) when every batch may
/// take it, else (or if it fails) each under its savepoint; then the notification, which
/// PostgreSQL delivers only if the transaction commits.
async fn write_all(
    tx: &mut Tx<'_>,
    batches: &[Arc<AppendBatch>],
    channel: &str,
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let all_eligible = batches.len() > 1 && batches.iter().all(|b| together::eligible(b));
    let results = if all_eligible {
        match write_together(tx, batches).await {
            Ok(results) => results,
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "a group failed as a whole; writing its batches one by one");
                write_each(tx, batches).await?
            }
        }
    } else {
        write_each(tx, batches).await?
    };
    // Delivered to every listening node when, and only if, the group commits.
    let mut grown: Vec<String> = batches
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .map(|(batch, _)| format!("{}{}", feed::LEDGER, batch.controller))
        .collect();
    grown.dedup();
    if !grown.is_empty() {
        tx.execute("SELECT pg_notify($1, payload) FROM UNNEST($2::TEXT[]) AS payload", &[&channel, &grown]).await?;
    }
    Ok(results)
}
