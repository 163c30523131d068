//! `assent verify`: an offline audit of a data directory. Re-hashes every entry, checks the
//! sequence has no gaps, rebuilds every Merkle tree and compares it with the stored nodes,
//! checks every checkpoint's signature and root and the consistency between consecutive ones,
//! checks every subject's pseudonym, and rebuilds state from the entries to compare it with the
//! stored state. The first problem per controller is named with its sequence number.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::Instant;

use assent_core::crypto::{Hash32, leaf_hash, subject_pseudonym};
use assent_core::encoding::{EntryView, decode_view};
use assent_core::event::Pseudonym;
use assent_core::merkle::{self, MemoryTree};
use assent_core::note::{Checkpoint, Verifier};
use assent_core::{ConsentState, ControllerId, PurposeId};
use assent_store::Store;
use assent_store_sqlite::{RawLedgerRow, SqliteStore};

use crate::backend::Backend;

use super::{describe, keyring, open_store};
use crate::config::Settings;

/// Entries per unit of parallel work; a power of two, so each chunk is whole Merkle subtrees.
const CHUNK: u64 = 1 << 16;

/// Pseudonyms are uniformly random already: hashing their first bytes with a multiply is
/// enough for an offline tool, and several times faster than SipHash.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word.iter_mut().zip(chunk).for_each(|(w, b)| *w = *b);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

/// A problem found, already worded for the report.
struct Finding(String);

impl From<assent_store::StoreError> for Finding {
    fn from(e: assent_store::StoreError) -> Self {
        Self(format!("storage: {}", super::chain(&e)))
    }
}

struct Progress {
    on: bool,
    label: String,
    total: u64,
    last: Instant,
}

impl Progress {
    fn tick(&mut self, done: u64) {
        if self.on && (self.last.elapsed().as_millis() > 100 || done == self.total) {
            let pct = (done * 100).checked_div(self.total).unwrap_or(100);
            let filled = usize::try_from(pct / 4).unwrap_or(25);
            eprint!("\r{} [{:<25}] {done}/{} entries", self.label, "#".repeat(filled), self.total);
            self.last = Instant::now();
        }
    }

    fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

pub async fn run(settings: Settings) -> Result<(), String> {
    let store = open_store(&settings).await?;
    let keys = keyring(&settings);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut total_entries = 0;
    for controller in store.list_controllers().await.map_err(|e| super::chain(&e))? {
        let id = controller.id;
        let verifier = match keys.existing(&id).map_err(|e| describe(&e))? {
            Some(key) => Some(Verifier::parse(&key.verifier).map_err(|e| e.to_string())?),
            None => None,
        };
        match verify_controller(&store, &id, verifier.as_ref()).await {
            Ok(summary) => {
                total_entries += summary.0;
                println!(
                    "ok: controller `{id}`: {} entries, {} checkpoints, {} subjects, {} states",
                    summary.0, summary.1, summary.2, summary.3
                );
            }
            Err(Finding(what)) => {
                println!("FAILED: controller `{id}`: {what}");
                failures.push(format!("controller `{id}`: {what}"));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { total_entries as f64 / secs } else { 0.0 };
    println!("verified {total_entries} entries in {secs:.2} s ({rate:.0} entries/s)");
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!("verification failed: {first}")),
    }
}

async fn verify_controller(
    store: &Backend,
    id: &ControllerId,
    verifier: Option<&Verifier>,
) -> Result<(u64, usize, usize, usize), Finding> {
    let size = store.ledger_size(id.clone()).await?;
    let mut progress = Progress {
        on: std::io::stderr().is_terminal(),
        label: format!("verifying `{id}`"),
        total: size,
        last: Instant::now(),
    };
    // Subjects and stored states are loaded and checked beside the ledger scan.
    let subjects_task = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            let subjects = store.load_subjects(id).await?;
            tokio::task::spawn_blocking(move || check_subjects(&subjects))
                .await
                .map_err(|e| Finding(format!("the subject check failed: {e}")))?
        })
    };
    let stored_states = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.load_states(id).await.map_err(Finding::from) })
    };
    let mut tree = MemoryTree::default();
    let mut states: FastMap<(Pseudonym, u32), ConsentState> = FastMap::default();
    let mut purposes: HashMap<PurposeId, u32> = HashMap::new();
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    // Chunks are read, re-hashed, decoded and turned into Merkle subtrees on the blocking pool,
    // a few at a time, while this task joins the finished ones in order.
    let spawn_chunk = |start: u64| {
        let (store, id) = (store.clone(), id.clone());
        let end = (start + CHUNK).min(size);
        tokio::spawn(async move {
            let rows = match store {
                Backend::Sqlite(sqlite) => Rows::Sqlite(sqlite),
                other => Rows::Read(other.entries(id.clone(), start, end).await?),
            };
            tokio::task::spawn_blocking(move || check_chunk(rows, &id, start, end))
                .await
                .map_err(|e| Finding(format!("a checker failed: {e}")))?
        })
    };
    let mut in_flight = std::collections::VecDeque::new();
    let mut next_start = 0u64;
    while next_start < size && in_flight.len() <= workers {
        in_flight.push_back(spawn_chunk(next_start));
        next_start += CHUNK;
    }
    while let Some(task) = in_flight.pop_front() {
        let chunk = task.await.map_err(|e| Finding(format!("a reader failed: {e}")))??;
        if next_start < size {
            in_flight.push_back(spawn_chunk(next_start));
            next_start += CHUNK;
        }
        if let Some(problem) = chunk.problem {
            return Err(problem);
        }
        if !tree.append_aligned(chunk.tree) {
            return Err(Finding(format!("entry {}: chunk is not aligned (a bug in verify)", tree.size())));
        }
        // Subtrees wider than a chunk can only be checked once the chunks below are joined.
        for (seq, level, stored) in chunk.high_nodes {
            let index = ((seq + 1) >> level) - 1;
            if tree.node(level, index) != Some(stored) {
                return Err(subtree_mismatch(seq));
            }
        }
        let global: Vec<u32> = chunk
            .purposes
            .into_iter()
            .map(|p| {
                let next = u32::try_from(purposes.len()).unwrap_or(u32::MAX);
                *purposes.entry(p).or_insert(next)
            })
            .collect();
        for (subject, local, state) in chunk.states {
            let key = (subject, global.get(local as usize).copied().unwrap_or(u32::MAX));
            match states.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut held) => {
                    if state.supersedes(Some(held.get())) {
                        held.insert(state);
                    }
                }
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(state);
                }
            }
        }
        progress.tick(tree.size());
    }
    if tree.size() != size {
        return Err(Finding(format!("entry {} is missing", tree.size())));
    }
    progress.finish();

    let checkpoints = check_checkpoints(store, id, verifier, &tree).await?;

    let (living, subject_count) =
        subjects_task.await.map_err(|e| Finding(format!("the subject check failed: {e}")))??;
    // State: the stored projection equals the fold of the ledger, less erased subjects. Each
    // stored state is matched off against the rebuilt one; the problem with the lowest
    // sequence number is the one reported.
    states.retain(|(subject, _), _| living.contains(subject));
    let names: HashMap<u32, &PurposeId> = purposes.iter().map(|(p, i)| (*i, p)).collect();
    let name = |index: &u32| names.get(index).map_or("?", |p| p.as_str());
    let mut first_problem: Option<(u64, String)> = None;
    let mut note = |seq: u64, what: String| {
        if first_problem.as_ref().is_none_or(|(s, _)| seq < *s) {
            first_problem = Some((seq, what));
        }
    };
    let mut stored_count = 0;
    for s in stored_states.await.map_err(|e| Finding(format!("loading states failed: {e}")))?? {
        stored_count += 1;
        let rebuilt = purposes.get(&s.purpose).and_then(|index| states.remove(&(s.subject, *index)));
        match rebuilt {
            Some(state) if state == s.state => {}
            Some(state) => note(
                state.seq.min(s.state.seq),
                format!(
                    "stored state for purpose `{}` says {} from entry {}, the ledger says {} from entry {}",
                    s.purpose,
                    s.state.action.as_str(),
                    s.state.seq,
                    state.action.as_str(),
                    state.seq
                ),
            ),
            None => {
                note(s.state.seq, format!("stored state for purpose `{}` has no ledger entry behind it", s.purpose))
            }
        }
    }
    for (key, state) in &states {
        note(state.seq, format!("its state for purpose `{}` is missing from storage", name(&key.1)));
    }
    if let Some((seq, what)) = first_problem {
        return Err(Finding(format!("entry {seq}: {what}")));
    }
    Ok((size, checkpoints, subject_count, stored_count))
}

/// Each subject's pseudonym must be the keyed hash of its id (the link is intact). Returns the
/// pseudonyms of living subjects and how many there are.
fn check_subjects(subjects: &[assent_store::SubjectRecord]) -> Result<(FastSet<Pseudonym>, usize), Finding> {
    if let Some(s) = subjects.iter().find(|s| subject_pseudonym(&s.secret, s.id.as_str()) != s.pseudonym.0) {
        return Err(Finding(format!("subject number {}: its pseudonym does not match its secret", s.number)));
    }
    Ok((subjects.iter().map(|s| s.pseudonym).collect(), subjects.len()))
}

fn subtree_mismatch(seq: u64) -> Finding {
    Finding(format!(
        "entry {seq}: its stored Merkle subtree hashes do not match the entries up to it: entries were altered, removed or reordered"
    ))
}

/// What one chunk of entries contributes, or the first problem in it.
#[derive(Default)]
struct CheckedChunk {
    /// The Merkle tree over the chunk's leaves alone; its start is a multiple of [`CHUNK`].
    tree: MemoryTree,
    /// Stored subtree hashes wider than the chunk: `(seq, level, hash)`.
    high_nodes: Vec<(u64, u8, Hash32)>,
    /// Purposes named in the chunk; states refer to them by position.
    purposes: Vec<PurposeId>,
    states: Vec<(Pseudonym, u32, ConsentState)>,
    /// The first problem, in sequence order; nothing after it is checked.
    problem: Option<Finding>,
}

/// Where a chunk's rows come from: borrowed straight from SQLite, or already read from another
/// backend through `Store::entries`.
enum Rows {
    Sqlite(SqliteStore),
    Read(Vec<assent_store::StoredEntry>),
}

/// Checks entries `start..end`: each is present, its bytes hash to its leaf hash and decode to
/// an entry of this controller, and the subtree hashes stored with it are the ones the entries
/// produce.
fn check_chunk(rows: Rows, id: &ControllerId, start: u64, end: u64) -> Result<CheckedChunk, Finding> {
    let mut chunk = CheckedChunk::default();
    chunk.states.reserve(usize::try_from(end - start).unwrap_or(0));
    let mut next = start;
    let scanned = match rows {
        Rows::Sqlite(store) => {
            store.scan_ledger(id, start, end, |row| check_row(&mut chunk, &mut next, id, start, row))?
        }
        Rows::Read(entries) => entries.iter().try_for_each(|e| {
            let nodes: Vec<u8> = e.nodes.iter().flatten().copied().collect();
            let row = RawLedgerRow { seq: e.seq, bytes: &e.bytes, leaf_hash: e.leaf_hash, nodes: &nodes };
            check_row(&mut chunk, &mut next, id, start, row)
        }),
    };
    if let Err(problem) = scanned {
        chunk.problem = Some(problem);
    } else if next < end {
        chunk.problem = Some(Finding(format!("entry {next} is missing")));
    }
    Ok(chunk)
}

/// Checks one row of a chunk that starts at `start`; `next` is the sequence number expected.
fn check_row(
    chunk: &mut CheckedChunk,
    next: &mut u64,
    id: &ControllerId,
    start: u64,
    row: RawLedgerRow<'_>,
) -> Result<(), Finding> {
    let chunk_height = CHUNK.trailing_zeros();
    if row.seq != *next {
        return Err(Finding(format!("entry {next} is missing (the next stored entry is {})", row.seq)));
    }
    *next += 1;
    if leaf_hash(row.bytes) != row.leaf_hash {
        return Err(Finding(format!("entry {}: its bytes do not match its stored leaf hash", row.seq)));
    }
    let entry = decode_view(row.bytes)
        .map_err(|err| Finding(format!("entry {}: not a valid canonical entry: {err}", row.seq)))?;
    if entry.controller() != id.as_str() {
        return Err(Finding(format!("entry {}: belongs to controller `{}`", row.seq, entry.controller())));
    }
    if let EntryView::Consent(c) = entry {
        let local = match chunk.purposes.iter().position(|p| p.as_str() == c.purpose) {
            Some(i) => i,
            None => {
                let purpose = PurposeId::parse(c.purpose).map_err(|e| Finding(format!("entry {}: {e}", row.seq)))?;
                chunk.purposes.push(purpose);
                chunk.purposes.len() - 1
            }
        };
        let state =
            ConsentState { action: c.action, version: c.version, since: c.recorded_at, method: c.method, seq: row.seq };
        chunk.states.push((c.subject, u32::try_from(local).unwrap_or(u32::MAX), state));
    }
    chunk.tree.push(row.leaf_hash);
    // The subtree hashes stored with this entry must be the ones the entries so far produce:
    // a difference means entries were altered, removed or reordered.
    let completed = merkle::completed_by(row.seq);
    if (row.seq + 1).trailing_zeros() as usize * 32 != row.nodes.len() {
        return Err(subtree_mismatch(row.seq));
    }
    for ((level, index), stored) in completed.zip(row.nodes.chunks_exact(32)) {
        let stored: Hash32 = stored.try_into().unwrap_or([0; 32]);
        if u32::from(level) > chunk_height {
            chunk.high_nodes.push((row.seq, level, stored));
        } else if chunk.tree.node(level, index - (start >> level)) != Some(stored) {
            return Err(subtree_mismatch(row.seq));
        }
    }
    Ok(())
}

async fn check_checkpoints(
    store: &Backend,
    id: &ControllerId,
    verifier: Option<&Verifier>,
    tree: &MemoryTree,
) -> Result<usize, Finding> {
    let checkpoints = store.checkpoints(id.clone()).await?;
    if checkpoints.is_empty() {
        return Ok(0);
    }
    let Some(verifier) = verifier else {
        return Err(Finding("there are checkpoints but no ledger key to check them with".into()));
    };
    let mut previous: Option<(u64, Hash32)> = None;
    for stored in &checkpoints {
        let at = stored.tree_size;
        let cp =
            Checkpoint::open(&stored.note, verifier).map_err(|e| Finding(format!("checkpoint at size {at}: {e}")))?;
        if cp.size != stored.tree_size || cp.root != stored.root {
            return Err(Finding(format!(
                "checkpoint at size {at}: the stored size or root differs from the signed note"
            )));
        }
        if cp.size > tree.size() {
            return Err(Finding(format!(
                "entry {}: checkpoint at size {at} covers entries the ledger no longer has",
                tree.size()
            )));
        }
        let root = merkle::root(cp.size, &mut tree.reader()).map_err(|e| Finding(e.to_string()))?;
        if root != cp.root {
            return Err(Finding(format!(
                "checkpoint at size {at}: its signed root does not match the entries (an entry below {at} changed)"
            )));
        }
        if let Some((size, root)) = previous.filter(|(size, _)| *size > 0) {
            let proof = merkle::consistency_proof(size, cp.size, &mut tree.reader())
                .map_err(|e| Finding(e.to_string()))?
                .map_err(|e| Finding(e.to_string()))?;
            merkle::verify_consistency(size, cp.size, &proof, &root, &cp.root)
                .map_err(|e| Finding(format!("checkpoints at sizes {size} and {at} are inconsistent: {e}")))?;
        }
        previous = Some((cp.size, cp.root));
    }
    Ok(checkpoints.len())
}
