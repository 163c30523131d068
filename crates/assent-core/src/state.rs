//! State is a projection of the ledger: for each subject and purpose, the latest consent event.
//!
//! `apply` is the only way state changes, live or when rebuilding, so the two cannot disagree.

use std::collections::BTreeMap;

use crate::event::{Action, ConsentEvent, LedgerEntry, Method, Pseudonym};
use crate::id::PurposeId;
use crate::time::Timestamp;

/// What the ledger says about one subject and one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsentState {
    pub action: Action,
    pub version: Option<u32>,
    pub since: Timestamp,
    pub method: Method,
    /// Ledger sequence number of the event this state comes from.
    pub seq: u64,
}

impl ConsentState {
    pub fn from_event(event: &ConsentEvent, seq: u64) -> Self {
        Self { action: event.action, version: event.version, since: event.recorded_at, method: event.method, seq }
    }

    /// Whether `self` should replace `current`: later events win, whatever order they are applied
    /// in, so concurrent writers and replays converge on the same state.
    pub fn supersedes(&self, current: Option<&ConsentState>) -> bool {
        current.is_none_or(|c| self.seq > c.seq)
    }
}

pub type StateKey = (Pseudonym, PurposeId);
pub type StateMap = BTreeMap<StateKey, ConsentState>;

/// Applies one ledger entry at `seq` to `states`.
pub fn apply(states: &mut StateMap, seq: u64, entry: &LedgerEntry) {
    if let LedgerEntry::Consent(event) = entry {
        let next = ConsentState::from_event(event, seq);
        let key = (event.subject, event.purpose.clone());
        if next.supersedes(states.get(&key)) {
            states.insert(key, next);
        }
    }
}

/// Rebuilds state from scratch out of `(seq, entry)` pairs.
pub fn fold<'a>(entries: impl IntoIterator<Item = (u64, &'a LedgerEntry)>) -> StateMap {
    let mut states = StateMap::new();
    for (seq, entry) in entries {
        apply(&mut states, seq, entry);
    }
    states
}

/// The state a subject has right after a grant or withdrawal.
pub fn is_grant(state: &ConsentState) -> bool {
    state.action == Action::Grant
}
