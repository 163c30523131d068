//! The in-memory projection each node serves decisions from.
//!
//! It is a cache of what the store holds, rebuilt from it at start. Locks are plain
//! `std::sync::RwLock`s held only for map operations, never across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use assent_core::catalog::NoticeVersion;
use assent_core::decision::PurposeTerms;
use assent_core::event::Pseudonym;
use assent_core::{ConsentState, DataCategory, DataCategoryId, Purpose, PurposeId, SubjectId, Timestamp};
use assent_store::{CatalogSnapshot, Controller, SubjectRecord};

/// Reads through a poisoned lock: every writer leaves the maps consistent between statements,
/// so a panic elsewhere must not take decisions down with it.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A controller's catalog, with what decisions need precomputed.
#[derive(Debug, Clone, Default)]
pub struct CatalogView {
    pub data_categories: BTreeMap<DataCategoryId, DataCategory>,
    pub purposes: BTreeMap<PurposeId, PurposeView>,
    /// How long a grant lasts when its purpose sets no `max_age_days`: set when a profile
    /// (GDPR) requires consent to be refreshed.
    pub refresh_days: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct PurposeView {
    pub purpose: Purpose,
    /// Published versions, ascending.
    pub versions: Vec<NoticeVersion>,
}

impl PurposeView {
    pub fn current_version(&self) -> Option<&NoticeVersion> {
        self.versions.last()
    }

    pub fn version(&self, n: u32) -> Option<&NoticeVersion> {
        self.versions.iter().find(|v| v.version == n)
    }

    /// Decision terms as of `at`: only versions published by then count, so a replayed
    /// response describes the state as it was.
    pub fn terms_at(&self, at: Option<Timestamp>, refresh_days: Option<u32>) -> PurposeTerms<'_> {
        let visible = |v: &&NoticeVersion| at.is_none_or(|t| v.published_at <= t);
        let current_version = self.versions.iter().filter(visible).map(|v| v.version).max();
        let declared = self.versions.iter().filter(visible).filter(|v| v.content.material).map(|v| v.version).max();
        // If the purpose's terms were widened after a version was published (a new data
        // category, say), that version no longer describes them: grants up to it are stale, as
        // if a material version had followed it. When even the newest version is stale, every
        // grant is, until a new notice is published and accepted.
        let widened =
            self.versions.iter().filter(visible).filter(|v| !v.covers(&self.purpose)).map(|v| v.version + 1).max();
        PurposeTerms {
            purpose: &self.purpose,
            current_version,
            last_material_version: declared.max(widened),
            max_age_days: self.purpose.max_age_days.or(refresh_days),
        }
    }

    pub fn terms(&self, refresh_days: Option<u32>) -> PurposeTerms<'_> {
        self.terms_at(None, refresh_days)
    }
}

impl CatalogView {
    pub fn from_snapshot(snapshot: CatalogSnapshot) -> Self {
        let mut versions = snapshot.versions;
        let purposes = snapshot
            .purposes
            .into_iter()
            .map(|(id, purpose)| {
                let versions = versions.remove(&id).unwrap_or_default();
                (id, PurposeView { purpose, versions })
            })
            .collect();
        Self { data_categories: snapshot.data_categories, purposes, refresh_days: None }
    }
}

/// What a node holds for one subject.
#[derive(Debug, Clone)]
pub struct SubjectEntry {
    pub record: SubjectRecord,
    /// False until the store has the record: a subject whose first write failed stays unknown.
    pub persisted: bool,
    pub states: Vec<(PurposeId, ConsentState)>,
}

impl SubjectEntry {
    pub fn state(&self, purpose: &PurposeId) -> Option<&ConsentState> {
        self.states.iter().find(|(p, _)| p == purpose).map(|(_, s)| s)
    }

    /// Applies a state if it is newer than what is held (see `ConsentState::supersedes`).
    pub fn apply(&mut self, purpose: &PurposeId, state: ConsentState) {
        match self.states.iter_mut().find(|(p, _)| p == purpose) {
            Some((_, current)) => {
                if state.supersedes(Some(current)) {
                    *current = state;
                }
            }
            None => self.states.push((purpose.clone(), state)),
        }
    }
}

#[derive(Debug, Default)]
pub struct Subjects {
    pub by_id: HashMap<SubjectId, SubjectEntry>,
    pub by_pseudonym: HashMap<Pseudonym, SubjectId>,
    /// Stored subjects by storage number: an erasure another node records names its subject
    /// only by number.
    pub by_number: HashMap<u64, Pseudonym>,
    /// Storage numbers erased (by any node): a number is never reused, so a commit that
    /// returns after another node erased its new subject must not bring that subject back.
    pub erased: std::collections::HashSet<u64>,
    /// The storage number the next new subject gets (see `SubjectRecord::number`). A store
    /// shared by several nodes allocates the real number when it stores the subject.
    pub next_number: u64,
}

impl Subjects {
    /// Holds a subject as the store has it, replacing any record this node made up for the same
    /// id that the store did not take.
    pub fn insert_stored(&mut self, record: SubjectRecord, states: Vec<(PurposeId, ConsentState)>) {
        self.remove(&record.id);
        self.next_number = self.next_number.max(record.number.saturating_add(1));
        self.by_pseudonym.insert(record.pseudonym, record.id.clone());
        self.by_number.insert(record.number, record.pseudonym);
        self.by_id.insert(record.id.clone(), SubjectEntry { record, persisted: true, states });
    }

    /// Records that the store took `id`'s record under `number` (or forgets the subject, if
    /// that number was erased meanwhile).
    pub fn mark_stored(&mut self, id: &SubjectId, pseudonym: &Pseudonym, number: u64) {
        if self.erased.contains(&number) {
            if self.by_id.get(id).is_some_and(|e| e.record.pseudonym == *pseudonym) {
                self.remove(id);
            }
            return;
        }
        if let Some(entry) = self.by_id.get_mut(id).filter(|e| e.record.pseudonym == *pseudonym) {
            entry.persisted = true;
            entry.record.number = number;
            self.by_number.insert(number, *pseudonym);
            self.next_number = self.next_number.max(number.saturating_add(1));
        }
    }

    pub fn remove(&mut self, id: &SubjectId) -> Option<SubjectEntry> {
        let entry = self.by_id.remove(id)?;
        self.by_pseudonym.remove(&entry.record.pseudonym);
        if entry.persisted {
            self.by_number.remove(&entry.record.number);
        }
        Some(entry)
    }

    /// Forgets the subject stored under `number`, which was erased.
    pub fn remove_number(&mut self, number: u64) -> Option<SubjectEntry> {
        self.erased.insert(number);
        self.next_number = self.next_number.max(number.saturating_add(1));
        let pseudonym = self.by_number.get(&number)?;
        let id = self.by_pseudonym.get(pseudonym)?.clone();
        self.remove(&id)
    }
}

/// Everything a node holds for one controller.
#[derive(Debug)]
pub struct ControllerHandle {
    pub info: RwLock<Controller>,
    pub catalog: RwLock<Arc<CatalogView>>,
    pub subjects: RwLock<Subjects>,
    /// Serialises catalog changes (version numbering) within this node.
    pub catalog_writes: tokio::sync::Mutex<()>,
    /// How much of the ledger this node has read back and applied: every entry below it is in
    /// memory, whichever node wrote it. Held while catching up, so one catch-up runs at a time.
    pub applied: tokio::sync::Mutex<u64>,
}

impl ControllerHandle {
    pub fn new(info: Controller, catalog: CatalogView, subjects: Subjects, applied: u64) -> Self {
        Self {
            info: RwLock::new(info),
            catalog: RwLock::new(Arc::new(catalog)),
            subjects: RwLock::new(subjects),
            catalog_writes: tokio::sync::Mutex::new(()),
            applied: tokio::sync::Mutex::new(applied),
        }
    }

    pub fn id(&self) -> assent_core::ControllerId {
        read(&self.info).id.clone()
    }

    pub fn catalog(&self) -> Arc<CatalogView> {
        Arc::clone(&read(&self.catalog))
    }
}
