//! The records the store keeps besides the core's domain types.

use std::collections::BTreeMap;
use std::fmt;

use assent_core::catalog::NoticeVersion;
use assent_core::event::Pseudonym;
use assent_core::{
    ConsentState, ControllerId, DataCategory, DataCategoryId, Language, LedgerEntry, Purpose, PurposeId, SubjectId,
    Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Controller {
    pub id: ControllerId,
    pub name: String,
    pub languages: Vec<Language>,
    pub profiles: Vec<String>,
    /// Origins (`https://shop.example`) whose pages may embed the consent prompt and receive
    /// the customer back after it.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub created_at: Timestamp,
}

/// What an API key may do. `Admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    Catalog,
    Collect,
    Decide,
    Read,
    Audit,
}

impl Scope {
    pub const ALL: [Scope; 6] = [Self::Admin, Self::Catalog, Self::Collect, Self::Decide, Self::Read, Self::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Catalog => "catalog",
            Self::Collect => "collect",
            Self::Decide => "decide",
            Self::Read => "read",
            Self::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("scope `{s}` must be one of admin, catalog, collect, decide, read, audit"))
    }
}

/// A stored API key: only the hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub hash: [u8; 32],
    /// The first characters of the key, to tell keys apart in listings and logs.
    pub prefix: String,
    pub controller: ControllerId,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
}

/// A subject and the secret that links it to its ledger pseudonym. Deleting this record is
/// what erases a subject from the ledger's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    /// Storage key: sequential per controller and never reused, so a new subject's rows land at
    /// the end of every index instead of on a random page. Not part of the ledger's bytes.
    pub number: u64,
    pub id: SubjectId,
    pub secret: [u8; 32],
    pub pseudonym: Pseudonym,
    pub created_at: Timestamp,
}

impl fmt::Debug for SubjectRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectRecord")
            .field("number", &self.number)
            .field("pseudonym", &self.pseudonym)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A catalog as stored: categories, purposes and every published notice version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogSnapshot {
    pub data_categories: BTreeMap<DataCategoryId, DataCategory>,
    pub purposes: BTreeMap<PurposeId, Purpose>,
    /// Per purpose, versions in ascending order.
    pub versions: BTreeMap<PurposeId, Vec<NoticeVersion>>,
}

/// One entry to append: its domain form, its canonical bytes and leaf hash (computed by the
/// caller, outside any lock), and erasable evidence kept beside the ledger.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub entry: LedgerEntry,
    pub bytes: Vec<u8>,
    pub leaf_hash: [u8; 32],
    pub evidence: Option<String>,
    /// The [`SubjectRecord::number`] of a consent entry's subject.
    pub subject_number: Option<u64>,
}

impl NewEntry {
    pub fn new(entry: LedgerEntry, evidence: Option<String>) -> Self {
        let bytes = assent_core::encoding::encode(&entry);
        let leaf_hash = assent_core::crypto::leaf_hash(&bytes);
        Self { entry, bytes, leaf_hash, evidence, subject_number: None }
    }

    pub fn with_subject(mut self, number: u64) -> Self {
        self.subject_number = Some(number);
        self
    }
}

/// The claim on an idempotency key that an append makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    /// SHA-256 of the request that used the key: same key, different hash means a conflict.
    pub request_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: [u8; 32],
    pub first_seq: u64,
    pub count: u64,
}

/// An atomic unit of ledger writing.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    pub controller: ControllerId,
    /// Subjects first seen in this batch; a backend inserts them if absent.
    pub new_subjects: Vec<SubjectRecord>,
    pub entries: Vec<NewEntry>,
    /// Notice versions whose publication entries are in `entries`.
    pub notice_versions: Vec<NoticeVersion>,
    pub idempotency: Option<IdempotencyClaim>,
    /// Erase this subject (by number) in the same transaction: its record and secret, evidence
    /// and state go; its ledger entries stay, attributable to no one.
    pub erase_subject: Option<u64>,
}

impl AppendBatch {
    /// The sequence number of the entry in this batch that publishes `version`, given the first
    /// sequence number the batch was given: a notice version is stored only with its entry.
    pub fn publication_seq(&self, first_seq: u64, version: &NoticeVersion) -> crate::StoreResult<u64> {
        (first_seq..)
            .zip(&self.entries)
            .find_map(|(seq, new)| match &new.entry {
                LedgerEntry::Notice(n) if n.purpose == version.purpose && n.version == version.version => Some(seq),
                _ => None,
            })
            .ok_or_else(|| {
                crate::StoreError::Corrupt(format!(
                    "notice version {} of `{}` has no publication entry in its batch",
                    version.version, version.purpose
                ))
            })
    }
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root: [u8; 32],
    /// The C2SP signed note.
    pub note: String,
    pub signed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appended {
    pub first_seq: u64,
    /// The number each of the batch's `new_subjects` is stored under, in order. A backend
    /// shared by several nodes allocates numbers itself (two nodes cannot both hand out the
    /// next one); a subject already stored keeps its number.
    pub subject_numbers: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: u64,
    pub bytes: Vec<u8>,
    pub leaf_hash: [u8; 32],
    /// The Merkle subtree hashes this leaf completed, by level from 1 up (see
    /// `assent_core::merkle::completed_by`): stored with the entry, so no separate index grows.
    pub nodes: Vec<[u8; 32]>,
    /// The subject a consent entry is about, or an erasure erased, by
    /// [`SubjectRecord::number`]; `None` for notices. Storage metadata, not part of the bytes:
    /// it is how another node following the ledger learns whom an entry concerns.
    pub subject_number: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub subject: Pseudonym,
    pub purpose: PurposeId,
    pub state: ConsentState,
}

/// One ledger entry as the outbox hands it to the dispatcher.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: u64,
    pub bytes: Vec<u8>,
    pub leaf_hash: [u8; 32],
    /// Whom the entry concerns, for downstream systems that know customers by id: a consent's
    /// subject (unless erased since), or the subject an erasure erased (kept in the outbox row
    /// only until every destination has the entry).
    pub subject: Option<SubjectId>,
}

impl fmt::Debug for OutboxEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxEntry").field("seq", &self.seq).finish_non_exhaustive()
    }
}

/// Where a controller's events are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A signed HTTP POST per event (Standard Webhooks).
    Webhook,
    /// A JetStream message per event on `assent.<controller>.…`.
    Nats,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Nats => "nats",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "webhook" => Ok(Self::Webhook),
            "nats" => Ok(Self::Nats),
            other => Err(format!("unknown destination kind `{other}`")),
        }
    }
}

/// How far a destination has got: every entry below `cursor` was delivered or dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub cursor: u64,
    /// Failed attempts at the entry at `cursor`.
    pub attempts: u32,
    pub first_failure: Option<Timestamp>,
    pub next_attempt: Option<Timestamp>,
    /// The last failure, in words that name no customer.
    pub last_error: Option<String>,
}

/// A downstream system events are delivered to.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// `wh_<hex>` for webhooks, `nats_<controller>` for the NATS stream.
    pub id: String,
    pub controller: ControllerId,
    pub kind: DestinationKind,
    pub url: String,
    /// The webhook signing secret (`whsec_…`). Stored as is: signing needs it.
    pub secret: Option<String>,
    /// Only consent events for these purposes (all when empty); erasures always go.
    pub purposes: Vec<PurposeId>,
    pub created_at: Timestamp,
    pub progress: Progress,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("controller", &self.controller)
            .field("kind", &self.kind)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// One entry's delivery to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub destination: String,
    pub seq: u64,
    /// When the event was recorded (and committed): where time-to-honor starts.
    pub committed_at: Timestamp,
    /// `None` for a dead letter.
    pub delivered_at: Option<Timestamp>,
    /// When the downstream system confirmed it applied the event (a webhook's 2xx, or
    /// `POST /v1/deliveries/{id}/ack`).
    pub acked_at: Option<Timestamp>,
    pub attempts: u32,
    /// Why a dead letter was given up on.
    pub error: Option<String>,
}

/// Which deliveries of a destination to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFilter {
    All,
    /// Given up on after the retry period.
    Dead,
    /// Delivered, not yet confirmed.
    Unacknowledged,
    /// Confirmed: the ones time-to-honor is measured on.
    Acknowledged,
}
