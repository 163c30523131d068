//! Receipts the customer keeps: a JWS over Kantara Consent Receipt v1.1 fields plus what it
//! takes to check the choice against the signed ledger offline.

use assent_core::catalog::NoticeVersion;
use assent_core::crypto::to_hex;
use assent_core::merkle;
use assent_core::{ConsentModel, LedgerEntry, SubjectId};
use assent_store::{Scope, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::memory::read;
use crate::{Assent, Principal, ServiceError, ServiceResult};

/// The Kantara receipt version the payload follows.
pub const KANTARA_VERSION: &str = "KI-CR-v1.1.0";

impl<S: Store> Assent<S> {
    /// The signed receipt of ledger entry `seq`, which must be one of `subject`'s choices.
    pub async fn receipt(&self, principal: &Principal, subject: &str, seq: u64) -> ServiceResult<String> {
        principal.require(Scope::Read)?;
        let not_found = || ServiceError::NotFound(format!("receipt {seq}"));
        let subject_id = SubjectId::parse(subject).map_err(|e| ServiceError::invalid("subject", e))?;
        let handle = &principal.controller;
        let pseudonym = read(&handle.subjects)
            .by_id
            .get(&subject_id)
            .filter(|e| e.persisted)
            .map(|e| e.record.pseudonym)
            .ok_or_else(|| ServiceError::NotFound("subject".into()))?;
        let controller = handle.id();
        let stored = self.store.entries(controller.clone(), seq, seq + 1).await?.pop().ok_or_else(not_found)?;
        let event = match assent_core::encoding::decode(&stored.bytes) {
            Ok(LedgerEntry::Consent(e)) if e.subject == pseudonym => e,
            Ok(_) => return Err(not_found()),
            Err(e) => return Err(StoreError::Corrupt(e.to_string()).into()),
        };

        // A receipt proves inclusion in a signed checkpoint: sign one now if none covers it.
        let mut checkpoint = self.store.latest_checkpoint(controller.clone()).await?;
        if checkpoint.as_ref().is_none_or(|c| c.tree_size <= seq) {
            checkpoint = Some(self.sign_checkpoint(&controller).await?);
        }
        let checkpoint = checkpoint.ok_or_else(not_found)?;
        let proof = self
            .with_nodes_pub(&controller, |get| merkle::inclusion_proof(seq, checkpoint.tree_size, get)?)
            .await?
            .map_err(|e| ServiceError::Store(StoreError::Corrupt(e.to_string())))?;

        let catalog = handle.catalog();
        let view = catalog.purposes.get(&event.purpose);
        let notice: Option<&NoticeVersion> =
            view.and_then(|v| event.version.and_then(|n| v.version(n)).or_else(|| v.current_version()));
        let language = event.language.clone().map_or_else(|| "en".to_owned(), |l| l.to_string());
        let text = notice.and_then(|n| {
            n.content.texts.iter().find(|(l, _)| l.as_str() == language).or_else(|| n.content.texts.iter().next())
        });
        let categories: Vec<String> =
            notice.map(|n| crate::center::category_names(&catalog, &n.data_categories, &language)).unwrap_or_default();
        let sensitive = notice.is_some_and(|n| {
            n.data_categories.iter().any(|c| catalog.data_categories.get(c).is_some_and(|d| d.personal))
        });
        let recipients: Vec<String> =
            notice.map(|n| n.content.recipients.iter().map(|r| r.name.clone()).collect()).unwrap_or_default();
        let info = read(&handle.info).clone();
        let key = self.ledger_keys.key(&controller)?;
        let model = view.map_or(ConsentModel::OptIn, |v| v.purpose.model);

        let payload = json!({
            "version": KANTARA_VERSION,
            "jurisdiction": event.jurisdiction.clone().unwrap_or_else(|| info.profiles.join(",")),
            "consentTimestamp": event.recorded_at.unix_millis() / 1000,
            "collectionMethod": event.method.as_str(),
            "consentReceiptID": format!("{}/{}", key.origin, seq),
            "publicKey": key.verifier,
            "language": language,
            "piiPrincipalId": subject_id.as_str(),
            "piiControllers": [{ "piiController": info.name, "onBehalf": false }],
            "services": [{
                "service": event.purpose.as_str(),
                "purposes": [{
                    "purpose": text.map(|(_, t)| t.title.clone()).unwrap_or_default(),
                    "purposeCategory": [text.map(|(_, t)| t.how.clone()).unwrap_or_default()],
                    "consentType": if model == ConsentModel::OptOut { "OPT-OUT" } else { "EXPLICIT" },
                    "piiCategory": categories,
                    "primaryPurpose": false,
                    "termination": text.map(|(_, t)| t.retention.clone()).unwrap_or_default(),
                    "thirdPartyDisclosure": !recipients.is_empty(),
                    "thirdPartyName": recipients.join(", "),
                }],
            }],
            "sensitive": sensitive,
            "spiCat": [],
            "assent": {
                "action": event.action.as_str(),
                "purpose": event.purpose.as_str(),
                "benefit": text.map(|(_, t)| t.benefit.clone()).unwrap_or_default(),
                "notice_version": event.version,
                "notice_hash": event.notice_hash.map(|h| h.to_string()),
                "subject_pseudonym": to_hex(&event.subject.0),
                "leaf_index": seq,
                "leaf_hash": to_hex(&stored.leaf_hash),
                "entry": B64.encode(&stored.bytes),
                "tree_size": checkpoint.tree_size,
                "inclusion_proof": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": checkpoint.note,
            },
        });
        let bytes = serde_json::to_vec(&payload).map_err(|e| ServiceError::Store(StoreError::Backend(Box::new(e))))?;
        Ok(assent_core::jws::sign(&bytes, key.signing_key(), &key.verifier))
    }
}
