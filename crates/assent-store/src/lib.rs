//! The storage boundary.
//!
//! [`Store`] is the one trait the rest of Assent talks to. Each backend (SQLite here, PostgreSQL
//! next) is its own crate owning its migrations; the binary picks one at the edge from the
//! database URL, and everything above is generic over it.
//!
//! Contract every backend keeps (the conformance story checks it):
//! - ledger entries are only ever inserted, never updated or deleted;
//! - each controller's sequence numbers start at 0 and have no gaps, whatever the concurrency;
//! - an [`AppendBatch`] is atomic and durable (fsynced) before `append` returns `Ok`;
//! - the stored consent state is the projection of the ledger under
//!   [`assent_core::state::apply`]: the later sequence number wins;
//! - an idempotency key is claimed at most once per controller.

pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod model;

use std::future::Future;
use std::sync::Arc;

pub use model::*;

use assent_core::{ControllerId, DataCategory, Purpose, Timestamp};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{0}` already exists")]
    AlreadyExists(String),
    #[error("`{0}` was not found")]
    NotFound(String),
    /// The idempotency key was already used; the first use is returned so the caller can replay
    /// its response (same request) or refuse (different request).
    #[error("idempotency key already used")]
    IdempotencyKeyUsed(IdempotencyRecord),
    /// Another writer (another node) stored a different subject under the same id first; the
    /// stored record is returned so the caller can adopt it and write again.
    #[error("subject already stored by another writer")]
    SubjectExists(Box<SubjectRecord>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a backend shared by several nodes announces when another writer changes it, so each
/// node can bring its in-memory projection up to date (see `Assent::follow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The controller's ledger grew: read the entries after the last one applied.
    Ledger(ControllerId),
    /// The controller's catalog or settings changed outside the ledger.
    Catalog(ControllerId),
    /// Announcements may have been missed (the feed reconnected): re-read everything.
    Resync,
}

/// Everything Assent persists. Methods take owned arguments so their futures are `'static`-free
/// of caller borrows and easy to send across tasks.
pub trait Store: Send + Sync + 'static {
    fn create_controller(&self, controller: Controller) -> impl Future<Output = StoreResult<()>> + Send;
    fn update_controller(&self, controller: Controller) -> impl Future<Output = StoreResult<()>> + Send;
    fn controller(&self, id: ControllerId) -> impl Future<Output = StoreResult<Option<Controller>>> + Send;
    fn list_controllers(&self) -> impl Future<Output = StoreResult<Vec<Controller>>> + Send;

    fn create_api_key(&self, key: ApiKeyRecord) -> impl Future<Output = StoreResult<()>> + Send;
    /// Looks a key up by the SHA-256 of its secret; the secret itself is never stored.
    fn find_api_key(&self, hash: [u8; 32]) -> impl Future<Output = StoreResult<Option<ApiKeyRecord>>> + Send;

    fn put_data_category(
        &self,
        controller: ControllerId,
        category: DataCategory,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn put_purpose(&self, controller: ControllerId, purpose: Purpose) -> impl Future<Output = StoreResult<()>> + Send;
    fn load_catalog(&self, controller: ControllerId) -> impl Future<Output = StoreResult<CatalogSnapshot>> + Send;

    /// Appends ledger entries atomically, with the subjects, notice versions, evidence and
    /// idempotency claim that go with them. Returns the sequence number of the first entry.
    fn append(&self, batch: Arc<AppendBatch>) -> impl Future<Output = StoreResult<Appended>> + Send;

    /// [`Store::append`] for a caller that does not need the batch back.
    fn append_owned(&self, batch: AppendBatch) -> impl Future<Output = StoreResult<Appended>> + Send {
        self.append(Arc::new(batch))
    }
    fn find_idempotency(
        &self,
        controller: ControllerId,
        key: String,
    ) -> impl Future<Output = StoreResult<Option<IdempotencyRecord>>> + Send;

    fn ledger_size(&self, controller: ControllerId) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Entries with `start <= seq < end`, in order.
    fn entries(
        &self,
        controller: ControllerId,
        start: u64,
        end: u64,
    ) -> impl Future<Output = StoreResult<Vec<StoredEntry>>> + Send;
    /// A subject's entries, in order, by its [`SubjectRecord::number`].
    fn subject_entries(
        &self,
        controller: ControllerId,
        subject_number: u64,
    ) -> impl Future<Output = StoreResult<Vec<StoredEntry>>> + Send;
    /// The number the next new subject of `controller` gets: above every number ever used,
    /// including erased subjects'.
    fn next_subject_number(&self, controller: ControllerId) -> impl Future<Output = StoreResult<u64>> + Send;
    fn load_subjects(&self, controller: ControllerId) -> impl Future<Output = StoreResult<Vec<SubjectRecord>>> + Send;
    /// The subjects stored under `numbers`, in any order; numbers with no subject (erased) are
    /// left out.
    fn subjects_by_number(
        &self,
        controller: ControllerId,
        numbers: Vec<u64>,
    ) -> impl Future<Output = StoreResult<Vec<SubjectRecord>>> + Send;
    fn load_states(&self, controller: ControllerId) -> impl Future<Output = StoreResult<Vec<StoredState>>> + Send;

    /// Stored Merkle nodes `(level, index)`, in the order asked (level 0 = leaf hashes).
    /// `NotFound` if any is missing.
    fn tree_nodes(
        &self,
        controller: ControllerId,
        nodes: Vec<(u8, u64)>,
    ) -> impl Future<Output = StoreResult<Vec<[u8; 32]>>> + Send;
    /// Stores a signed checkpoint; storing one for a size already signed is a no-op.
    fn put_checkpoint(
        &self,
        controller: ControllerId,
        checkpoint: StoredCheckpoint,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn latest_checkpoint(
        &self,
        controller: ControllerId,
    ) -> impl Future<Output = StoreResult<Option<StoredCheckpoint>>> + Send;
    /// Marks a single-use link nonce as used; `false` if it was used before.
    fn use_link(
        &self,
        controller: ControllerId,
        nonce: String,
        at: assent_core::Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Every stored checkpoint, by tree size.
    fn checkpoints(&self, controller: ControllerId) -> impl Future<Output = StoreResult<Vec<StoredCheckpoint>>> + Send;

    // The outbox and delivery. Every append writes one outbox row per entry in its own
    // transaction; the dispatcher reads them in order per destination.

    /// Up to `limit` outbox entries with `seq >= from`, in order.
    fn outbox(
        &self,
        controller: ControllerId,
        from: u64,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxEntry>>> + Send;
    /// Deletes outbox rows below `seq` (every destination has them). Returns how many went.
    fn prune_outbox(&self, controller: ControllerId, below: u64) -> impl Future<Output = StoreResult<u64>> + Send;
    /// `AlreadyExists` if the id is taken.
    fn create_destination(&self, destination: Destination) -> impl Future<Output = StoreResult<()>> + Send;
    /// A controller's destinations, or every destination when `None`.
    fn destinations(
        &self,
        controller: Option<ControllerId>,
    ) -> impl Future<Output = StoreResult<Vec<Destination>>> + Send;
    /// `false` if the controller has no destination `id`.
    fn delete_destination(
        &self,
        controller: ControllerId,
        id: String,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Records deliveries and moves the destination's progress, atomically: a crash never
    /// leaves the cursor past a delivery it did not record. Only from `expected`, the cursor
    /// the caller read: `NotFound` if the destination was deleted or another dispatcher moved
    /// it meanwhile (a stale leader cannot move a cursor back).
    fn advance(
        &self,
        id: String,
        expected: u64,
        progress: Progress,
        deliveries: Vec<Delivery>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Marks a delivery confirmed (once: a second confirmation keeps the first time) and
    /// returns it; `None` if the controller has no such delivery.
    fn ack_delivery(
        &self,
        controller: ControllerId,
        destination: String,
        seq: u64,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<Option<Delivery>>> + Send;
    /// The newest `limit` deliveries of a destination matching `filter`, newest first.
    fn deliveries(
        &self,
        destination: String,
        filter: DeliveryFilter,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
    /// Whether this process holds (or just took) the lease on `role`: one node at a time runs
    /// the dispatcher and the expiry sweep. A single-node backend always does.
    fn try_lead(&self, role: &'static str) -> impl Future<Output = StoreResult<bool>> + Send;
}
