//! Recording choices: single events, batches and withdraw-all.

use std::sync::Arc;

use assent_core::crypto::{evidence_commitment, to_hex};
use assent_core::decision::PurposeTerms;
use assent_core::encoding::canonical_json;
use assent_core::event::{ConsentEvent, Method, parse_jurisdiction};
use assent_core::{
    Action, ConsentModel, ConsentState, Language, LedgerEntry, PurposeId, SubjectId, Timestamp, ValidationErrors,
};
use assent_store::{AppendBatch, IdempotencyClaim, IdempotencyRecord, NewEntry, Scope, Store, StoreError};

use crate::memory::{CatalogView, ControllerHandle, SubjectEntry, read, write};
use crate::{Assent, Principal, ServiceError, ServiceResult, new_subject, random_secrets};

/// The most events one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// One choice as a client sends it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    pub subject: String,
    pub purpose: String,
    #[serde(default)]
    pub version: Option<u32>,
    pub action: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawAllInput {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// An idempotency key and the fingerprint of the request that carries it.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: [u8; 32],
}

impl Idempotency {
    /// Keys are 1 to 255 visible ASCII characters.
    pub fn new(key: &str, request_hash: [u8; 32]) -> ServiceResult<Self> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        Ok(Self { key: key.to_owned(), request_hash })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateOut {
    pub purpose: PurposeId,
    pub status: assent_core::Status,
    pub version: Option<u32>,
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordedConsent {
    pub seq: u64,
    pub leaf_hash: String,
    pub state: StateOut,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WithdrawAllOut {
    pub withdrawn: Vec<PurposeId>,
}

/// A validated choice, before the subject's pseudonym and sequence number are known.
#[derive(Debug, Clone)]
struct Planned {
    subject: SubjectId,
    purpose: PurposeId,
    version: Option<u32>,
    action: Action,
    method: Method,
    jurisdiction: Option<String>,
    language: Option<Language>,
    evidence: Option<String>,
    /// Only record this if the subject's state on the purpose is still the one at this sequence
    /// number (the sweeper must not expire a grant given again since it looked).
    unless_changed_since: Option<u64>,
}

/// A committed event.
#[derive(Debug, Clone)]
struct Committed {
    seq: u64,
    event: ConsentEvent,
    leaf_hash: [u8; 32],
    /// The stored number of its subject, when known.
    subject_number: Option<u64>,
}

struct Common {
    method: Method,
    jurisdiction: Option<String>,
    language: Option<Language>,
    evidence: Option<String>,
}

fn parse_common(
    method: Option<&str>,
    evidence: Option<&serde_json::Value>,
    jurisdiction: Option<&str>,
    language: Option<&str>,
    errors: &mut ValidationErrors,
) -> Option<Common> {
    let method = assent_core::id::parse_field(errors, "method", method.unwrap_or("api"), Method::parse_client);
    let evidence = match evidence {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(v @ serde_json::Value::Object(_)) => {
            if contains_fraction(v) {
                errors.push("evidence", "numbers in evidence must be whole numbers between -(2^53-1) and 2^53-1");
                None
            } else {
                // Canonical form, so the commitment does not depend on key order or spacing.
                Some(Some(String::from_utf8_lossy(&canonical_json(v)).into_owned()))
            }
        }
        Some(_) => {
            errors.push("evidence", "must be a JSON object");
            None
        }
    };
    let jurisdiction = match jurisdiction {
        None => Some(None),
        Some(j) => assent_core::id::parse_field(errors, "jurisdiction", j, parse_jurisdiction).map(Some),
    };
    let language = match language {
        None => Some(None),
        Some(l) => assent_core::id::parse_field(errors, "language", l, Language::parse).map(Some),
    };
    Some(Common { method: method?, jurisdiction: jurisdiction?, language: language?, evidence: evidence? })
}

fn contains_fraction(v: &serde_json::Value) -> bool {
    match v {
        // RFC 8785 prints numbers as IEEE doubles: only integers a double holds exactly hash
        // the same in every JCS implementation.
        serde_json::Value::Number(n) => n.as_i64().is_none_or(|i| i.unsigned_abs() >= (1 << 53)),
        serde_json::Value::Array(items) => items.iter().any(contains_fraction),
        serde_json::Value::Object(map) => map.values().any(contains_fraction),
        _ => false,
    }
}

fn plan_one(input: &ConsentInput, catalog: &CatalogView) -> Result<Planned, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let subject = assent_core::id::parse_field(&mut errors, "subject", &input.subject, SubjectId::parse);
    let action = assent_core::id::parse_field(&mut errors, "action", &input.action, |a| match Action::parse(a) {
        Ok(Action::Expire) => Err("action `expire` is recorded by Assent itself; send `grant` or `withdraw`".into()),
        other => other,
    });
    let view = match PurposeId::parse(&input.purpose) {
        Err(e) => {
            errors.push("purpose", e);
            None
        }
        Ok(id) => match catalog.purposes.get(&id) {
            None => {
                errors.push("purpose", format!("unknown purpose `{id}`"));
                None
            }
            Some(view) => Some(view),
        },
    };
    if let Some(view) = view {
        if view.purpose.model == ConsentModel::Necessary {
            errors.push(
                "purpose",
                format!("purpose `{}` is necessary for the service and takes no consent", view.purpose.id),
            );
        }
        match (action, input.version) {
            (Some(Action::Grant), None) => {
                errors.push("version", "a grant must name the published notice version the customer saw")
            }
            (_, Some(n)) if view.version(n).is_none() => {
                errors.push("version", format!("version {n} of purpose `{}` is not published", view.purpose.id));
            }
            _ => {}
        }
    }
    let common = parse_common(
        input.method.as_deref(),
        input.evidence.as_ref(),
        input.jurisdiction.as_deref(),
        input.language.as_deref(),
        &mut errors,
    );
    match (subject, action, view, common) {
        (Some(subject), Some(action), Some(view), Some(common)) if errors.is_empty() => Ok(Planned {
            subject,
            purpose: view.purpose.id.clone(),
            version: input.version,
            action,
            method: common.method,
            jurisdiction: common.jurisdiction,
            language: common.language,
            evidence: common.evidence,
            unless_changed_since: None,
        }),
        _ => Err(errors),
    }
}

fn recorded(catalog: &CatalogView, committed: &[Committed]) -> Vec<RecordedConsent> {
    // A batch shares one time and few purposes: work out each purpose's terms once.
    let mut terms: Vec<(&PurposeId, Timestamp, PurposeTerms<'_>)> = Vec::new();
    committed
        .iter()
        .map(|c| {
            let e = &c.event;
            let state = ConsentState::from_event(e, c.seq);
            let known = terms.iter().find(|(p, at, _)| **p == e.purpose && *at == e.recorded_at).map(|(_, _, t)| *t);
            let t = known.or_else(|| {
                let t = catalog.purposes.get(&e.purpose)?.terms_at(Some(e.recorded_at), catalog.refresh_days);
                terms.push((&e.purpose, e.recorded_at, t));
                Some(t)
            });
            let status = match t {
                Some(t) => assent_core::decision::status(&t, Some(&state), e.recorded_at),
                None => match e.action {
                    Action::Grant => assent_core::Status::Granted,
                    Action::Withdraw => assent_core::Status::Withdrawn,
                    Action::Expire => assent_core::Status::Expired,
                },
            };
            RecordedConsent {
                seq: c.seq,
                leaf_hash: to_hex(&c.leaf_hash),
                state: StateOut { purpose: e.purpose.clone(), status, version: e.version, since: e.recorded_at },
            }
        })
        .collect()
}

impl<S: Store> Assent<S> {
    /// Records one choice.
    pub async fn record_consent(
        &self,
        principal: &Principal,
        input: ConsentInput,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<RecordedConsent> {
        principal.require(Scope::Collect)?;
        let catalog = principal.controller.catalog();
        let mut out = match self.replay(principal, idempotency.as_ref()).await? {
            Some(committed) => recorded(&principal.controller.catalog(), &committed),
            None => {
                let planned = plan_one(&input, &catalog)?;
                let committed = self.commit(&principal.controller, &catalog, vec![planned], idempotency).await?;
                recorded(&principal.controller.catalog(), &committed)
            }
        };
        out.pop().ok_or_else(|| ServiceError::Conflict("idempotency key belongs to a request of another kind".into()))
    }

    /// Records up to [`MAX_BATCH`] choices, all or nothing.
    pub async fn record_batch(
        &self,
        principal: &Principal,
        inputs: Vec<ConsentInput>,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<Vec<RecordedConsent>> {
        principal.require(Scope::Collect)?;
        let catalog = principal.controller.catalog();
        if let Some(committed) = self.replay(principal, idempotency.as_ref()).await? {
            return Ok(recorded(&principal.controller.catalog(), &committed));
        }
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(ServiceError::invalid("events", format!("send 1 to {MAX_BATCH} events, got {}", inputs.len())));
        }
        let mut errors = ValidationErrors::default();
        let mut planned = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            match plan_one(input, &catalog) {
                Ok(p) => planned.push(p),
                Err(e) => errors.extend(e.prefixed(&format!("events[{i}]"))),
            }
        }
        errors.into_result(())?;
        let committed = self.commit(&principal.controller, &catalog, planned, idempotency).await?;
        Ok(recorded(&principal.controller.catalog(), &committed))
    }

    /// Withdraws every purpose the subject has granted, in one call. With `gpc`, also records
    /// an opt-out of every sale/sharing or targeted-advertising purpose not already withdrawn.
    pub async fn withdraw_all(
        &self,
        principal: &Principal,
        subject: &str,
        input: WithdrawAllInput,
        gpc: bool,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<WithdrawAllOut> {
        self.withdraw_where(principal, subject, input, gpc, true, idempotency).await
    }

    /// Records the Global Privacy Control signal alone: an opt-out of every sale/sharing or
    /// targeted-advertising purpose not already withdrawn, and nothing else. Recorded once: a
    /// second call finds nothing left to withdraw.
    pub async fn apply_gpc(
        &self,
        principal: &Principal,
        subject: &str,
        input: WithdrawAllInput,
    ) -> ServiceResult<WithdrawAllOut> {
        self.withdraw_where(principal, subject, input, true, false, None).await
    }

    async fn withdraw_where(
        &self,
        principal: &Principal,
        subject: &str,
        input: WithdrawAllInput,
        gpc: bool,
        everything: bool,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<WithdrawAllOut> {
        principal.require(Scope::Collect)?;
        if let Some(committed) = self.replay(principal, idempotency.as_ref()).await? {
            return Ok(WithdrawAllOut { withdrawn: committed.into_iter().map(|c| c.event.purpose).collect() });
        }
        let mut errors = ValidationErrors::default();
        let subject = assent_core::id::parse_field(&mut errors, "subject", subject, SubjectId::parse);
        let common = parse_common(
            input.method.as_deref(),
            input.evidence.as_ref(),
            input.jurisdiction.as_deref(),
            input.language.as_deref(),
            &mut errors,
        );
        let (Some(subject), Some(common)) = (subject, common) else {
            return Err(errors.into());
        };
        errors.into_result(())?;
        let catalog = principal.controller.catalog();
        let mut planned = Vec::new();
        {
            let subjects = read(&principal.controller.subjects);
            let entry = subjects.by_id.get(&subject);
            for view in catalog.purposes.values() {
                if view.purpose.model == ConsentModel::Necessary {
                    continue;
                }
                let last = entry.and_then(|e| e.state(&view.purpose.id)).map(|s| s.action);
                let gpc_purpose = view.purpose.sale_or_sharing || view.purpose.targeted_advertising;
                // "Everything" means every grant, and an objection to every opt-out purpose.
                let objectable = last == Some(Action::Grant)
                    || (view.purpose.model == ConsentModel::OptOut && last != Some(Action::Withdraw));
                let method = if everything && objectable {
                    common.method
                } else if gpc && gpc_purpose && last != Some(Action::Withdraw) {
                    Method::Gpc
                } else {
                    continue;
                };
                planned.push(Planned {
                    subject: subject.clone(),
                    purpose: view.purpose.id.clone(),
                    version: None,
                    action: Action::Withdraw,
                    method,
                    jurisdiction: common.jurisdiction.clone(),
                    language: common.language.clone(),
                    evidence: common.evidence.clone(),
                    unless_changed_since: None,
                });
            }
        }
        let committed = self.commit(&principal.controller, &catalog, planned, idempotency).await?;
        Ok(WithdrawAllOut { withdrawn: committed.into_iter().map(|c| c.event.purpose).collect() })
    }

    /// Records an `expire` event for every grant that has lapsed by now, in every loaded
    /// controller, so the ledger itself says when each consent ended. Decisions already say
    /// `expired` from the moment of expiry; this makes it a fact anyone auditing the log sees.
    /// Returns how many grants it expired.
    pub async fn sweep_expired(&self) -> ServiceResult<usize> {
        const PER_BATCH: usize = 1000;
        let mut expired = 0;
        let handles: Vec<_> = read(&self.controllers).values().cloned().collect();
        for handle in handles {
            let catalog = handle.catalog();
            let now = self.now();
            let mut planned = Vec::new();
            {
                let subjects = read(&handle.subjects);
                for (id, entry) in subjects.by_id.iter().filter(|(_, e)| e.persisted) {
                    for (purpose, state) in &entry.states {
                        let Some(view) = catalog.purposes.get(purpose) else { continue };
                        let terms = view.terms(catalog.refresh_days);
                        if assent_core::decision::lapses_at(&terms, state).is_some_and(|at| now >= at) {
                            planned.push(Planned {
                                subject: id.clone(),
                                purpose: purpose.clone(),
                                version: state.version,
                                action: Action::Expire,
                                method: Method::System,
                                jurisdiction: None,
                                language: None,
                                evidence: None,
                                unless_changed_since: Some(state.seq),
                            });
                        }
                    }
                }
            }
            while !planned.is_empty() {
                let rest = planned.split_off(planned.len().min(PER_BATCH));
                expired += self.commit(&handle, &catalog, planned, None).await?.len();
                planned = rest;
            }
        }
        Ok(expired)
    }

    /// If `idempotency` names a key already used, returns the events of its first use (same
    /// request) or refuses (different request).
    async fn replay(
        &self,
        principal: &Principal,
        idempotency: Option<&Idempotency>,
    ) -> ServiceResult<Option<Vec<Committed>>> {
        let Some(idem) = idempotency else {
            return Ok(None);
        };
        let controller = principal.controller.id();
        match self.store.find_idempotency(controller, idem.key.clone()).await? {
            None => Ok(None),
            Some(record) => self.replay_record(&principal.controller, idem, record).await.map(Some),
        }
    }

    async fn replay_record(
        &self,
        handle: &ControllerHandle,
        idem: &Idempotency,
        record: IdempotencyRecord,
    ) -> ServiceResult<Vec<Committed>> {
        if record.request_hash != idem.request_hash {
            return Err(ServiceError::IdempotencyMismatch(idem.key.clone()));
        }
        let entries = self.store.entries(handle.id(), record.first_seq, record.first_seq + record.count).await?;
        let committed = entries
            .into_iter()
            .map(|stored| match assent_core::encoding::decode(&stored.bytes) {
                Ok(LedgerEntry::Consent(event)) => Ok(Committed {
                    seq: stored.seq,
                    event,
                    leaf_hash: stored.leaf_hash,
                    subject_number: stored.subject_number,
                }),
                Ok(_) => Err(ServiceError::Store(StoreError::Corrupt(format!(
                    "entry {} is not a consent event",
                    stored.seq
                )))),
                Err(e) => Err(ServiceError::Store(StoreError::Corrupt(e.to_string()))),
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        // The first request may have committed without reaching memory yet: a replayed 2xx
        // promises read-your-writes as much as the first one did.
        apply_committed(handle, &committed);
        Ok(committed)
    }

    /// Turns planned choices into ledger entries, appends them atomically, and applies the
    /// result to memory before returning. If another node stored one of the subjects first, its
    /// record is adopted and the entries are made again for it.
    async fn commit(
        &self,
        handle: &Arc<ControllerHandle>,
        catalog: &CatalogView,
        planned: Vec<Planned>,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<Vec<Committed>> {
        // Each retry adopts one more subject another node created in the same instant; a batch
        // racing many such nodes at once gives up after a few rounds rather than spin.
        const ATTEMPTS: usize = 8;
        let mut attempt = 1;
        loop {
            match self.commit_once(handle, catalog, planned.clone(), idempotency.clone()).await {
                Err(ServiceError::Store(StoreError::SubjectExists(record))) if attempt < ATTEMPTS => {
                    self.adopt_subject(handle, *record).await?;
                    attempt += 1;
                }
                Err(ServiceError::Store(StoreError::SubjectExists(_))) => {
                    return Err(ServiceError::Conflict(
                        "other nodes kept creating the same customers; nothing was recorded, try again".into(),
                    ));
                }
                other => return other,
            }
        }
    }

    async fn commit_once(
        &self,
        handle: &Arc<ControllerHandle>,
        catalog: &CatalogView,
        planned: Vec<Planned>,
        idempotency: Option<Idempotency>,
    ) -> ServiceResult<Vec<Committed>> {
        let now = self.now();
        let controller = handle.id();
        let mut secrets = random_secrets(planned.len())?;
        let mut new_subjects = Vec::new();
        let mut queued = std::collections::HashSet::new();
        let mut events = Vec::with_capacity(planned.len());
        let mut owners: Vec<SubjectId> = Vec::with_capacity(planned.len());
        {
            let mut subjects = write(&handle.subjects);
            for p in planned {
                if !subjects.by_id.contains_key(&p.subject) {
                    let secret = secrets.pop().ok_or_else(|| ServiceError::Conflict("out of fresh secrets".into()))?;
                    let record = new_subject(p.subject.clone(), subjects.next_number, now, secret);
                    subjects.next_number += 1;
                    subjects.by_pseudonym.insert(record.pseudonym, p.subject.clone());
                    subjects
                        .by_id
                        .insert(p.subject.clone(), SubjectEntry { record, persisted: false, states: Vec::new() });
                }
                let Some(entry) = subjects.by_id.get(&p.subject) else {
                    continue;
                };
                if let Some(seq) = p.unless_changed_since
                    && entry.state(&p.purpose).map(|s| s.seq) != Some(seq)
                {
                    continue;
                }
                if !entry.persisted && queued.insert(p.subject.clone()) {
                    new_subjects.push(entry.record.clone());
                }
                let version = p.version.or_else(|| entry.state(&p.purpose).and_then(|s| s.version));
                let notice_hash =
                    version.and_then(|n| catalog.purposes.get(&p.purpose).and_then(|v| v.version(n))).map(|v| v.hash);
                let evidence_hash =
                    p.evidence.as_ref().map(|e| evidence_commitment(&entry.record.secret, e.as_bytes()));
                let event = ConsentEvent {
                    controller: controller.clone(),
                    subject: entry.record.pseudonym,
                    purpose: p.purpose,
                    version,
                    notice_hash,
                    action: p.action,
                    method: p.method,
                    recorded_at: now,
                    jurisdiction: p.jurisdiction,
                    language: p.language,
                    evidence: evidence_hash,
                };
                events.push((event, p.evidence, entry.record.number));
                owners.push(p.subject);
            }
        }
        let entries: Vec<NewEntry> = events
            .into_iter()
            .map(|(event, evidence, number)| NewEntry::new(LedgerEntry::Consent(event), evidence).with_subject(number))
            .collect();
        if entries.is_empty() && idempotency.is_none() {
            return Ok(Vec::new());
        }
        let claim = idempotency.as_ref().map(|i| IdempotencyClaim { key: i.key.clone(), request_hash: i.request_hash });
        let batch = Arc::new(AppendBatch {
            controller,
            new_subjects,
            entries,
            notice_versions: vec![],
            idempotency: claim,
            erase_subject: None,
        });
        let appended = match self.store.append(Arc::clone(&batch)).await {
            Ok(a) => a,
            Err(StoreError::IdempotencyKeyUsed(record)) => {
                // Lost a race with a concurrent request carrying the same key.
                let Some(idem) = idempotency.as_ref() else {
                    return Err(ServiceError::Conflict("idempotency race".into()));
                };
                return self.replay_record(handle, idem, record).await;
            }
            Err(StoreError::NotFound(what)) => {
                return Err(ServiceError::Conflict(format!(
                    "{what} was erased while this request ran; nothing was recorded"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.outbox_wake.notify_one();
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        let committed: Vec<Committed> = batch
            .entries
            .into_iter()
            .zip(appended.first_seq..)
            .filter_map(|(new, seq)| match new.entry {
                LedgerEntry::Consent(event) => {
                    Some(Committed { seq, event, leaf_hash: new.leaf_hash, subject_number: None })
                }
                LedgerEntry::Notice(_) | LedgerEntry::Erasure(_) => None,
            })
            .collect();
        {
            let mut subjects = write(&handle.subjects);
            for (record, number) in batch.new_subjects.iter().zip(&appended.subject_numbers) {
                subjects.mark_stored(&record.id, &record.pseudonym, *number);
            }
            // We know whose each event is: apply by id, without the pseudonym map.
            for (c, owner) in committed.iter().zip(&owners) {
                if let Some(entry) = subjects.by_id.get_mut(owner) {
                    entry.apply(&c.event.purpose, ConsentState::from_event(&c.event, c.seq));
                }
            }
        }
        Ok(committed)
    }
}

/// Applies committed events to memory. Safe to repeat: a committed event proves its subject's
/// record committed with it (under the number the store gave), and the seq guard keeps the
/// newest state.
fn apply_committed(handle: &ControllerHandle, committed: &[Committed]) {
    let mut subjects = write(&handle.subjects);
    for c in committed {
        let Some(owner) = subjects.by_pseudonym.get(&c.event.subject).cloned() else { continue };
        if let Some(number) = c.subject_number {
            subjects.mark_stored(&owner, &c.event.subject, number);
        }
        if let Some(entry) = subjects.by_id.get_mut(&owner) {
            entry.apply(&c.event.purpose, ConsentState::from_event(&c.event, c.seq));
        }
    }
}
