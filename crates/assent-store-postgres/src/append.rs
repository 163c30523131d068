//! Writing one append batch, and reading stored Merkle nodes.
//!
//! A batch is written inside the writer's READ COMMITTED group transaction (see `writer.rs`),
//! under a savepoint of its own:
//! 1. lock the controller's `ledger_heads` row (`SELECT ... FOR UPDATE`, creating the row first
//!    if it is missing): every other append to that controller, from this node or another, now
//!    waits for this transaction to end, so the head's `next_seq` is this batch's first number;
//! 2. erase the subject, if asked, as the SQLite writer does;
//! 3. read what the checks need (idempotency key, customers by id, referenced customers, the
//!    tree's right edge) and run them (`plan.rs`, the same plan the group fast path uses): a
//!    refused batch is answered here; new customers get their numbers from the head row;
//! 4. in one statement (data-modifying CTEs), insert the new subjects, the entries, their
//!    outbox rows, consent states and evidence, and move the head past the batch: a single
//!    event waits on round trips, not on rows; then the notice versions, if any;
//! 5. the writer releases the savepoint, and commits once for the whole group (with
//!    `synchronous_commit` on: durable when it returns).
//!
//! An error rolls the batch back to its savepoint, head included, so numbers stay gapless.

use std::collections::HashMap;

use assent_core::crypto::Hash32;
use assent_core::merkle;
use assent_store::{AppendBatch, Appended, IdempotencyRecord, StoreError, StoreResult};
use tokio_postgres::Row;

use crate::codec::{get, hash32, seq_from_sql, seq_to_sql, to_json};
use crate::plan::{Plan, read_known};
use crate::pool::Tx;

const SELECT_HEAD: &str = "SELECT next_seq, next_subject FROM ledger_heads WHERE controller = $1 FOR UPDATE";

/// A controller's head row: the next sequence number and the next subject number.
pub(crate) struct Head {
    pub(crate) next_seq: u64,
    pub(crate) next_subject: u64,
}

fn head(row: &Row) -> StoreResult<Head> {
    Ok(Head { next_seq: seq_from_sql(get(row, 0)?)?, next_subject: seq_from_sql(get(row, 1)?)? })
}

/// Locks the controller's head row and returns it.
pub(crate) async fn lock_head(tx: &mut Tx<'_>, controller: &str) -> StoreResult<Head> {
    if let Some(row) = tx.query_opt(SELECT_HEAD, &[&controller]).await? {
        return head(&row);
    }
    // A controller's first append. If another node is inserting the same row, this waits for
    // its transaction and then does nothing; the SELECT after it (a new snapshot, under READ
    // COMMITTED) sees the row either way. The head starts after any entries and subjects
    // already stored, so a ledger copied in without heads is continued, not overwritten.
    tx.execute(
        "INSERT INTO ledger_heads (controller, next_seq, next_subject)
         SELECT $1, COALESCE((SELECT MAX(seq) + 1 FROM ledger WHERE controller = $1), 0),
                GREATEST(COALESCE((SELECT MAX(number) + 1 FROM subjects WHERE controller = $1), 0),
                         COALESCE((SELECT MAX(subject_no) + 1 FROM ledger WHERE controller = $1), 0))
         ON CONFLICT (controller) DO NOTHING",
        &[&controller],
    )
    .await?;
    let row = tx
        .query_opt(SELECT_HEAD, &[&controller])
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("the ledger head of `{controller}` vanished")))?;
    head(&row)
}

pub(crate) const FIND_IDEMPOTENCY: &str =
    "SELECT request_hash, first_seq, count FROM idempotency WHERE controller = $1 AND key = $2";

pub(crate) fn idempotency_record(key: &str, row: &Row) -> StoreResult<IdempotencyRecord> {
    let hash: &[u8] = get(row, 0)?;
    Ok(IdempotencyRecord {
        key: key.to_owned(),
        request_hash: hash32(hash, "request_hash")?,
        first_seq: seq_from_sql(get(row, 1)?)?,
        count: seq_from_sql(get(row, 2)?)?,
    })
}

/// What one group transaction knows of each controller it has appended to: the transaction
/// holds the controller's head row locked until it ends, so no other writer can move the head or
/// the tree's right edge meanwhile, and the next batch of the group needs to read neither back.
/// Updated only when a batch succeeds: a refused batch is rolled back to its savepoint, and the
/// state stays as the previous batch left it, which is what the tables say again.
#[derive(Default)]
pub(crate) struct GroupState {
    heads: HashMap<String, KnownHead>,
}

struct KnownHead {
    next_seq: u64,
    next_subject: u64,
    /// The right edge of the tree at `next_seq`: the complete subtrees still waiting for a
    /// right sibling.
    edge: HashMap<(u8, u64), Hash32>,
}

/// Of `known`, the subtrees a tree of `size` leaves has yet to pair: at each level, the last
/// complete node if it is a left child.
fn right_edge(known: HashMap<(u8, u64), Hash32>, size: u64) -> HashMap<(u8, u64), Hash32> {
    known
        .into_iter()
        .filter(|((level, index), _)| {
            let width = size.checked_shr(u32::from(*level)).unwrap_or(0);
            width % 2 == 1 && *index + 1 == width
        })
        .collect()
}

/// Writes one batch in `tx`. Run by the writer (`writer.rs`) inside a savepoint, after earlier
/// batches of the same transaction; `group` carries what those batches left (see [`GroupState`]).
pub(crate) async fn write(tx: &mut Tx<'_>, batch: &AppendBatch, group: &mut GroupState) -> StoreResult<Appended> {
    let controller = batch.controller.as_str();
    // After this batch: its own state if it succeeds; if it fails, what an earlier batch left
    // (that batch's lock was released into the transaction and still holds), or nothing when
    // this batch took the lock itself (rolling back to the savepoint releases it).
    let mut after = group.heads.remove(controller);
    let head = match &after {
        Some(known) => Head { next_seq: known.next_seq, next_subject: known.next_subject },
        None => lock_head(tx, controller).await?,
    };
    let result = write_at(tx, batch, &head, &mut after).await;
    if let Some(known) = after {
        group.heads.insert(controller.to_owned(), known);
    }
    result
}

async fn write_at(
    tx: &mut Tx<'_>,
    batch: &AppendBatch,
    head: &Head,
    known: &mut Option<KnownHead>,
) -> StoreResult<Appended> {
    let controller = batch.controller.as_str();
    let first_seq = head.next_seq;

    // Whom an erasure erases, for its outbox row: read before the record goes.
    let mut erased_id: Option<String> = None;
    if let Some(number) = batch.erase_subject {
        let number_sql = seq_to_sql(number)?;
        erased_id = tx
            .query_opt("SELECT id FROM subjects WHERE controller = $1 AND number = $2", &[&controller, &number_sql])
            .await?
            .map(|row| get(&row, 0))
            .transpose()?;
        // Idempotency fingerprints cover the subject id: drop every one whose events are theirs.
        tx.execute(
            "DELETE FROM idempotency i WHERE i.controller = $1 AND EXISTS (
                SELECT 1 FROM ledger l WHERE l.controller = $1 AND l.subject_no = $2
                  AND l.seq >= i.first_seq AND l.seq < i.first_seq + i.count)",
            &[&controller, &number_sql],
        )
        .await?;
        let mut erased = 0;
        erased += tx
            .execute("DELETE FROM subjects WHERE controller = $1 AND number = $2", &[&controller, &number_sql])
            .await?;
        erased += tx
            .execute("DELETE FROM evidence WHERE controller = $1 AND subject_no = $2", &[&controller, &number_sql])
            .await?;
        erased += tx
            .execute("DELETE FROM consent_state WHERE controller = $1 AND subject_no = $2", &[&controller, &number_sql])
            .await?;
        if erased == 0 {
            return Err(StoreError::NotFound(format!("subject number {number}")));
        }
    }

    let edge = known.as_ref().map(|k| k.edge.clone()).unwrap_or_default();
    let mut facts = read_known(tx, controller, &[batch], first_seq, edge).await?;
    let mut tree = std::mem::take(&mut facts.edge);
    let mut plan = Plan::new(head, facts);
    let appended = plan.batch(batch, erased_id.as_deref())?;
    let (next_seq, next_subject, mut rows) = plan.finish();
    rows.set_nodes(subtrees(first_seq, &rows.leaves(), &mut tree)?);
    rows.insert(tx, controller, next_seq, next_subject).await?;

    for version in &batch.notice_versions {
        let body = to_json(version)?;
        let seq = seq_to_sql(batch.publication_seq(first_seq, version)?)?;
        let inserted = tx
            .execute(
                "INSERT INTO notice_versions (controller, purpose, version, seq, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&controller, &version.purpose.as_str(), &i64::from(version.version), &seq, &body],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("{} version {}", version.purpose, version.version)));
        }
    }
    *known = Some(KnownHead { next_seq, next_subject, edge: right_edge(tree, next_seq) });
    Ok(appended)
}

/// The stored nodes that leaves `first_seq..first_seq + count` pair with: children of the nodes
/// they complete that ended before `first_seq`, the right edge of the tree (at most one node per
/// level). Which they are depends only on the numbers, so they are known before any hashing.
pub(crate) fn edge_needed(first_seq: u64, count: usize) -> Vec<(u8, u64)> {
    let mut needed = Vec::new();
    for n in (first_seq..).take(count) {
        for (level, index) in merkle::completed_by(n) {
            let child = level - 1;
            for i in [2 * index, 2 * index + 1] {
                if ends_before(child, i, first_seq) && !needed.contains(&(child, i)) {
                    needed.push((child, i));
                }
            }
        }
    }
    needed
}

/// Reads into `known` those of `needed` it lacks, in one query.
pub(crate) async fn read_edge(
    tx: &mut Tx<'_>,
    controller: &str,
    needed: &[(u8, u64)],
    known: &mut HashMap<(u8, u64), Hash32>,
) -> StoreResult<()> {
    let missing: Vec<(u8, u64)> = needed.iter().copied().filter(|node| !known.contains_key(node)).collect();
    if !missing.is_empty() {
        let owners = node_owners(&missing)?;
        let rows = tx.query(NODE_ROWS, &[&controller, &owners]).await?;
        known.extend(missing.iter().copied().zip(pick_nodes(&rows, &missing)?));
    }
    Ok(())
}

/// For each new leaf (numbered from `first_seq`), the subtree hashes it completes, concatenated
/// lowest level first as stored in its row (`None` when it completes none). `known` must hold
/// the right edge; every node computed is added to it.
pub(crate) fn subtrees(
    first_seq: u64,
    leaves: &[Hash32],
    known: &mut HashMap<(u8, u64), Hash32>,
) -> StoreResult<Vec<Option<Vec<u8>>>> {
    let mut out = Vec::with_capacity(leaves.len());
    for (n, leaf) in (first_seq..).zip(leaves) {
        known.insert((0, n), *leaf);
        let mut nodes: Option<Vec<u8>> = None;
        for (level, index) in merkle::completed_by(n) {
            let child = |i: u64| {
                known
                    .get(&(level - 1, i))
                    .copied()
                    .ok_or(StoreError::NotFound(format!("tree node ({}, {i})", level - 1)))
            };
            let hash = merkle::node_hash(&child(2 * index)?, &child(2 * index + 1)?);
            nodes.get_or_insert_with(|| Vec::with_capacity(64)).extend_from_slice(&hash);
            known.insert((level, index), hash);
        }
        out.push(nodes);
    }
    Ok(out)
}

/// Whether node `(level, index)` covers only leaves below `size`.
fn ends_before(level: u8, index: u64, size: u64) -> bool {
    index.checked_add(1).and_then(|i| i.checked_mul(1u64.checked_shl(u32::from(level))?)).is_some_and(|end| end <= size)
}

/// Rows holding stored nodes: `$2` is the array of owner sequence numbers (see [`node_owners`]).
pub(crate) const NODE_ROWS: &str = "SELECT seq, leaf_hash, nodes FROM ledger WHERE controller = $1 AND seq = ANY($2)";

/// The row that stores node `(level, index)`: level 0 is the leaf hash of entry `index`; a
/// higher node is kept in the row of the entry that completed it, `(index + 1) * 2^level - 1`.
fn owner(level: u8, index: u64) -> StoreResult<i64> {
    let missing = || StoreError::NotFound(format!("tree node ({level}, {index})"));
    let seq = index
        .checked_add(1)
        .and_then(|i| i.checked_mul(1u64.checked_shl(u32::from(level))?))
        .and_then(|end| end.checked_sub(1))
        .ok_or_else(missing)?;
    i64::try_from(seq).map_err(|_| missing())
}

pub(crate) fn node_owners(nodes: &[(u8, u64)]) -> StoreResult<Vec<i64>> {
    nodes.iter().map(|(level, index)| owner(*level, *index)).collect()
}

/// The hashes of `nodes`, in order, from the [`NODE_ROWS`] rows; `NotFound` if any is missing.
pub(crate) fn pick_nodes(rows: &[Row], nodes: &[(u8, u64)]) -> StoreResult<Vec<Hash32>> {
    let mut by_seq: HashMap<i64, &Row> = HashMap::with_capacity(rows.len());
    for row in rows {
        by_seq.insert(get(row, 0)?, row);
    }
    nodes
        .iter()
        .map(|&(level, index)| {
            let missing = || StoreError::NotFound(format!("tree node ({level}, {index})"));
            let row = by_seq.get(&owner(level, index)?).ok_or_else(missing)?;
            if level == 0 {
                return hash32(get(row, 1)?, "leaf hash");
            }
            let stored: Option<&[u8]> = get(row, 2)?;
            let at = (usize::from(level) - 1) * 32;
            hash32(stored.and_then(|s| s.get(at..at + 32)).ok_or_else(missing)?, "tree node")
        })
        .collect()
}
