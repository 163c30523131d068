//! `assent verify`: an offline audit of a data directory. Re-hashes every entry, checks the
//! sequence has no gaps, rebuilds every Merkle tree and compares it with the stored nodes,
//! checks every checkpoint's signature and root and the consistency between consecutive ones,
//! checks every subject's pseudonym, and rebuilds state from the entries to compare it with the
//! stored state. The first problem per controller is named with its sequence number.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::Instant;

use assent_core::crypto::{Hash32, leaf_hash, subject_pseudonym};
use assent_core::event::Pseudonym;
use assent_core::merkle::{self, MemoryTree};
use assent_core::note::{Checkpoint, Verifier};
use assent_core::{ConsentState, ControllerId, LedgerEntry, PurposeId};
use assent_store::Store;
use assent_store_sqlite::SqliteStore;

use super::{describe, keyring, open_store};
use crate::config::Settings;

const CHUNK: u64 = 50_000;

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
    let store = open_store(&settings)?;
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
    store: &SqliteStore,
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
    let mut tree = MemoryTree::default();
    let mut states: FastMap<(Pseudonym, PurposeId), ConsentState> = FastMap::default();
    let mut next = 0u64;
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    // Chunks are read and checked (hashing, decoding) on the blocking pool, a few at a time,
    // while this task folds and builds the tree from finished chunks in order.
    let spawn_chunk = |start: u64| {
        let (store, id) = (store.clone(), id.clone());
        let end = (start + CHUNK).min(size);
        tokio::spawn(async move {
            let entries = store.entries(id.clone(), start, end).await.map_err(Finding::from)?;
            tokio::task::spawn_blocking(move || check_entries(entries, &id))
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
        let checked = task.await.map_err(|e| Finding(format!("a reader failed: {e}")))??;
        if next_start < size {
            in_flight.push_back(spawn_chunk(next_start));
            next_start += CHUNK;
        }
        if checked.is_empty() {
            return Err(Finding(format!("entry {next} is missing")));
        }
        for c in checked {
            let c = match c {
                Ok(c) => c,
                // A gap before a bad entry is the first problem.
                Err((seq, _)) if seq != next => {
                    return Err(Finding(format!("entry {next} is missing (the next stored entry is {seq})")));
                }
                Err((_, finding)) => return Err(finding),
            };
            if c.seq != next {
                return Err(Finding(format!("entry {next} is missing (the next stored entry is {})", c.seq)));
            }
            if let Some((key, state)) = c.state
                && state.supersedes(states.get(&key))
            {
                states.insert(key, state);
            }
            tree.push(c.leaf);
            // The subtree hashes stored with this entry must be the ones the entries so far
            // produce: a difference means entries were altered, removed or reordered.
            let expected = merkle::completed_by(c.seq).map(|(l, i)| tree.node(l, i));
            if !expected.map(|h| h.unwrap_or([0; 32])).eq(c.nodes.iter().copied()) {
                return Err(Finding(format!(
                    "entry {}: its stored Merkle subtree hashes do not match the entries up to it: entries were altered, removed or reordered",
                    c.seq
                )));
            }
            next += 1;
        }
        progress.tick(next);
    }
    progress.finish();

    let checkpoints = check_checkpoints(store, id, verifier, &tree).await?;

    // Subjects: each pseudonym must be the keyed hash of its id (the link is intact).
    let subjects = store.load_subjects(id.clone()).await?;
    let per_worker = subjects.len().div_ceil(workers).max(1);
    let broken = std::thread::scope(|scope| {
        let handles: Vec<_> = subjects
            .chunks(per_worker)
            .map(|part| {
                scope.spawn(|| {
                    part.iter().find(|s| subject_pseudonym(&s.secret, s.id.as_str()) != s.pseudonym.0).map(|s| s.number)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok().flatten()).min()
    });
    if let Some(number) = broken {
        return Err(Finding(format!("subject number {number}: its pseudonym does not match its secret")));
    }
    let living: FastSet<_> = subjects.iter().map(|s| s.pseudonym).collect();
    // State: the stored projection equals the fold of the ledger, less erased subjects.
    let rebuilt: FastMap<_, _> = states.into_iter().filter(|((subject, _), _)| living.contains(subject)).collect();
    let stored: FastMap<_, _> =
        store.load_states(id.clone()).await?.into_iter().map(|s| ((s.subject, s.purpose), s.state)).collect();
    for (key, state) in &rebuilt {
        match stored.get(key) {
            Some(s) if s == state => {}
            Some(s) => {
                return Err(Finding(format!(
                    "entry {}: stored state for purpose `{}` says {} from entry {}, the ledger says {} from entry {}",
                    state.seq,
                    key.1,
                    s.action.as_str(),
                    s.seq,
                    state.action.as_str(),
                    state.seq
                )));
            }
            None => {
                return Err(Finding(format!(
                    "entry {}: its state for purpose `{}` is missing from storage",
                    state.seq, key.1
                )));
            }
        }
    }
    if let Some((key, s)) = stored.iter().find(|(k, _)| !rebuilt.contains_key(*k)) {
        return Err(Finding(format!(
            "entry {}: stored state for purpose `{}` has no ledger entry behind it",
            s.seq, key.1
        )));
    }
    Ok((size, checkpoints, subjects.len(), stored.len()))
}

/// One entry, checked: its leaf hash and the state it contributes.
struct Checked {
    seq: u64,
    leaf: Hash32,
    nodes: Vec<Hash32>,
    state: Option<((Pseudonym, PurposeId), ConsentState)>,
}

/// An entry checked, or the sequence number and problem of one that failed.
type CheckedEntry = Result<Checked, (u64, Finding)>;

/// Checks every entry of a chunk; a failure is kept in its place, so the fold reports problems
/// in sequence order.
fn check_entries(entries: Vec<assent_store::StoredEntry>, id: &ControllerId) -> Result<Vec<CheckedEntry>, Finding> {
    Ok(entries
        .into_iter()
        .map(|e| {
            let seq = e.seq;
            check_entry(e, id).map_err(|f| (seq, f))
        })
        .collect())
}

fn check_entry(e: assent_store::StoredEntry, id: &ControllerId) -> Result<Checked, Finding> {
    {
        {
            if leaf_hash(&e.bytes) != e.leaf_hash {
                return Err(Finding(format!("entry {}: its bytes do not match its stored leaf hash", e.seq)));
            }
            let entry = assent_core::encoding::decode(&e.bytes)
                .map_err(|err| Finding(format!("entry {}: not a valid canonical entry: {err}", e.seq)))?;
            let (owner, state) = match entry {
                LedgerEntry::Consent(c) => {
                    let state = ConsentState::from_event(&c, e.seq);
                    (c.controller, Some(((c.subject, c.purpose), state)))
                }
                LedgerEntry::Notice(n) => (n.controller, None),
                LedgerEntry::Erasure(x) => (x.controller, None),
            };
            if &owner != id {
                return Err(Finding(format!("entry {}: belongs to controller `{owner}`", e.seq)));
            }
            Ok(Checked { seq: e.seq, leaf: e.leaf_hash, nodes: e.nodes, state })
        }
    }
}

async fn check_checkpoints(
    store: &SqliteStore,
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
