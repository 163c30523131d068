//! The single writer thread and its group commit.

use std::collections::HashMap;
use std::sync::mpsc;

use assent_core::crypto::Hash32;
use assent_core::{ControllerId, LedgerEntry, merkle};
use assent_store::{AppendBatch, Appended, IdempotencyRecord, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::codec::{backend, hash32, seq_from_sql, seq_to_sql, to_json};
use crate::{CommitMode, SqliteOptions};

/// What the writer remembers within one transaction: the next sequence number per controller
/// (read from the table at first use, so another process's writes are never overrun) and the
/// right edge of each controller's Merkle tree (so completing a subtree rarely reads its left
/// child back).
#[derive(Debug, Default)]
pub(crate) struct SeqCache {
    next: HashMap<ControllerId, u64>,
    frontier: HashMap<ControllerId, Vec<Edge>>,
}

/// The newest node of one tree level, and the one before it (the left sibling of the newest
/// when the newest is a right child).
#[derive(Debug, Clone, Copy)]
struct Edge {
    index: u64,
    hash: Hash32,
    previous: Option<(u64, Hash32)>,
}

fn set_edge(levels: &mut Vec<Edge>, level: u8, index: u64, hash: Hash32) {
    let level = usize::from(level);
    if levels.len() <= level {
        levels.resize(level + 1, Edge { index: u64::MAX, hash: [0; 32], previous: None });
    }
    if let Some(edge) = levels.get_mut(level) {
        let previous = (edge.index != u64::MAX).then_some((edge.index, edge.hash));
        *edge = Edge { index, hash, previous };
    }
}

fn cached(levels: &[Edge], level: u8, index: u64) -> Option<Hash32> {
    let edge = levels.get(usize::from(level))?;
    if edge.index == index {
        return Some(edge.hash);
    }
    edge.previous.filter(|(i, _)| *i == index).map(|(_, h)| h)
}

impl SeqCache {
    fn next(&mut self, conn: &Connection, controller: &ControllerId) -> StoreResult<u64> {
        if let Some(next) = self.next.get(controller) {
            return Ok(*next);
        }
        let next = next_seq(conn, controller)?;
        self.next.insert(controller.clone(), next);
        Ok(next)
    }

    /// Forgets what a rolled-back job wrote.
    fn restore(&mut self, next: HashMap<ControllerId, u64>) {
        self.next = next;
        self.frontier.clear();
    }

    /// Records leaf `n` and returns the subtree hashes it completes, concatenated, to be
    /// stored in its row (`None` when it completes none).
    fn add_leaf(
        &mut self,
        conn: &Connection,
        controller: &ControllerId,
        n: u64,
        leaf: Hash32,
    ) -> StoreResult<Option<Vec<u8>>> {
        if !self.frontier.contains_key(controller) {
            self.frontier.insert(controller.clone(), Vec::new());
        }
        let Some(levels) = self.frontier.get_mut(controller) else { return Ok(None) };
        set_edge(levels, 0, n, leaf);
        let mut nodes: Option<Vec<u8>> = None;
        for (level, index) in merkle::completed_by(n) {
            let child = level - 1;
            let left = match cached(levels, child, 2 * index) {
                Some(h) => h,
                None => crate::read_node(conn, controller, child, 2 * index)?,
            };
            let right = match cached(levels, child, 2 * index + 1) {
                Some(h) => h,
                None => crate::read_node(conn, controller, child, 2 * index + 1)?,
            };
            let hash = merkle::node_hash(&left, &right);
            nodes.get_or_insert_with(|| Vec::with_capacity(64)).extend_from_slice(&hash);
            set_edge(levels, level, index, hash);
        }
        Ok(nodes)
    }
}

type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection, &mut SeqCache) -> (bool, Completion) + Send>;

#[derive(Debug)]
pub(crate) struct Writer {
    sender: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection, options: SqliteOptions) -> StoreResult<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("assent-sqlite-writer".into())
            .spawn(move || run(conn, receiver, options))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { sender })
    }

    /// Queues `job` and waits until the transaction holding it has committed (or failed).
    pub(crate) async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection, &mut SeqCache) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let boxed: Job = Box::new(move |conn, seqs| {
            let result = job(conn, seqs);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |committed| {
                // The caller may have gone away (client disconnected); the write stands anyway.
                let _ = reply.send(committed.and(result));
            });
            (ok, completion)
        });
        self.sender.send(boxed).map_err(|_| StoreError::Corrupt("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Corrupt("the SQLite writer dropped a request".into()))?
    }
}

fn run(conn: Connection, receiver: mpsc::Receiver<Job>, options: SqliteOptions) {
    let max_group = match options.commit_mode {
        CommitMode::Group => options.max_group.max(1),
        CommitMode::PerRequest => 1,
    };
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_group {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&conn, jobs);
    }
    // Every handle is gone: fold the WAL into the database so the next open (often an audit)
    // starts from one file.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn run_group(conn: &Connection, jobs: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = e.to_string();
        for job in jobs {
            // Never run the job outside a transaction: fail it instead.
            let completion = fail_without_running(job);
            completion(Err(StoreError::Corrupt(format!("could not begin a transaction: {message}"))));
        }
        return;
    }
    let mut seqs = SeqCache::default();
    if jobs.len() == 1 {
        run_alone(conn, jobs, &mut seqs);
        return;
    }
    let mut completions = Vec::with_capacity(jobs.len());
    // Set when a savepoint cannot be closed: the transaction's content is then unknown, so the
    // whole group is rolled back and failed rather than risk keeping a failed job's writes.
    let mut poisoned = false;
    let mut jobs = jobs.into_iter();
    for job in jobs.by_ref() {
        let before = seqs.next.clone();
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            completions.push(fail_with(job, e));
            poisoned = true;
            break;
        }
        let (ok, completion) = job(conn, &mut seqs);
        let closed = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            seqs.restore(before);
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        completions.push(completion);
        // SQLite rolls the whole transaction back by itself on some errors (I/O, full disk);
        // running on would start a fresh transaction that the next RELEASE commits.
        if let Err(e) = closed {
            tracing::error!(error = %e, "could not close a savepoint; failing the whole group");
            poisoned = true;
            break;
        }
        if conn.is_autocommit() {
            tracing::error!("the transaction ended under a job; failing the whole group");
            poisoned = true;
            break;
        }
    }
    // Jobs not yet run when the group was poisoned fail without running.
    for job in jobs {
        let completion = fail_without_running(job);
        completions.push(completion);
    }
    if poisoned {
        let _ = conn.execute_batch("ROLLBACK");
        completions
            .into_iter()
            .for_each(|c| c(Err(StoreError::Corrupt("a savepoint could not be closed; nothing was written".into()))));
        return;
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => completions.into_iter().for_each(|c| c(Ok(()))),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; every job in it fails");
            let _ = conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            completions.into_iter().for_each(|c| c(Err(StoreError::Corrupt(format!("commit failed: {message}")))));
        }
    }
}

/// A group of one needs no savepoint: the transaction itself is the unit of rollback.
fn run_alone(conn: &Connection, jobs: Vec<Job>, seqs: &mut SeqCache) {
    for job in jobs {
        let (ok, completion) = job(conn, seqs);
        let outcome = if ok { conn.execute_batch("COMMIT") } else { conn.execute_batch("ROLLBACK") };
        match outcome {
            Ok(()) => completion(Ok(())),
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                completion(Err(StoreError::Corrupt(format!("commit failed: {e}"))));
            }
        }
    }
}

/// Builds the completion of a job that could not be started, without running it.
fn fail_without_running(job: Job) -> Completion {
    // A job's completion only exists once it has run; to fail it unrun we run it against a
    // closed-over in-memory database, whose effects vanish. Cheaper paths are not worth it for
    // an error this rare.
    match Connection::open_in_memory() {
        Ok(scratch) => job(&scratch, &mut SeqCache::default()).1,
        Err(_) => Box::new(|_| {}),
    }
}

fn fail_with(job: Job, e: rusqlite::Error) -> Completion {
    let completion = fail_without_running(job);
    let message = e.to_string();
    Box::new(move |_| completion(Err(StoreError::Corrupt(format!("savepoint failed: {message}")))))
}

pub(crate) fn next_seq(conn: &Connection, controller: &ControllerId) -> StoreResult<u64> {
    let next: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM ledger WHERE controller = ?1")
        .and_then(|mut s| s.query_row([controller.as_str()], |r| r.get(0)))
        .map_err(backend)?;
    seq_from_sql(next)
}

pub(crate) fn find_idempotency(
    conn: &Connection,
    controller: &ControllerId,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    let row = conn
        .prepare_cached("SELECT request_hash, first_seq, count FROM idempotency WHERE controller = ?1 AND key = ?2")
        .and_then(|mut s| {
            s.query_row(params![controller.as_str(), key], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .optional()
        })
        .map_err(backend)?;
    row.map(|(hash, first_seq, count)| {
        Ok(IdempotencyRecord {
            key: key.to_owned(),
            request_hash: hash32(&hash, "request_hash")?,
            first_seq: seq_from_sql(first_seq)?,
            count: seq_from_sql(count)?,
        })
    })
    .transpose()
}

pub(crate) fn append(conn: &Connection, seqs: &mut SeqCache, batch: &AppendBatch) -> StoreResult<Appended> {
    let controller = batch.controller.as_str();
    let first_seq = seqs.next(conn, &batch.controller)?;

    if let Some(claim) = &batch.idempotency {
        if let Some(existing) = find_idempotency(conn, &batch.controller, &claim.key)? {
            return Err(StoreError::IdempotencyKeyUsed(existing));
        }
        conn.prepare_cached(
            "INSERT INTO idempotency (controller, key, request_hash, first_seq, count) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                controller,
                claim.key,
                &claim.request_hash[..],
                seq_to_sql(first_seq).unwrap_or(i64::MAX),
                i64::try_from(batch.entries.len()).unwrap_or(i64::MAX)
            ])
        })
        .map_err(backend)?;
    }

    // Whom an erasure erases, for the outbox row: read before the record goes.
    let mut erased_id: Option<String> = None;
    if let Some(number) = batch.erase_subject {
        let number = seq_to_sql(number)?;
        erased_id = conn
            .prepare_cached("SELECT id FROM subjects WHERE controller = ?1 AND number = ?2")
            .and_then(|mut s| s.query_row(params![controller, number], |r| r.get(0)).optional())
            .map_err(backend)?;
        let mut erased = 0;
        // Idempotency fingerprints cover the subject id: drop every one whose events are theirs.
        conn.prepare_cached(
            "DELETE FROM idempotency WHERE controller = ?1 AND EXISTS (
                SELECT 1 FROM ledger l WHERE l.controller = ?1 AND l.subject_no = ?2
                  AND l.seq >= idempotency.first_seq AND l.seq < idempotency.first_seq + idempotency.count)",
        )
        .and_then(|mut s| s.execute(params![controller, number]))
        .map_err(backend)?;
        for sql in [
            "DELETE FROM subjects WHERE controller = ?1 AND number = ?2",
            "DELETE FROM evidence WHERE controller = ?1 AND subject_no = ?2",
            "DELETE FROM consent_state WHERE controller = ?1 AND subject_no = ?2",
        ] {
            let deleted =
                conn.prepare_cached(sql).and_then(|mut s| s.execute(params![controller, number])).map_err(backend)?;
            if erased == 0 {
                erased = deleted;
            }
        }
        if erased == 0 {
            return Err(StoreError::NotFound(format!("subject number {number}")));
        }
    }

    {
        let mut insert_subject = conn
            .prepare_cached(
                "INSERT INTO subjects (controller, number, id, secret, pseudonym, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (controller, number) DO NOTHING",
            )
            .map_err(backend)?;
        for subject in &batch.new_subjects {
            let inserted = insert_subject
                .execute(params![
                    controller,
                    seq_to_sql(subject.number)?,
                    subject.id.as_str(),
                    &subject.secret[..],
                    &subject.pseudonym.0[..],
                    subject.created_at.unix_millis()
                ])
                .map_err(backend)?;
            // The same pending subject may arrive twice (two requests racing on a new
            // customer); a different subject under the same number must never be dropped.
            if inserted == 0 {
                let number = seq_to_sql(subject.number)?;
                let existing: Vec<u8> = conn
                    .prepare_cached("SELECT pseudonym FROM subjects WHERE controller = ?1 AND number = ?2")
                    .and_then(|mut s| s.query_row(params![controller, number], |r| r.get(0)))
                    .map_err(backend)?;
                if existing != subject.pseudonym.0 {
                    return Err(StoreError::AlreadyExists(format!("subject number {}", subject.number)));
                }
            }
        }
    }

    let mut insert_entry = conn
        .prepare_cached(
            "INSERT INTO ledger (controller, seq, bytes, leaf_hash, subject_no, nodes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    let mut upsert_state = conn
        .prepare_cached(
            "INSERT INTO consent_state (controller, subject_no, purpose, subject, action, version, since, method, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (controller, subject_no, purpose) DO UPDATE SET
                action = excluded.action, version = excluded.version, since = excluded.since,
                method = excluded.method, seq = excluded.seq
             WHERE excluded.seq > consent_state.seq",
        )
        .map_err(backend)?;
    let mut insert_evidence = conn
        .prepare_cached("INSERT INTO evidence (controller, seq, subject_no, body) VALUES (?1, ?2, ?3, ?4)")
        .map_err(backend)?;
    let mut insert_outbox =
        conn.prepare_cached("INSERT INTO outbox (controller, seq, erased) VALUES (?1, ?2, ?3)").map_err(backend)?;
    let mut known_subjects: std::collections::HashSet<u64> = batch.new_subjects.iter().map(|s| s.number).collect();

    for (offset, new) in (0u64..).zip(&batch.entries) {
        let seq = seq_to_sql(first_seq + offset)?;
        let nodes = seqs.add_leaf(conn, &batch.controller, first_seq + offset, new.leaf_hash)?;
        let erased = matches!(new.entry, LedgerEntry::Erasure(_)).then_some(erased_id.as_deref()).flatten();
        insert_outbox.execute(params![controller, seq, erased]).map_err(backend)?;
        match &new.entry {
            LedgerEntry::Consent(event) => {
                let number = new
                    .subject_number
                    .ok_or_else(|| StoreError::Corrupt(format!("consent entry {seq} has no subject number")))?;
                // A subject erased while this write was on its way stays erased: its events would
                // otherwise bring back state and evidence with no one behind them.
                if !known_subjects.contains(&number) {
                    let number_sql = seq_to_sql(number)?;
                    let exists: bool = conn
                        .prepare_cached("SELECT EXISTS (SELECT 1 FROM subjects WHERE controller = ?1 AND number = ?2)")
                        .and_then(|mut s| s.query_row(params![controller, number_sql], |r| r.get(0)))
                        .map_err(backend)?;
                    if !exists {
                        return Err(StoreError::NotFound(format!("subject number {number}")));
                    }
                    known_subjects.insert(number);
                }
                let number = seq_to_sql(number)?;
                insert_entry
                    .execute(params![controller, seq, new.bytes, &new.leaf_hash[..], number, nodes])
                    .map_err(backend)?;
                upsert_state
                    .execute(params![
                        controller,
                        number,
                        event.purpose.as_str(),
                        &event.subject.0[..],
                        event.action.as_str(),
                        event.version,
                        event.recorded_at.unix_millis(),
                        event.method.as_str(),
                        seq
                    ])
                    .map_err(backend)?;
                if let Some(evidence) = &new.evidence {
                    insert_evidence.execute(params![controller, seq, number, evidence]).map_err(backend)?;
                }
            }
            LedgerEntry::Notice(_) | LedgerEntry::Erasure(_) => {
                // An erasure row keeps the erased number, so other readers of the ledger learn
                // whom it erased; the entry's bytes name no one.
                let erased = match &new.entry {
                    LedgerEntry::Erasure(_) => batch.erase_subject.map(seq_to_sql).transpose()?,
                    _ => None,
                };
                insert_entry
                    .execute(params![controller, seq, new.bytes, &new.leaf_hash[..], erased, nodes])
                    .map_err(backend)?;
            }
        }
    }

    for version in &batch.notice_versions {
        let body = to_json(version)?;
        let seq = seq_to_sql(batch.publication_seq(first_seq, version)?)?;
        let inserted = conn
            .prepare_cached(
                "INSERT INTO notice_versions (controller, purpose, version, seq, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![controller, version.purpose.as_str(), version.version, seq, body]))
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("{} version {}", version.purpose, version.version)));
        }
    }

    let count = u64::try_from(batch.entries.len()).map_err(|_| StoreError::Corrupt("batch too large".into()))?;
    seqs.next.insert(batch.controller.clone(), first_seq + count);
    Ok(Appended { first_seq, subject_numbers: batch.new_subjects.iter().map(|s| s.number).collect() })
}
