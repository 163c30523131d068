//! The checks every append passes, and the numbers it is given: one plan for one batch or a
//! whole group.
//!
//! What the database holds that the checks need is read once, under the controller's head lock
//! ([`read_known`]); [`Plan::batch`] then checks each batch against that and against the batches
//! before it, in order:
//! - an idempotency key already stored, or claimed by an earlier batch, refuses the batch;
//! - a customer stored (or created earlier) under the same id with another pseudonym refuses it
//!   with `SubjectExists`, for the caller to adopt; the same pseudonym shares the number;
//! - a consent for a customer the store does not have refuses it with `NotFound`.
//!
//! A refused batch takes no sequence or subject numbers and adds no rows, as if it had been
//! rolled back to its savepoint. New customers get the number their writer proposed when no one
//! can have used it (at or past the head), the next free one otherwise.

use std::collections::{HashMap, HashSet};

use assent_core::LedgerEntry;
use assent_core::crypto::Hash32;
use assent_store::{AppendBatch, Appended, IdempotencyRecord, StoreError, StoreResult, SubjectRecord};

use crate::append::{Head, edge_needed, idempotency_record, read_edge};
use crate::codec::{get, seq_from_sql, seq_to_sql, subject};
use crate::pool::Tx;
use crate::rows::Rows;

/// What the database holds that the checks need, read once.
pub(crate) struct Known {
    claims: HashMap<String, IdempotencyRecord>,
    subjects: HashMap<String, SubjectRecord>,
    present: HashSet<u64>,
    /// The tree's right edge the new entries pair with.
    pub(crate) edge: HashMap<(u8, u64), Hash32>,
}

/// `edge` holds right-edge nodes already known (from the group's previous batch); only the
/// others are read.
pub(crate) async fn read_known(
    tx: &mut Tx<'_>,
    controller: &str,
    batches: &[&AppendBatch],
    first_seq: u64,
    mut edge: HashMap<(u8, u64), Hash32>,
) -> StoreResult<Known> {
    let keys: Vec<&str> = batches.iter().filter_map(|b| b.idempotency.as_ref().map(|c| c.key.as_str())).collect();
    let mut claims = HashMap::new();
    if !keys.is_empty() {
        for row in tx
            .query(
                "SELECT request_hash, first_seq, count, key FROM idempotency WHERE controller = $1 AND key = ANY($2)",
                &[&controller, &keys],
            )
            .await?
        {
            let key: String = get(&row, 3)?;
            let record = idempotency_record(&key, &row)?;
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
    // The right edge for every entry: refused batches only make it a superset.
    let count = batches.iter().map(|b| b.entries.len()).sum();
    read_edge(tx, controller, &edge_needed(first_seq, count), &mut edge).await?;
    Ok(Known { claims, subjects, present, edge })
}

/// The writes planned so far: numbers handed out and rows gathered for accepted batches.
pub(crate) struct Plan<'b> {
    next_seq: u64,
    next_subject: u64,
    claimed: HashMap<String, IdempotencyRecord>,
    /// Customers stored before the plan, by id.
    stored: HashMap<String, SubjectRecord>,
    /// Stored customers' numbers that entries referenced.
    present: HashSet<u64>,
    /// Customers created by earlier batches of the plan, by id, and their numbers.
    created: HashMap<String, (u64, &'b SubjectRecord)>,
    created_numbers: HashSet<u64>,
    rows: Rows<'b>,
}

impl<'b> Plan<'b> {
    /// A plan starting at `head`, checking against `known` (whose edge the caller keeps).
    pub(crate) fn new(head: &Head, known: Known) -> Self {
        Self {
            next_seq: head.next_seq,
            next_subject: head.next_subject,
            claimed: known.claims,
            stored: known.subjects,
            present: known.present,
            created: HashMap::new(),
            created_numbers: HashSet::new(),
            rows: Rows::default(),
        }
    }

    /// The next sequence and subject numbers after every accepted batch, and their rows.
    pub(crate) fn finish(self) -> (u64, u64, Rows<'b>) {
        (self.next_seq, self.next_subject, self.rows)
    }

    /// Checks one batch against everything before it; if it passes, gathers its rows and gives
    /// it its numbers. `erased` is whom the batch's erasure erases, for its outbox row.
    pub(crate) fn batch(&mut self, batch: &'b AppendBatch, erased: Option<&'b str>) -> StoreResult<Appended> {
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
                // An erasure's row names whom it erased, though its bytes name no one.
                LedgerEntry::Erasure(_) => batch.erase_subject,
                LedgerEntry::Notice(_) => None,
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

        // Accepted: the batch's numbers and rows join the plan.
        for (number, record) in &fresh {
            self.rows.subject(*number, record);
            self.created.insert(record.id.as_str().to_owned(), (*number, record));
            self.created_numbers.insert(*number);
        }
        for ((seq, entry), number) in (first_seq..).zip(&batch.entries).zip(entry_numbers) {
            let erased = matches!(entry.entry, LedgerEntry::Erasure(_)).then_some(erased).flatten();
            self.rows.entry(seq, number, entry, erased);
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
