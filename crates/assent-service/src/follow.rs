//! Keeping a node's memory in step with writes made by other nodes.
//!
//! Each node applies its own writes to memory before it answers (read-your-writes). What other
//! nodes write reaches it through the store's change feed ([`assent_store::Change`]): the node
//! reads the ledger after the last entry it applied and applies every entry in order, whoever
//! wrote it. Applying is idempotent (a state only replaces an older one), so reading back a
//! node's own entries, or an entry twice, changes nothing.
//!
//! What an entry means for memory:
//! - a consent event updates its subject's state; a subject not yet in memory is read from the
//!   store by the number its ledger row carries;
//! - a notice publication reloads the catalog;
//! - an erasure forgets the subject its row names by number.

use std::collections::HashSet;
use std::sync::Arc;

use assent_core::{ConsentState, ControllerId, LedgerEntry};
use assent_store::{Change, Store, StoreError, SubjectRecord};
use tokio::sync::mpsc;

use crate::memory::{ControllerHandle, read, write};
use crate::{Assent, ServiceError, ServiceResult};

/// How long the feed may be silent before every loaded ledger is checked anyway.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// The most entries one read of the ledger brings back.
const CHUNK: u64 = 10_000;

impl<S: Store> Assent<S> {
    /// Applies changes from `changes` until the sender goes away. Changes that arrive while one
    /// is being applied are gathered and applied together.
    pub async fn follow(&self, mut changes: mpsc::Receiver<Change>) {
        loop {
            // A catch-up that failed, or a notification that came while its controller was
            // still loading, is retried by the next change; on a quiet controller that may be
            // long, so every few seconds without one counts as a ledger change everywhere.
            let (first, quiet) = match tokio::time::timeout(RECHECK_AFTER, changes.recv()).await {
                Ok(Some(change)) => (change, false),
                Ok(None) => return,
                Err(_) => (Change::Resync, true),
            };
            let mut ledgers: Vec<ControllerId> = Vec::new();
            let mut catalogs: Vec<ControllerId> = Vec::new();
            let mut resync = false;
            let mut next = Some(first);
            while let Some(change) = next {
                match change {
                    Change::Ledger(id) if !ledgers.contains(&id) => ledgers.push(id),
                    Change::Catalog(id) if !catalogs.contains(&id) => catalogs.push(id),
                    Change::Resync => resync = true,
                    Change::Ledger(_) | Change::Catalog(_) => {}
                }
                next = changes.try_recv().ok();
            }
            if resync {
                ledgers = self.controller_ids();
                // After a reconnect catalog changes may have been missed too; a quiet spell
                // needs only the ledgers read (notices reload the catalog themselves).
                if !quiet {
                    catalogs = ledgers.clone();
                }
            }
            for id in &catalogs {
                if let Err(e) = self.reload_catalog(id).await {
                    tracing::warn!(controller = %id, error = %e, "could not reload a changed catalog");
                }
            }
            for id in &ledgers {
                if let Err(e) = self.catch_up(id).await {
                    tracing::warn!(controller = %id, error = %e, "could not apply other nodes' ledger entries");
                }
            }
        }
    }

    /// Applies every ledger entry of `controller` this node has not applied yet, if the
    /// controller is loaded (one that is not loads whole, and current, on first use). Returns
    /// how many entries it read.
    pub async fn catch_up(&self, controller: &ControllerId) -> ServiceResult<u64> {
        let Some(handle) = read(&self.controllers).get(controller).cloned() else {
            return Ok(0);
        };
        let mut applied = handle.applied.lock().await;
        let size = self.store.ledger_size(controller.clone()).await?;
        let mut read_count = 0;
        while *applied < size {
            let end = size.min(applied.saturating_add(CHUNK));
            let entries = self.store.entries(controller.clone(), *applied, end).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Err(StoreError::Corrupt(format!("ledger entries {} to {end} are missing", *applied)).into());
            };
            read_count += entries.len() as u64;
            self.apply_entries(&handle, entries).await?;
            *applied = last + 1;
        }
        if read_count > 0 {
            // Entries other nodes committed are this node's to deliver if it leads.
            self.outbox_wake.notify_one();
        }
        Ok(read_count)
    }

    async fn apply_entries(
        &self,
        handle: &Arc<ControllerHandle>,
        entries: Vec<assent_store::StoredEntry>,
    ) -> ServiceResult<()> {
        let controller = handle.id();
        let decoded = entries
            .into_iter()
            .map(|stored| {
                assent_core::encoding::decode(&stored.bytes)
                    .map(|entry| (stored.seq, stored.subject_number, entry))
                    .map_err(|e| ServiceError::Store(StoreError::Corrupt(format!("entry {}: {e}", stored.seq))))
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        // Subjects other nodes created: fetched in one read before applying anything.
        let unknown: Vec<u64> = {
            let subjects = read(&handle.subjects);
            let mut wanted = HashSet::new();
            for (_, number, entry) in &decoded {
                if let (LedgerEntry::Consent(event), Some(number)) = (entry, number)
                    && !subjects.by_pseudonym.get(&event.subject).is_some_and(|id| {
                        subjects.by_id.get(id).is_some_and(|e| e.persisted && e.record.number == *number)
                    })
                {
                    wanted.insert(*number);
                }
            }
            wanted.into_iter().collect()
        };
        if !unknown.is_empty() {
            let records = self.store.subjects_by_number(controller.clone(), unknown).await?;
            let mut subjects = write(&handle.subjects);
            for record in records {
                if subjects.erased.contains(&record.number) {
                    continue;
                }
                // A record this node did not hold under this number replaces whatever it held
                // for the id (its own unstored attempt, or an erased predecessor): none of those
                // states are this record's. Its states come from the entries, applied next.
                subjects.insert_stored(record, Vec::new());
            }
        }
        let mut notices = false;
        {
            let mut subjects = write(&handle.subjects);
            for (seq, number, entry) in &decoded {
                match entry {
                    LedgerEntry::Consent(event) => {
                        let owner = subjects.by_pseudonym.get(&event.subject).cloned();
                        if let Some(entry) = owner.and_then(|id| subjects.by_id.get_mut(&id)) {
                            entry.apply(&event.purpose, ConsentState::from_event(event, *seq));
                        }
                    }
                    LedgerEntry::Erasure(_) => {
                        if let Some(number) = number {
                            subjects.remove_number(*number);
                        }
                    }
                    LedgerEntry::Notice(_) => notices = true,
                }
            }
        }
        if notices {
            self.reload_catalog(&controller).await?;
        }
        Ok(())
    }

    /// Re-reads a loaded controller's settings and catalog from the store.
    pub async fn reload_catalog(&self, controller: &ControllerId) -> ServiceResult<()> {
        let Some(handle) = read(&self.controllers).get(controller).cloned() else {
            return Ok(());
        };
        let Some(info) = self.store.controller(controller.clone()).await? else {
            return Ok(());
        };
        let catalog = self.catalog_view(&info).await?;
        *write(&handle.info) = info;
        *write(&handle.catalog) = Arc::new(catalog);
        Ok(())
    }

    /// Takes on the record another node stored for a subject this node was about to create,
    /// with the subject's states as its ledger entries give them. Done while holding the feed's
    /// cursor, so the feed cannot apply an erasure or a newer event between the reads here and
    /// the update of memory; states merge by sequence number, so nothing newer is overwritten.
    pub(crate) async fn adopt_subject(&self, handle: &ControllerHandle, record: SubjectRecord) -> ServiceResult<()> {
        let _applied = handle.applied.lock().await;
        let controller = handle.id();
        let still_stored = self.store.subjects_by_number(controller.clone(), vec![record.number]).await?;
        if !still_stored.iter().any(|s| s.pseudonym == record.pseudonym) {
            // Erased since the store refused: the retry will create the customer afresh.
            let mut subjects = write(&handle.subjects);
            subjects.erased.insert(record.number);
            if subjects.by_id.get(&record.id).is_some_and(|e| !e.persisted) {
                subjects.remove(&record.id);
            }
            return Ok(());
        }
        let entries = self.store.subject_entries(controller, record.number).await?;
        let mut subjects = write(&handle.subjects);
        let known =
            subjects.by_id.get(&record.id).is_some_and(|e| e.persisted && e.record.pseudonym == record.pseudonym);
        if !known {
            subjects.insert_stored(record.clone(), Vec::new());
        }
        if let Some(entry) = subjects.by_id.get_mut(&record.id) {
            for stored in entries {
                if let Ok(LedgerEntry::Consent(event)) = assent_core::encoding::decode(&stored.bytes)
                    && event.subject == record.pseudonym
                {
                    entry.apply(&event.purpose, ConsentState::from_event(&event, stored.seq));
                }
            }
        }
        Ok(())
    }
}
