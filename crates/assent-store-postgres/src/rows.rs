//! The rows an append adds, gathered from one batch or from many, and the one statement that
//! adds them all: a single event waits on round trips to the database, not on rows, so a write
//! is as few statements as the checks before it allow.

use std::collections::BTreeMap;

use assent_core::LedgerEntry;
use assent_store::{IdempotencyClaim, NewEntry, StoreResult, SubjectRecord};

use crate::codec::seq_to_sql;
use crate::pool::Tx;

/// One ledger entry to insert, with what its row carries besides the bytes.
struct EntryRow<'b> {
    seq: u64,
    /// A consent's subject, or an erasure's erased subject.
    subject_no: Option<u64>,
    entry: &'b NewEntry,
    /// The subtree hashes the entry completes, lowest level first.
    nodes: Option<Vec<u8>>,
    /// For an erasure's outbox row: whom it erased.
    erased: Option<&'b str>,
}

#[derive(Default)]
pub(crate) struct Rows<'b> {
    subjects: Vec<(u64, &'b SubjectRecord)>,
    entries: Vec<EntryRow<'b>>,
    claims: Vec<(&'b IdempotencyClaim, u64, u64)>,
}

impl<'b> Rows<'b> {
    pub(crate) fn subject(&mut self, number: u64, record: &'b SubjectRecord) {
        self.subjects.push((number, record));
    }

    /// Entries must come in sequence order: a (subject, purpose) state keeps its last event.
    pub(crate) fn entry(&mut self, seq: u64, subject_no: Option<u64>, entry: &'b NewEntry, erased: Option<&'b str>) {
        self.entries.push(EntryRow { seq, subject_no, entry, nodes: None, erased });
    }

    /// An idempotency claim the caller has already checked is free.
    pub(crate) fn claim(&mut self, claim: &'b IdempotencyClaim, first_seq: u64, count: u64) {
        self.claims.push((claim, first_seq, count));
    }

    /// The leaf hashes of the entries so far, in order.
    pub(crate) fn leaves(&self) -> Vec<assent_core::crypto::Hash32> {
        self.entries.iter().map(|e| e.entry.leaf_hash).collect()
    }

    /// Gives the entries, in order, the subtree hashes they complete.
    pub(crate) fn set_nodes(&mut self, nodes: Vec<Option<Vec<u8>>>) {
        for (row, nodes) in self.entries.iter_mut().zip(nodes) {
            row.nodes = nodes;
        }
    }

    /// Inserts every row and moves the controller's head, in one statement.
    pub(crate) async fn insert(
        self,
        tx: &mut Tx<'_>,
        controller: &str,
        next_seq: u64,
        next_subject: u64,
    ) -> StoreResult<()> {
        let sql = |n: u64| seq_to_sql(n);
        let new_numbers = self.subjects.iter().map(|(n, _)| sql(*n)).collect::<StoreResult<Vec<_>>>()?;
        let new_ids: Vec<&str> = self.subjects.iter().map(|(_, s)| s.id.as_str()).collect();
        let new_secrets: Vec<&[u8]> = self.subjects.iter().map(|(_, s)| &s.secret[..]).collect();
        let new_pseudonyms: Vec<&[u8]> = self.subjects.iter().map(|(_, s)| &s.pseudonym.0[..]).collect();
        let new_created: Vec<i64> = self.subjects.iter().map(|(_, s)| s.created_at.unix_millis()).collect();

        let seqs = self.entries.iter().map(|e| sql(e.seq)).collect::<StoreResult<Vec<_>>>()?;
        let subject_nos =
            self.entries.iter().map(|e| e.subject_no.map(sql).transpose()).collect::<StoreResult<Vec<_>>>()?;
        let bytes: Vec<&[u8]> = self.entries.iter().map(|e| e.entry.bytes.as_slice()).collect();
        let leaf_hashes: Vec<&[u8]> = self.entries.iter().map(|e| &e.entry.leaf_hash[..]).collect();
        let nodes: Vec<Option<&[u8]>> = self.entries.iter().map(|e| e.nodes.as_deref()).collect();
        let erased: Vec<Option<&str>> = self.entries.iter().map(|e| e.erased).collect();

        // One state row per (subject, purpose): a statement may not upsert the same row twice,
        // and the last event wins, as it would one statement at a time (the upsert still keeps
        // a stored row with a later sequence number).
        let mut latest: BTreeMap<(i64, &str), usize> = BTreeMap::new();
        let mut ev = (Vec::new(), Vec::new(), Vec::new());
        for (i, row) in self.entries.iter().enumerate() {
            let (LedgerEntry::Consent(event), Some(number)) = (&row.entry.entry, row.subject_no) else { continue };
            let number = sql(number)?;
            latest.insert((number, event.purpose.as_str()), i);
            if let Some(evidence) = &row.entry.evidence {
                ev.0.push(sql(row.seq)?);
                ev.1.push(number);
                ev.2.push(evidence.as_str());
            }
        }
        let mut st = StateColumns::default();
        for ((number, purpose), i) in latest {
            let Some(row) = self.entries.get(i) else { continue };
            let LedgerEntry::Consent(event) = &row.entry.entry else { continue };
            st.subject_nos.push(number);
            st.purposes.push(purpose);
            st.subjects.push(&event.subject.0[..]);
            st.actions.push(event.action.as_str());
            st.versions.push(event.version.map(i64::from));
            st.since.push(event.recorded_at.unix_millis());
            st.methods.push(event.method.as_str());
            st.seqs.push(sql(row.seq)?);
        }

        let claim_keys: Vec<&str> = self.claims.iter().map(|(c, _, _)| c.key.as_str()).collect();
        let claim_hashes: Vec<&[u8]> = self.claims.iter().map(|(c, _, _)| &c.request_hash[..]).collect();
        let claim_firsts = self.claims.iter().map(|(_, first, _)| sql(*first)).collect::<StoreResult<Vec<_>>>()?;
        let claim_counts = self.claims.iter().map(|(_, _, count)| sql(*count)).collect::<StoreResult<Vec<_>>>()?;

        tx.execute(
            "WITH
               new_subjects AS (
                 INSERT INTO subjects (controller, number, id, secret, pseudonym, created_at)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BYTEA[], $5::BYTEA[], $6::BIGINT[])),
               entries AS (
                 INSERT INTO ledger (controller, seq, bytes, leaf_hash, subject_no, nodes)
                 SELECT $1, * FROM UNNEST($7::BIGINT[], $8::BYTEA[], $9::BYTEA[], $10::BIGINT[], $11::BYTEA[])),
               outbox_rows AS (
                 INSERT INTO outbox (controller, seq, erased) SELECT $1, * FROM UNNEST($7::BIGINT[], $12::TEXT[])),
               states AS (
                 INSERT INTO consent_state (controller, subject_no, purpose, subject, action, version, since, method, seq)
                 SELECT $1, * FROM UNNEST($13::BIGINT[], $14::TEXT[], $15::BYTEA[], $16::TEXT[], $17::BIGINT[],
                                          $18::BIGINT[], $19::TEXT[], $20::BIGINT[])
                 ON CONFLICT (controller, subject_no, purpose) DO UPDATE SET
                    action = excluded.action, version = excluded.version, since = excluded.since,
                    method = excluded.method, seq = excluded.seq
                 WHERE excluded.seq > consent_state.seq),
               evidence_rows AS (
                 INSERT INTO evidence (controller, seq, subject_no, body)
                 SELECT $1, * FROM UNNEST($21::BIGINT[], $22::BIGINT[], $23::TEXT[])),
               claims AS (
                 INSERT INTO idempotency (controller, key, request_hash, first_seq, count)
                 SELECT $1, * FROM UNNEST($26::TEXT[], $27::BYTEA[], $28::BIGINT[], $29::BIGINT[]))
             UPDATE ledger_heads SET next_seq = $24, next_subject = $25 WHERE controller = $1",
            &[
                &controller,
                &new_numbers,
                &new_ids,
                &new_secrets,
                &new_pseudonyms,
                &new_created,
                &seqs,
                &bytes,
                &leaf_hashes,
                &subject_nos,
                &nodes,
                &erased,
                &st.subject_nos,
                &st.purposes,
                &st.subjects,
                &st.actions,
                &st.versions,
                &st.since,
                &st.methods,
                &st.seqs,
                &ev.0,
                &ev.1,
                &ev.2,
                &sql(next_seq)?,
                &sql(next_subject)?,
                &claim_keys,
                &claim_hashes,
                &claim_firsts,
                &claim_counts,
            ],
        )
        .await
        .map(drop)
    }
}

#[derive(Default)]
struct StateColumns<'a> {
    subject_nos: Vec<i64>,
    purposes: Vec<&'a str>,
    subjects: Vec<&'a [u8]>,
    actions: Vec<&'static str>,
    versions: Vec<Option<i64>>,
    since: Vec<i64>,
    methods: Vec<&'static str>,
    seqs: Vec<i64>,
}
