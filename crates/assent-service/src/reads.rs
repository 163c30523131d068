//! Reads: a subject's consents and history, and decisions. Decisions come from memory only.

use assent_core::decision::{Decision, decide};
use assent_core::event::Method;
use assent_core::{Action, LedgerEntry, PurposeId, Status, SubjectId, Timestamp};
use assent_store::{Scope, Store, StoreError};

use crate::memory::read;
use crate::{Assent, Principal, ServiceError, ServiceResult};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurposeStatus {
    pub purpose: PurposeId,
    pub status: Status,
    pub version: Option<u32>,
    pub current_version: Option<u32>,
    pub since: Option<Timestamp>,
    /// Whether data may be used for this purpose now, and why.
    pub allowed: bool,
    pub reason: assent_core::Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubjectConsents {
    pub subject: String,
    pub purposes: Vec<PurposeStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryItem {
    pub seq: u64,
    pub purpose: PurposeId,
    pub version: Option<u32>,
    pub action: Action,
    pub method: Method,
    pub recorded_at: Timestamp,
    pub notice_hash: Option<String>,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DecisionOut {
    pub allowed: bool,
    pub reason: assent_core::Reason,
}

impl From<Decision> for DecisionOut {
    fn from(d: Decision) -> Self {
        Self { allowed: d.allowed, reason: d.reason }
    }
}

fn parse_subject(subject: &str) -> ServiceResult<SubjectId> {
    SubjectId::parse(subject).map_err(|e| ServiceError::invalid("subject", e))
}

fn unknown_subject() -> ServiceError {
    ServiceError::NotFound("subject".into())
}

impl<S: Store> Assent<S> {
    /// Every purpose of the controller, asked or not, with the subject's standing on it.
    pub fn subject_consents(&self, principal: &Principal, subject: &str) -> ServiceResult<SubjectConsents> {
        principal.require(Scope::Read)?;
        let subject_id = parse_subject(subject)?;
        let now = self.now();
        let catalog = principal.controller.catalog();
        let subjects = read(&principal.controller.subjects);
        let entry = subjects.by_id.get(&subject_id).filter(|e| e.persisted).ok_or_else(unknown_subject)?;
        let purposes = catalog
            .purposes
            .values()
            .map(|view| {
                let terms = view.terms(catalog.refresh_days);
                let state = entry.state(&view.purpose.id);
                let decision = decide(Some(&terms), state, now);
                PurposeStatus {
                    purpose: view.purpose.id.clone(),
                    status: decision.status,
                    version: state.and_then(|s| s.version),
                    current_version: terms.current_version,
                    since: state.map(|s| s.since),
                    allowed: decision.allowed,
                    reason: decision.reason,
                }
            })
            .collect();
        Ok(SubjectConsents { subject: subject.to_owned(), purposes })
    }

    /// The subject's events, oldest first, read from the ledger itself.
    pub async fn history(&self, principal: &Principal, subject: &str) -> ServiceResult<Vec<HistoryItem>> {
        principal.require(Scope::Read)?;
        let subject_id = parse_subject(subject)?;
        let number = {
            let subjects = read(&principal.controller.subjects);
            subjects
                .by_id
                .get(&subject_id)
                .filter(|e| e.persisted)
                .map(|e| e.record.number)
                .ok_or_else(unknown_subject)?
        };
        let entries = self.store.subject_entries(principal.controller.id(), number).await?;
        entries
            .into_iter()
            .map(|stored| match assent_core::encoding::decode(&stored.bytes) {
                Ok(LedgerEntry::Consent(e)) => Ok(HistoryItem {
                    seq: stored.seq,
                    purpose: e.purpose,
                    version: e.version,
                    action: e.action,
                    method: e.method,
                    recorded_at: e.recorded_at,
                    notice_hash: e.notice_hash.map(|h| h.to_string()),
                    leaf_hash: assent_core::crypto::to_hex(&stored.leaf_hash),
                }),
                Ok(_) => Err(StoreError::Corrupt(format!("entry {} is not a consent event", stored.seq)).into()),
                Err(e) => Err(StoreError::Corrupt(e.to_string()).into()),
            })
            .collect()
    }

    /// May the subject's data be used for the purpose, now? Unknown subject or purpose: no.
    pub fn decide(&self, principal: &Principal, subject: &str, purpose: &str) -> ServiceResult<DecisionOut> {
        principal.require(Scope::Decide)?;
        let subject_id = parse_subject(subject)?;
        Ok(self.decide_unchecked(principal, &subject_id, purpose, self.now()))
    }

    /// Decides many checks in order.
    pub fn decide_many(&self, principal: &Principal, checks: &[(String, String)]) -> ServiceResult<Vec<DecisionOut>> {
        principal.require(Scope::Decide)?;
        let mut errors = assent_core::ValidationErrors::default();
        let mut subjects = Vec::with_capacity(checks.len());
        for (i, (subject, _)) in checks.iter().enumerate() {
            match SubjectId::parse(subject) {
                Ok(s) => subjects.push(s),
                Err(e) => errors.push(format!("checks[{i}].subject"), e),
            }
        }
        errors.into_result(())?;
        let now = self.now();
        Ok(subjects.iter().zip(checks).map(|(s, (_, p))| self.decide_unchecked(principal, s, p, now)).collect())
    }

    fn decide_unchecked(
        &self,
        principal: &Principal,
        subject: &SubjectId,
        purpose: &str,
        now: Timestamp,
    ) -> DecisionOut {
        let catalog = principal.controller.catalog();
        let view = PurposeId::parse(purpose).ok().and_then(|id| catalog.purposes.get(&id));
        let Some(view) = view else {
            return decide(None, None, now).into();
        };
        let terms = view.terms(catalog.refresh_days);
        let subjects = read(&principal.controller.subjects);
        let state = subjects.by_id.get(subject).and_then(|e| e.state(&view.purpose.id));
        decide(Some(&terms), state, now).into()
    }
}
