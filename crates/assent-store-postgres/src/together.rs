//! The fast path of group commit: every batch of a group that targets one controller, checked
//! with one read of each kind and written with one statement.
//!
//! The per-batch path (`append::write`) costs each batch a savepoint and two or three round
//! trips; a group of 64 single events then spends most of its time waiting on the network. Here
//! the checks the per-batch path makes with a statement each are made for the whole group at
//! once, from what the database holds (read once, under the head lock) plus what earlier
//! batches of the same group add:
//! - an idempotency key already stored, or claimed by an earlier batch, refuses the batch;
//! - a customer stored (or created earlier in the group) under the same id with another
//!   pseudonym refuses it with `SubjectExists`;
//! - a consent for a customer the store does not have refuses it with `NotFound`.
//!
//! A refused batch takes no sequence or subject numbers, exactly as if it had been rolled back
//! to its savepoint, so the results are the ones the per-batch path gives. Batches that erase a
//! customer or publish a notice are left to the per-batch path (they are rare, and erasure
//! deletes rows the checks here read). If the one statement fails (a value PostgreSQL refuses,
//! say), the writer rolls the whole attempt back and runs the group through the per-batch path,
//! which isolates the batch at fault.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use assent_core::LedgerEntry;
use assent_core::crypto::Hash32;
use assent_store::{AppendBatch, Appended, IdempotencyRecord, StoreError, StoreResult, SubjectRecord};

use crate::append::{self, edge_needed, read_edge, subtrees};
use crate::codec::{get, hash32, seq_from_sql, seq_to_sql, subject};
use crate::pool::Tx;
use crate::rows::Rows;

/// Whether `batch` may take the fast path.
pub(crate) fn eligible(batch: &AppendBatch) -> bool {
    batch.erase_subject.is_none() && batch.notice_versions.is_empty()
}

/// Writes `batches`, all of `controller` and all [`eligible`], in order: one result per batch.
/// `Err` means the attempt failed as a whole and nothing of it may be kept.
pub(crate) async fn write(
    tx: &mut Tx<'_>,
    controller: &str,
    batches: &[Arc<AppendBatch>],
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let head = append::lock_head(tx, controller).await?;
    let known = read_known(tx, controller, batches, head.next_seq).await?;
    let mut plan = Plan {
        next_seq: head.next_seq,
        next_subject: head.next_subject,
        claimed: known.claims,
        stored: known.subjects,
        present: known.present,
        created: HashMap::new(),
        created_numbers: HashSet::new(),
        rows: Rows::default(),
    };
    let results = batches.iter().map(|batch| plan.batch(batch)).collect::<Vec<_>>();
    let Plan { next_seq, next_subject, mut rows, .. } = plan;
    if results.iter().any(Result::is_ok) {
        let mut tree = known.edge;
        rows.set_nodes(subtrees(head.next_seq, &rows.leaves(), &mut tree)?);
        rows.insert(tx, controller, next_seq, next_subject).await?;
    }
    Ok(results)
}

/// What the database holds that the group's checks need, read once.
struct Known {
    claims: HashMap<String, IdempotencyRecord>,
    subjects: HashMap<String, SubjectRecord>,
    present: HashSet<u64>,
    edge: HashMap<(u8, u64), Hash32>,
}

async fn read_known(
    tx: &mut Tx<'_>,
    controller: &str,
    batches: &[Arc<AppendBatch>],
    first_seq: u64,
) -> StoreResult<Known> {
    let keys: Vec<&str> = batches.iter().filter_map(|b| b.idempotency.as_ref().map(|c| c.key.as_str())).collect();
    let mut claims = HashMap::new();
    if !keys.is_empty() {
        for row in tx
            .query(
                "SELECT key, request_hash, first_seq, count FROM idempotency WHERE controller = $1 AND key = ANY($2)",
                &[&controller, &keys],
            )
            .await?
        {
            let key: String = get(&row, 0)?;
            let hash: &[u8] = get(&row, 1)?;
            let record = IdempotencyRecord {
                key: key.clone(),
                request_hash: hash32(hash, "request_hash")?,
                first_seq: seq_from_sql(get(&row, 2)?)?,
                count: seq_from_sql(get(&row, 3)?)?,
            };
            claims.insert(key, record);
        }
    }
    let ids: Vec<&str> = batches.iter().flat_map(|b| b.new_subjects.iter().map(|s| s.id.as_str())).collect();
    let mut subjects = HashMap::new();
    if !ids.is_empty() {
        for row in tx
            .query(
                "SELECT id, secret, pseudonym, created_at, number FROM subjects WHERE controller = $1 AND id = ANY($2)",
                &[&controller, &ids],
            )
            .await?
        {
            let record = subject(&row)?;
            subjects.insert(record.id.as_str().to_owned(), record);
        }
    }
    // Customers the entries name without bringing a record along: they must be stored.
    let mut referenced = Vec::new();
    for batch in batches {
        let new: HashSet<&[u8; 32]> = batch.new_subjects.iter().map(|s| &s.pseudonym.0).collect();
        for entry in &batch.entries {
            if let (LedgerEntry::Consent(event), Some(number)) = (&entry.entry, entry.subject_number)
                && !new.contains(&event.subject.0)
            {
                referenced.push(seq_to_sql(number)?);
            }
        }
    }
    let mut present = HashSet::new();
    if !referenced.is_empty() {
        for row in tx
            .query(
                "SELECT number FROM subjects WHERE controller = $1 AND number = ANY($2)",
                &[&controller, &referenced],
            )
            .await?
        {
            present.insert(seq_from_sql(get(&row, 0)?)?);
        }
    }
    // The right edge for every entry of the group: refused batches only make it a superset.
    let count = batches.iter().map(|b| b.entries.len()).sum();
    let mut edge = HashMap::new();
    read_edge(tx, controller, &edge_needed(first_seq, count), &mut edge).await?;
    Ok(Known { claims, subjects, present, edge })
}

/// The group as planned so far: numbers handed out and rows gathered for accepted batches.
struct Plan<'b> {
    next_seq: u64,
    next_subject: u64,
    claimed: HashMap<String, IdempotencyRecord>,
    /// Customers stored before the group, by id.
    stored: HashMap<String, SubjectRecord>,
    /// Stored customers' numbers that entries referenced.
    present: HashSet<u64>,
    /// Customers created by earlier batches of the group, by id, and their numbers.
    created: HashMap<String, (u64, &'b SubjectRecord)>,
    created_numbers: HashSet<u64>,
    rows: Rows<'b>,
}

impl<'b> Plan<'b> {
    /// Checks one batch against everything before it; if it passes, gathers its rows and gives
    /// it its numbers.
    fn batch(&mut self, batch: &'b AppendBatch) -> StoreResult<Appended> {
        let first_seq = self.next_seq;
        let count = u64::try_from(batch.entries.len()).map_err(|_| StoreError::Corrupt("batch too large".into()))?;
        let next_seq = first_seq.checked_add(count).ok_or_else(|| StoreError::Corrupt("ledger is full".into()))?;
        if let Some(claim) = &batch.idempotency
            && let Some(record) = self.claimed.get(&claim.key)
        {
            return Err(StoreError::IdempotencyKeyUsed(record.clone()));
        }

        let mut next_subject = self.next_subject;
        let mut numbers = Vec::with_capacity(batch.new_subjects.len());
        let mut fresh: Vec<(u64, &'b SubjectRecord)> = Vec::new();
        for new in &batch.new_subjects {
            let id = new.id.as_str();
            if let Some((number, record)) = fresh.iter().find(|(_, s)| s.id == new.id) {
                // The same customer twice in one batch, as the per-batch path sees it.
                if record.pseudonym != new.pseudonym {
                    return Err(StoreError::Corrupt("one batch carries two records for one subject".into()));
                }
                numbers.push(*number);
                continue;
            }
            let earlier = self
                .stored
                .get(id)
                .map(|s| (s.number, s.clone()))
                .or_else(|| self.created.get(id).map(|(n, s)| (*n, (*s).clone())));
            match earlier {
                Some((number, record)) if record.pseudonym == new.pseudonym => numbers.push(number),
                Some((number, record)) => {
                    return Err(StoreError::SubjectExists(Box::new(SubjectRecord { number, ..record })));
                }
                None => {
                    let number = new.number.max(next_subject);
                    numbers.push(number);
                    fresh.push((number, new));
                    next_subject =
                        number.checked_add(1).ok_or_else(|| StoreError::Corrupt("subject numbers ran out".into()))?;
                }
            }
        }

        let by_pseudonym: HashMap<&[u8; 32], u64> =
            batch.new_subjects.iter().map(|s| &s.pseudonym.0).zip(numbers.iter().copied()).collect();
        // Every entry's subject first, then whether the store has them, as the per-batch path
        // checks (so a batch wrong in both ways fails the same way).
        let mut entry_numbers = Vec::with_capacity(batch.entries.len());
        let mut referenced = Vec::new();
        for entry in &batch.entries {
            let number = match &entry.entry {
                LedgerEntry::Consent(event) => match by_pseudonym.get(&event.subject.0) {
                    Some(number) => Some(*number),
                    None => {
                        let number = entry
                            .subject_number
                            .ok_or_else(|| StoreError::Corrupt("a consent entry has no subject number".into()))?;
                        referenced.push(number);
                        Some(number)
                    }
                },
                LedgerEntry::Notice(_) | LedgerEntry::Erasure(_) => None,
            };
            entry_numbers.push(number);
        }
        for number in referenced {
            let known =
                self.present.contains(&number) || self.created_numbers.contains(&number) || numbers.contains(&number);
            if !known {
                return Err(StoreError::NotFound(format!("subject number {number}")));
            }
        }

        // Accepted: the batch's numbers and rows are the group's.
        for (number, record) in &fresh {
            self.rows.subject(*number, record);
            self.created.insert(record.id.as_str().to_owned(), (*number, record));
            self.created_numbers.insert(*number);
        }
        for ((seq, entry), number) in (first_seq..).zip(&batch.entries).zip(entry_numbers) {
            self.rows.entry(seq, number, entry, None);
        }
        if let Some(claim) = &batch.idempotency {
            self.rows.claim(claim, first_seq, count);
            let record =
                IdempotencyRecord { key: claim.key.clone(), request_hash: claim.request_hash, first_seq, count };
            self.claimed.insert(claim.key.clone(), record);
        }
        self.next_seq = next_seq;
        self.next_subject = next_subject;
        Ok(Appended { first_seq, subject_numbers: numbers })
    }
}
