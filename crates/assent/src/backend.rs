//! The storage backend chosen at the edge. Every command runs the same service over whichever
//! store the settings name; this enum hands each `Store` call to it.

use std::sync::Arc;

use assent_core::{ControllerId, DataCategory, Purpose, Timestamp};
use assent_store::{
    ApiKeyRecord, AppendBatch, Appended, CatalogSnapshot, Controller, Delivery, DeliveryFilter, Destination,
    IdempotencyRecord, OutboxEntry, Progress, Store, StoreResult, StoredCheckpoint, StoredEntry, StoredState,
    SubjectRecord,
};
use assent_store_postgres::PostgresStore;
use assent_store_sqlite::SqliteStore;

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever store this is.
macro_rules! on_store {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Sqlite($store) => $call.await,
            Backend::Postgres($store) => $call.await,
        }
    };
}

impl Store for Backend {
    async fn create_controller(&self, controller: Controller) -> StoreResult<()> {
        on_store!(self, s => s.create_controller(controller))
    }
    async fn update_controller(&self, controller: Controller) -> StoreResult<()> {
        on_store!(self, s => s.update_controller(controller))
    }
    async fn controller(&self, id: ControllerId) -> StoreResult<Option<Controller>> {
        on_store!(self, s => s.controller(id))
    }
    async fn list_controllers(&self) -> StoreResult<Vec<Controller>> {
        on_store!(self, s => s.list_controllers())
    }
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        on_store!(self, s => s.create_api_key(key))
    }
    async fn find_api_key(&self, hash: [u8; 32]) -> StoreResult<Option<ApiKeyRecord>> {
        on_store!(self, s => s.find_api_key(hash))
    }
    async fn put_data_category(&self, controller: ControllerId, category: DataCategory) -> StoreResult<()> {
        on_store!(self, s => s.put_data_category(controller, category))
    }
    async fn put_purpose(&self, controller: ControllerId, purpose: Purpose) -> StoreResult<()> {
        on_store!(self, s => s.put_purpose(controller, purpose))
    }
    async fn load_catalog(&self, controller: ControllerId) -> StoreResult<CatalogSnapshot> {
        on_store!(self, s => s.load_catalog(controller))
    }
    async fn append(&self, batch: Arc<AppendBatch>) -> StoreResult<Appended> {
        on_store!(self, s => s.append(batch))
    }
    async fn find_idempotency(&self, controller: ControllerId, key: String) -> StoreResult<Option<IdempotencyRecord>> {
        on_store!(self, s => s.find_idempotency(controller, key))
    }
    async fn ledger_size(&self, controller: ControllerId) -> StoreResult<u64> {
        on_store!(self, s => s.ledger_size(controller))
    }
    async fn entries(&self, controller: ControllerId, start: u64, end: u64) -> StoreResult<Vec<StoredEntry>> {
        on_store!(self, s => s.entries(controller, start, end))
    }
    async fn subject_entries(&self, controller: ControllerId, subject_number: u64) -> StoreResult<Vec<StoredEntry>> {
        on_store!(self, s => s.subject_entries(controller, subject_number))
    }
    async fn next_subject_number(&self, controller: ControllerId) -> StoreResult<u64> {
        on_store!(self, s => s.next_subject_number(controller))
    }
    async fn load_subjects(&self, controller: ControllerId) -> StoreResult<Vec<SubjectRecord>> {
        on_store!(self, s => s.load_subjects(controller))
    }
    async fn subjects_by_number(&self, controller: ControllerId, numbers: Vec<u64>) -> StoreResult<Vec<SubjectRecord>> {
        on_store!(self, s => s.subjects_by_number(controller, numbers))
    }
    async fn load_states(&self, controller: ControllerId) -> StoreResult<Vec<StoredState>> {
        on_store!(self, s => s.load_states(controller))
    }
    async fn tree_nodes(&self, controller: ControllerId, nodes: Vec<(u8, u64)>) -> StoreResult<Vec<[u8; 32]>> {
        on_store!(self, s => s.tree_nodes(controller, nodes))
    }
    async fn put_checkpoint(&self, controller: ControllerId, checkpoint: StoredCheckpoint) -> StoreResult<()> {
        on_store!(self, s => s.put_checkpoint(controller, checkpoint))
    }
    async fn latest_checkpoint(&self, controller: ControllerId) -> StoreResult<Option<StoredCheckpoint>> {
        on_store!(self, s => s.latest_checkpoint(controller))
    }
    async fn use_link(&self, controller: ControllerId, nonce: String, at: assent_core::Timestamp) -> StoreResult<bool> {
        on_store!(self, s => s.use_link(controller, nonce, at))
    }
    async fn checkpoints(&self, controller: ControllerId) -> StoreResult<Vec<StoredCheckpoint>> {
        on_store!(self, s => s.checkpoints(controller))
    }
    async fn outbox(&self, controller: ControllerId, from: u64, limit: u64) -> StoreResult<Vec<OutboxEntry>> {
        on_store!(self, s => s.outbox(controller, from, limit))
    }
    async fn prune_outbox(&self, controller: ControllerId, below: u64) -> StoreResult<u64> {
        on_store!(self, s => s.prune_outbox(controller, below))
    }
    async fn create_destination(&self, destination: Destination) -> StoreResult<()> {
        on_store!(self, s => s.create_destination(destination))
    }
    async fn destinations(&self, controller: Option<ControllerId>) -> StoreResult<Vec<Destination>> {
        on_store!(self, s => s.destinations(controller))
    }
    async fn delete_destination(&self, controller: ControllerId, id: String) -> StoreResult<bool> {
        on_store!(self, s => s.delete_destination(controller, id))
    }
    async fn advance(
        &self,
        id: String,
        expected: u64,
        progress: Progress,
        deliveries: Vec<Delivery>,
    ) -> StoreResult<()> {
        on_store!(self, s => s.advance(id, expected, progress, deliveries))
    }
    async fn ack_delivery(
        &self,
        controller: ControllerId,
        destination: String,
        seq: u64,
        at: Timestamp,
    ) -> StoreResult<Option<Delivery>> {
        on_store!(self, s => s.ack_delivery(controller, destination, seq, at))
    }
    async fn deliveries(&self, destination: String, filter: DeliveryFilter, limit: u64) -> StoreResult<Vec<Delivery>> {
        on_store!(self, s => s.deliveries(destination, filter, limit))
    }
    async fn try_lead(&self, role: &'static str) -> StoreResult<bool> {
        on_store!(self, s => s.try_lead(role))
    }
}

impl Backend {
    /// Makes what is committed durable in one place before the process stops.
    pub async fn before_exit(&self) -> StoreResult<()> {
        match self {
            Backend::Sqlite(s) => s.fold_wal().await,
            // Every commit is already durable in PostgreSQL's own WAL.
            Backend::Postgres(_) => Ok(()),
        }
    }
}
