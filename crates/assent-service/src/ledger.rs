//! The provable side of the ledger: checkpoints, proofs, entries, receipts and erasure.

use std::collections::HashMap;

use assent_core::crypto::{Hash32, to_hex};
use assent_core::merkle::{self, ProofError};
use assent_core::note::Checkpoint;
use assent_core::{ControllerId, LedgerEntry, SubjectId, ValidationErrors};
use assent_store::{AppendBatch, NewEntry, Scope, Store, StoreError, StoredCheckpoint};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::memory::{read, write};
use crate::{Assent, Principal, ServiceError, ServiceResult};

/// At most this many entries per `entries` call.
pub const MAX_ENTRIES: u64 = 1000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionOut {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyOut {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryOut {
    pub index: u64,
    pub data: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ErasureOut {
    pub erased: bool,
    /// The ledger entry recording the erasure (it names no one).
    pub seq: u64,
}

fn b64_all(hashes: &[Hash32]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

fn proof_error(e: ProofError) -> ServiceError {
    ServiceError::invalid("tree_size", e.to_string())
}

impl<S: Store> Assent<S> {
    /// Runs a Merkle computation against the stored nodes it needs, fetched in one call.
    pub(crate) async fn with_nodes_pub<T>(
        &self,
        controller: &ControllerId,
        f: impl Fn(&mut dyn FnMut(u8, u64) -> Result<Hash32, ProofError>) -> Result<T, ProofError>,
    ) -> ServiceResult<Result<T, ProofError>> {
        let wanted = merkle::nodes_needed(|get| {
            let mut adapt = |l, i| get(l, i).map_err(|never| match never {});
            let _ = f(&mut adapt);
        });
        let hashes = self.store.tree_nodes(controller.clone(), wanted.clone()).await?;
        let nodes: HashMap<(u8, u64), Hash32> = wanted.into_iter().zip(hashes).collect();
        let mut get =
            |level, index| nodes.get(&(level, index)).copied().ok_or(ProofError::MissingNode { level, index });
        Ok(f(&mut get))
    }

    async fn root_at(&self, controller: &ControllerId, size: u64) -> ServiceResult<Hash32> {
        self.with_nodes_pub(controller, |get| merkle::root(size, get))
            .await?
            .map_err(|e| ServiceError::Store(StoreError::Corrupt(e.to_string())))
    }

    /// Signs a checkpoint of the ledger as it is now, unless the latest one already covers it.
    pub async fn sign_checkpoint(&self, controller: &ControllerId) -> ServiceResult<StoredCheckpoint> {
        let _one_at_a_time = self.checkpointing.lock().await;
        let size = self.store.ledger_size(controller.clone()).await?;
        if let Some(latest) = self.store.latest_checkpoint(controller.clone()).await?
            && latest.tree_size >= size
        {
            return Ok(latest);
        }
        let root = self.root_at(controller, size).await?;
        let key = self.ledger_keys.key(controller)?;
        let note = Checkpoint { origin: key.origin.clone(), size, root }.sign(key.signing_key());
        let stored = StoredCheckpoint { tree_size: size, root, note, signed_at: self.now() };
        // The empty log is served signed but never stored: there is nothing to be consistent with.
        if size > 0 {
            self.store.put_checkpoint(controller.clone(), stored.clone()).await?;
        }
        Ok(stored)
    }

    /// Signs a fresh checkpoint for every controller whose ledger grew: run every second.
    pub async fn sign_checkpoints(&self) -> ServiceResult<usize> {
        let mut signed = 0;
        let mut first_error = None;
        for id in self.controller_ids() {
            // One controller's trouble must not stop the others' checkpoints.
            let outcome = async {
                let size = self.store.ledger_size(id.clone()).await?;
                let latest = self.store.latest_checkpoint(id.clone()).await?.map_or(0, |c| c.tree_size);
                if size > latest {
                    self.sign_checkpoint(&id).await?;
                    return Ok::<bool, ServiceError>(true);
                }
                Ok(false)
            }
            .await;
            match outcome {
                Ok(true) => signed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(controller = %id, error = %e, "could not sign a checkpoint");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if signed == 0 => Err(e),
            _ => Ok(signed),
        }
    }

    /// The latest signed checkpoint note (signing one if none exists yet).
    pub async fn checkpoint_note(&self, controller: &str) -> ServiceResult<String> {
        let id = self.public_controller(controller).await?;
        match self.store.latest_checkpoint(id.clone()).await? {
            Some(c) => Ok(c.note),
            None => Ok(self.sign_checkpoint(&id).await?.note),
        }
    }

    /// The controller's C2SP verifier key.
    pub async fn public_key(&self, controller: &str) -> ServiceResult<String> {
        let id = self.public_controller(controller).await?;
        Ok(self.ledger_keys.key(&id)?.verifier.clone())
    }

    async fn public_controller(&self, controller: &str) -> ServiceResult<ControllerId> {
        let not_found = || ServiceError::NotFound(format!("controller `{controller}`"));
        let id = ControllerId::parse(controller).map_err(|_| not_found())?;
        self.controller(&id).await.map_err(|_| not_found())?;
        Ok(id)
    }

    pub async fn inclusion_proof(
        &self,
        principal: &Principal,
        index: u64,
        tree_size: u64,
    ) -> ServiceResult<InclusionOut> {
        principal.require(Scope::Audit)?;
        let id = principal.controller.id();
        self.check_size(&id, tree_size).await?;
        let path = self
            .with_nodes_pub(&id, |get| merkle::inclusion_proof(index, tree_size, get)?)
            .await?
            .map_err(proof_error)?;
        Ok(InclusionOut { leaf_index: index, tree_size, hashes: b64_all(&path) })
    }

    pub async fn consistency_proof(&self, principal: &Principal, from: u64, to: u64) -> ServiceResult<ConsistencyOut> {
        principal.require(Scope::Audit)?;
        let id = principal.controller.id();
        self.check_size(&id, to).await?;
        let proof =
            self.with_nodes_pub(&id, |get| merkle::consistency_proof(from, to, get)?).await?.map_err(proof_error)?;
        Ok(ConsistencyOut { from, to, hashes: b64_all(&proof) })
    }

    async fn check_size(&self, id: &ControllerId, tree_size: u64) -> ServiceResult<()> {
        let size = self.store.ledger_size(id.clone()).await?;
        if tree_size > size {
            return Err(ServiceError::invalid(
                "tree_size",
                format!("the ledger has {size} entries, fewer than {tree_size}"),
            ));
        }
        Ok(())
    }

    /// Canonical bytes of entries `start <= index < end`, at most [`MAX_ENTRIES`].
    pub async fn ledger_entries(&self, principal: &Principal, start: u64, end: u64) -> ServiceResult<Vec<EntryOut>> {
        principal.require(Scope::Audit)?;
        let mut errors = ValidationErrors::default();
        if end < start {
            errors.push("end", "must not be below `start`");
        } else if end - start > MAX_ENTRIES {
            errors.push("end", format!("at most {MAX_ENTRIES} entries per call"));
        }
        errors.into_result(())?;
        let entries = self.store.entries(principal.controller.id(), start, end).await?;
        Ok(entries.into_iter().map(|e| EntryOut { index: e.seq, data: B64.encode(&e.bytes) }).collect())
    }

    /// Erases a subject: destroys the secret that links them to their entries and removes their
    /// state and evidence, in one transaction with an erasure entry that names no one. The
    /// ledger keeps every byte, so it still verifies end to end.
    pub async fn erase_subject(&self, principal: &Principal, subject: &str) -> ServiceResult<ErasureOut> {
        principal.require(Scope::Admin)?;
        let subject_id = SubjectId::parse(subject).map_err(|e| ServiceError::invalid("subject", e))?;
        let handle = &principal.controller;
        let stored_number = |handle: &crate::memory::ControllerHandle| {
            read(&handle.subjects).by_id.get(&subject_id).filter(|e| e.persisted).map(|e| e.record.number)
        };
        let number = match stored_number(handle) {
            Some(number) => number,
            None => {
                // Another node may have created the customer a moment ago: a 404 must mean
                // there is no one to erase, not that this node had not heard of them yet.
                self.catch_up(&handle.id()).await?;
                stored_number(handle).ok_or_else(|| ServiceError::NotFound("subject".into()))?
            }
        };
        let controller = handle.id();
        let entry = NewEntry::new(
            LedgerEntry::Erasure(assent_core::event::Erasure {
                controller: controller.clone(),
                recorded_at: self.now(),
            }),
            None,
        );
        let appended = self
            .store
            .append_owned(AppendBatch {
                controller,
                new_subjects: vec![],
                entries: vec![entry],
                notice_versions: vec![],
                idempotency: None,
                erase_subject: Some(number),
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => ServiceError::NotFound("subject".into()),
                other => other.into(),
            })?;
        // By number: the feed may meanwhile have applied a new record under the same id.
        write(&handle.subjects).remove_number(number);
        self.outbox_wake.notify_one();
        Ok(ErasureOut { erased: true, seq: appended.first_seq })
    }

    /// Hex of a leaf hash, for responses.
    pub fn hex(hash: &Hash32) -> String {
        to_hex(hash)
    }
}
