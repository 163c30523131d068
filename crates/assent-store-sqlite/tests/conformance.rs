//! The shared conformance story, on SQLite, in both commit modes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use assent_store_sqlite::{CommitMode, SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_group_commit_passes_the_conformance_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("assent.db"), SqliteOptions::default()).unwrap();
    assent_store::conformance::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_one_commit_per_request_passes_the_conformance_story() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { commit_mode: CommitMode::PerRequest, ..SqliteOptions::default() };
    let store = SqliteStore::open(&dir.path().join("assent.db"), options).unwrap();
    assent_store::conformance::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_a_database_keeps_its_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assent.db");
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assent_store::conformance::run(store).await;
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    use assent_store::Store;
    let id = assent_core::ControllerId::parse("concurrent").unwrap();
    assert_eq!(store.ledger_size(id).await.unwrap(), 64);
}
