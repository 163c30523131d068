//! The shared conformance story on PostgreSQL, two nodes appending to one controller, and
//! reopening a schema.
//!
//! These need a server: set `ASSENT_TEST_DATABASE_URL` (say
//! `postgres://postgres@127.0.0.1:5432/test`). Without it each test says it was not run and
//! passes, so `cargo test --workspace` works on a machine with no PostgreSQL; `.ci/run` sets it
//! and fails when the server does not answer. Each test works in a fresh schema
//! `assent_test_<random hex>`, dropped afterwards, even when the test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use assent_core::event::{ConsentEvent, Method, Pseudonym};
use assent_core::merkle::{MemoryTree, completed_by, nodes_needed, root};
use assent_core::{Action, ControllerId, Language, LedgerEntry, PurposeId, SubjectId, Timestamp};
use assent_store::{AppendBatch, Controller, NewEntry, Store, SubjectRecord};
use assent_store_postgres::{PostgresOptions, PostgresStore};

const URL_VAR: &str = "ASSENT_TEST_DATABASE_URL";

/// A fresh schema for one test, dropped when this goes out of scope, on a failed assertion
/// too. Declare it before the stores that use it, so they close first.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// `None`, having said so, when no database is configured.
    fn new(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(URL_VAR) else {
            // Straight to stderr: the test harness would swallow `println!` from a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: not run: {URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        Some(Self { url, name: format!("assent_test_{}", assent_core::crypto::to_hex(&random)) })
    }

    async fn connect(&self) -> PostgresStore {
        let options = PostgresOptions { schema: self.name.clone(), ..PostgresOptions::default() };
        PostgresStore::connect(&self.url, options).await.unwrap()
    }

    /// A plain connection into the schema, to look at tables the store does not expose.
    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("SET search_path TO \"{}\"", self.name)).await.unwrap();
        client
    }

    async fn migrations(&self) -> Vec<(i64, String, String)> {
        let rows = self
            .client()
            .await
            .query("SELECT version, name, applied_at::TEXT FROM schema_migrations ORDER BY version", &[])
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop cannot await, and the test's runtime cannot be blocked on from inside: a thread
        // with a runtime of its own drops the schema.
        let dropped = std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: the dropping thread panicked", self.name),
        }
    }
}

fn controller(id: &str) -> Controller {
    Controller {
        id: ControllerId::parse(id).unwrap(),
        name: format!("Controller {id}"),
        languages: vec![Language::parse("en").unwrap()],
        profiles: vec![],
        allowed_origins: vec![],
        created_at: Timestamp::from_unix_millis(1_000),
    }
}

fn subject(number: u64) -> SubjectRecord {
    let byte = u8::try_from(number).unwrap();
    SubjectRecord {
        number,
        id: SubjectId::parse(&format!("cust-{number}")).unwrap(),
        secret: [byte; 32],
        pseudonym: Pseudonym([byte.wrapping_add(100); 32]),
        created_at: Timestamp::from_unix_millis(3_000),
    }
}

fn consent(c: &ControllerId, s: &SubjectRecord, action: Action, at: i64) -> NewEntry {
    NewEntry::new(
        LedgerEntry::Consent(ConsentEvent {
            controller: c.clone(),
            subject: s.pseudonym,
            purpose: PurposeId::parse("ads").unwrap(),
            version: Some(1),
            notice_hash: None,
            action,
            method: Method::Api,
            recorded_at: Timestamp::from_unix_millis(at),
            jurisdiction: None,
            language: None,
            evidence: None,
        }),
        Some(format!("evidence at {at}")),
    )
    .with_subject(s.number)
}

/// The ledger holds entries `0..size` and nothing else; every entry carries exactly the subtrees
/// it completed; and the root of every tree size, from stored nodes (read through each store in
/// turn), is the root of the leaves rebuilt in memory.
async fn assert_ledger_is_the_tree_of_its_leaves(stores: &[&PostgresStore], id: &ControllerId, size: u64) {
    let entries = stores[0].entries(id.clone(), 0, size + 10).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..size).collect::<Vec<_>>());
    let mut tree = MemoryTree::default();
    for e in &entries {
        tree.push(e.leaf_hash);
    }
    for e in &entries {
        let expected: Vec<_> = completed_by(e.seq).map(|(l, i)| tree.node(l, i).unwrap()).collect();
        assert_eq!(e.nodes, expected, "subtrees completed by entry {}", e.seq);
    }
    for n in 1..=size {
        let wanted = nodes_needed(|get| root(n, get).map(|_| ()));
        let store = stores[usize::try_from(n).unwrap() % stores.len()];
        let stored = store.tree_nodes(id.clone(), wanted.clone()).await.unwrap();
        let mut lookup: HashMap<_, _> = wanted.into_iter().zip(stored).collect();
        let from_store = root(n, &mut |l, i| lookup.remove(&(l, i)).ok_or(())).unwrap();
        assert_eq!(from_store, root(n, &mut tree.reader()).unwrap(), "root of size {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_story() {
    let Some(schema) = Schema::new("postgres_passes_the_conformance_story") else { return };
    let store = schema.connect().await;
    assent_store::conformance::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_to_one_controller_keep_sequence_numbers_gapless() {
    const TASKS_PER_NODE: u64 = 6;
    const APPENDS_PER_TASK: u64 = 10;
    let Some(schema) = Schema::new("two_nodes_appending_to_one_controller_keep_sequence_numbers_gapless") else {
        return;
    };
    // Both nodes start at once on an empty schema: the migration lock lets one create it.
    let (node_a, node_b) = tokio::join!(schema.connect(), schema.connect());
    assert_eq!(schema.migrations().await.len(), 3, "each migration ran once");

    let c = controller("shared");
    node_a.create_controller(c.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..2 * TASKS_PER_NODE {
        let store = if task % 2 == 0 { node_a.clone() } else { node_b.clone() };
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            let s = subject(task);
            let mut appended = Vec::new();
            for round in 0..APPENDS_PER_TASK {
                // Batches of 1 to 3 entries, so subtrees complete inside and across batches.
                let size = (task + round) % 3 + 1;
                let at = i64::try_from(round * 10).unwrap();
                let entries = (0..size)
                    .map(|i| {
                        let action = if i % 2 == 0 { Action::Grant } else { Action::Withdraw };
                        consent(&id, &s, action, at + i64::try_from(i).unwrap())
                    })
                    .collect();
                // Every batch carries the subject as new: only the first insert keeps it.
                let batch = AppendBatch {
                    controller: id.clone(),
                    new_subjects: vec![s.clone()],
                    entries,
                    notice_versions: vec![],
                    idempotency: None,
                    erase_subject: None,
                };
                appended.push((store.append_owned(batch).await.unwrap().first_seq, size));
            }
            (task, appended)
        }));
    }
    let mut ranges = Vec::new();
    for t in tasks {
        let (task, appended) = t.await.unwrap();
        // One task's appends, each awaited before the next, are numbered in its order.
        assert!(appended.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "task {task}: {appended:?}");
        ranges.extend(appended);
    }
    ranges.sort_unstable();
    let mut next = 0;
    for (first, size) in &ranges {
        assert_eq!(*first, next, "batches tile the ledger with no gap or overlap: {ranges:?}");
        next += size;
    }
    let size = next;
    assert_eq!(node_a.ledger_size(c.id.clone()).await.unwrap(), size);
    assert_eq!(node_b.ledger_size(c.id.clone()).await.unwrap(), size);

    assert_ledger_is_the_tree_of_its_leaves(&[&node_a, &node_b], &c.id, size).await;

    // Each subject's history is every event its task wrote, and its state is the last of them.
    // One record per customer, each under a number of its own (the store moves a proposed
    // number another writer took first).
    let subjects = node_a.load_subjects(c.id.clone()).await.unwrap();
    let mut ids: Vec<String> = subjects.iter().map(|s| s.id.as_str().to_owned()).collect();
    ids.sort_unstable();
    let mut wanted: Vec<String> = (0..2 * TASKS_PER_NODE).map(|n| subject(n).id.as_str().to_owned()).collect();
    wanted.sort_unstable();
    assert_eq!(ids, wanted);
    let numbers: std::collections::BTreeSet<u64> = subjects.iter().map(|s| s.number).collect();
    assert_eq!(numbers.len(), subjects.len());
    let states: BTreeMap<_, _> =
        node_b.load_states(c.id.clone()).await.unwrap().into_iter().map(|s| (s.subject, s.state.seq)).collect();
    for s in &subjects {
        let history = node_a.subject_entries(c.id.clone(), s.number).await.unwrap();
        let task: u64 = s.id.as_str().trim_start_matches("cust-").parse().unwrap();
        let written: u64 = (0..APPENDS_PER_TASK).map(|round| (task + round) % 3 + 1).sum();
        assert_eq!(u64::try_from(history.len()).unwrap(), written, "history of subject {}", s.number);
        assert_eq!(states.get(&s.pseudonym), history.last().map(|e| &e.seq), "state of subject {}", s.number);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_a_schema_keeps_its_data_and_does_not_migrate_again() {
    let Some(schema) = Schema::new("reopening_a_schema_keeps_its_data_and_does_not_migrate_again") else { return };
    {
        let store = schema.connect().await;
        assent_store::conformance::run(store).await;
    }
    let migrated = schema.migrations().await;
    assert_eq!(
        migrated.iter().map(|(v, n, _)| (*v, n.as_str())).collect::<Vec<_>>(),
        [(1, "0001_init"), (2, "0002_nodes"), (3, "0003_outbox")]
    );

    let store = schema.connect().await;
    assert_eq!(schema.migrations().await, migrated, "reopening applied nothing");
    let id = |s: &str| ControllerId::parse(s).unwrap();
    assert_eq!(store.ledger_size(id("concurrent")).await.unwrap(), 64);
    assert_eq!(store.entries(id("concurrent"), 0, 100).await.unwrap().len(), 64);
    assert_eq!(store.controller(id("alpha")).await.unwrap().map(|c| c.name), Some("Renamed".to_owned()));
    assert_eq!(store.latest_checkpoint(id("checkpoints")).await.unwrap().map(|c| c.tree_size), Some(7));
    assert_eq!(store.load_subjects(id("concurrent")).await.unwrap().len(), 32);
    // The ledger goes on where it stopped.
    let s = store.load_subjects(id("concurrent")).await.unwrap().remove(0);
    let batch = AppendBatch {
        controller: id("concurrent"),
        new_subjects: vec![],
        entries: vec![consent(&id("concurrent"), &s, Action::Withdraw, 99)],
        notice_versions: vec![],
        idempotency: None,
        erase_subject: None,
    };
    assert_eq!(store.append_owned(batch).await.unwrap().first_seq, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_appends_fail_alone_and_the_rest_stay_gapless() {
    const APPENDS: u64 = 64;
    let Some(schema) = Schema::new("grouped_appends_fail_alone_and_the_rest_stay_gapless") else { return };
    let store = schema.connect().await;
    let c = controller("grouped");
    store.create_controller(c.clone()).await.unwrap();

    // All 64 wait at a barrier, then append at once: the writer takes them in a few groups.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(usize::try_from(APPENDS).unwrap()));
    let mut tasks = Vec::new();
    for i in 0..APPENDS {
        let (store, id, barrier) = (store.clone(), c.id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let s = subject(i);
            let (new_subjects, entry) = match (i % 8, i / 8 % 2) {
                // A consent for a subject the store does not have: refused before any entry is
                // written, after the head lock and the idempotency claim.
                (0, 0) => {
                    let unknown = SubjectRecord { number: 10_000 + i, ..s.clone() };
                    (vec![], consent(&id, &unknown, Action::Grant, 10))
                }
                // Evidence PostgreSQL cannot store (a NUL in TEXT): the database fails a statement
                // after the subject and the entry are inserted, aborting the transaction until its
                // savepoint is rolled back to.
                (0, _) => {
                    let mut entry = consent(&id, &s, Action::Grant, 10);
                    entry.evidence = Some("nul \0 byte".into());
                    (vec![s.clone()], entry)
                }
                _ => (vec![s.clone()], consent(&id, &s, Action::Grant, 10)),
            };
            let batch = AppendBatch {
                controller: id,
                new_subjects,
                entries: vec![entry],
                notice_versions: vec![],
                idempotency: Some(assent_store::IdempotencyClaim { key: format!("key-{i}"), request_hash: [7; 32] }),
                erase_subject: None,
            };
            barrier.wait().await;
            (i, store.append_owned(batch).await)
        }));
    }
    let mut firsts = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match (i % 8, i / 8 % 2, result) {
            (0, 0, Err(assent_store::StoreError::NotFound(_))) => {}
            (0, _, Err(assent_store::StoreError::Backend(_))) => {}
            (0, _, other) => panic!("append {i} should have been refused: {other:?}"),
            (_, _, Ok(appended)) => firsts.push((appended.first_seq, i)),
            (_, _, Err(e)) => panic!("append {i} should have succeeded: {e}"),
        }
    }
    let size = APPENDS - APPENDS / 8;
    firsts.sort_unstable();
    assert_eq!(firsts.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (0..size).collect::<Vec<_>>());
    assert_eq!(store.ledger_size(c.id.clone()).await.unwrap(), size);

    // Refused batches left nothing behind: no idempotency claim, no subject; accepted ones did.
    for i in 0..APPENDS {
        let claim = store.find_idempotency(c.id.clone(), format!("key-{i}")).await.unwrap();
        let first = firsts.iter().find(|(_, task)| *task == i).map(|(seq, _)| *seq);
        assert_eq!(claim.map(|r| r.first_seq), first, "idempotency claim of append {i}");
    }
    let mut stored: Vec<String> =
        store.load_subjects(c.id.clone()).await.unwrap().iter().map(|s| s.id.as_str().to_owned()).collect();
    stored.sort_unstable();
    let mut accepted: Vec<String> =
        (0..APPENDS).filter(|i| i % 8 != 0).map(|i| subject(i).id.as_str().to_owned()).collect();
    accepted.sort_unstable();
    assert_eq!(stored, accepted);

    assert_ledger_is_the_tree_of_its_leaves(&[&store], &c.id, size).await;
}

fn batch_of(c: &ControllerId, new_subjects: Vec<SubjectRecord>, entries: Vec<NewEntry>) -> AppendBatch {
    AppendBatch {
        controller: c.clone(),
        new_subjects,
        entries,
        notice_versions: vec![],
        idempotency: None,
        erase_subject: None,
    }
}

/// What two nodes that know nothing of each other's memory need from the store: numbers they
/// cannot both hand out, one record per customer, erasures that say whom they erased, and a
/// feed announcing what the other wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_subjects_through_the_store_and_hear_each_others_writes() {
    let Some(schema) = Schema::new("nodes_share_subjects_through_the_store_and_hear_each_others_writes") else {
        return;
    };
    let (node_a, node_b) = (schema.connect().await, schema.connect().await);
    let c = controller("feed");
    node_a.create_controller(c.clone()).await.unwrap();
    let mut heard_by_b = node_b.changes();
    assert_eq!(heard_by_b.recv().await, Some(assent_store::Change::Resync), "a feed starts by asking for a resync");

    // Both nodes believe number 0 is free and propose it for different customers: the second
    // to commit gets the next free number, and says so.
    let alice = subject(0);
    let mut bob = subject(1);
    bob.number = 0;
    let a = node_a
        .append_owned(batch_of(&c.id, vec![alice.clone()], vec![consent(&c.id, &alice, Action::Grant, 10)]))
        .await
        .unwrap();
    assert_eq!(a.subject_numbers, [0]);
    assert_eq!(
        tokio::time::timeout(std::time::Duration::from_secs(5), heard_by_b.recv()).await.unwrap(),
        Some(assent_store::Change::Ledger(c.id.clone())),
        "node B hears node A's append"
    );
    let b = node_b
        .append_owned(batch_of(&c.id, vec![bob.clone()], vec![consent(&c.id, &bob, Action::Grant, 11)]))
        .await
        .unwrap();
    assert_eq!(b.subject_numbers, [1], "the store moved bob past the number alice took");
    let entries = node_a.entries(c.id.clone(), 0, 10).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.subject_number).collect::<Vec<_>>(), [Some(0), Some(1)]);
    let bobs = node_a.subjects_by_number(c.id.clone(), vec![1, 7]).await.unwrap();
    assert_eq!(bobs.iter().map(|s| (s.number, s.id.clone())).collect::<Vec<_>>(), [(1, bob.id.clone())]);

    // Node B, not yet told about alice, makes its own record for her: refused, with hers.
    let mut second_alice = subject(5);
    second_alice.id = alice.id.clone();
    let refused = node_b
        .append_owned(batch_of(
            &c.id,
            vec![second_alice.clone()],
            vec![consent(&c.id, &second_alice, Action::Withdraw, 12)],
        ))
        .await;
    match refused {
        Err(assent_store::StoreError::SubjectExists(stored)) => {
            assert_eq!((stored.number, stored.pseudonym), (0, alice.pseudonym));
        }
        other => panic!("a second record for alice must be refused, got {other:?}"),
    }
    assert_eq!(node_a.ledger_size(c.id.clone()).await.unwrap(), 2, "the refused append wrote nothing");
    // The same record twice (two requests racing on one node) is one subject, not a conflict.
    let again = node_b
        .append_owned(batch_of(&c.id, vec![alice.clone()], vec![consent(&c.id, &alice, Action::Withdraw, 13)]))
        .await
        .unwrap();
    assert_eq!(again.subject_numbers, [0]);

    // An erasure's row names the number it erased, though its bytes name no one.
    let erasure = NewEntry::new(
        LedgerEntry::Erasure(assent_core::event::Erasure {
            controller: c.id.clone(),
            recorded_at: Timestamp::from_unix_millis(14),
        }),
        None,
    );
    let mut erase = batch_of(&c.id, vec![], vec![erasure]);
    erase.erase_subject = Some(1);
    let erased = node_a.append_owned(erase).await.unwrap();
    let row = node_b.entries(c.id.clone(), erased.first_seq, erased.first_seq + 1).await.unwrap();
    assert_eq!(row[0].subject_number, Some(1));
    assert!(node_b.subjects_by_number(c.id.clone(), vec![1]).await.unwrap().is_empty());

    // Catalog changes are announced too.
    while tokio::time::timeout(std::time::Duration::from_millis(200), heard_by_b.recv()).await.is_ok() {}
    node_a
        .put_data_category(
            c.id.clone(),
            serde_json::from_value(serde_json::json!({"id": "sites", "personal": true, "names": {"en": "Sites"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(std::time::Duration::from_secs(5), heard_by_b.recv()).await.unwrap(),
        Some(assent_store::Change::Catalog(c.id.clone()))
    );

    // The listening connection dies: the feed reconnects and asks for a resync, since whatever
    // was committed meanwhile was announced to no one.
    let killed = schema
        .client()
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN assent_%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "the listener's session was found");
    node_a.append_owned(batch_of(&c.id, vec![], vec![consent(&c.id, &alice, Action::Grant, 15)])).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let change = tokio::time::timeout(std::time::Duration::from_secs(10), heard_by_b.recv()).await.unwrap();
        if change == Some(assent_store::Change::Resync) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no resync after the listener was cut off");
    }
}

/// Groups of event-only batches are checked and written together (one statement): each batch
/// must still get exactly the answer it would get alone, refused batches take no numbers, and
/// the ledger and tree stay whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_written_together_are_refused_exactly_as_alone() {
    const APPENDS: u64 = 60;
    let Some(schema) = Schema::new("batches_written_together_are_refused_exactly_as_alone") else { return };
    let store = schema.connect().await;
    let c = controller("together");
    store.create_controller(c.clone()).await.unwrap();
    // Stored before: a customer, and an idempotency key already used.
    let known = subject(200);
    let mut first = batch_of(&c.id, vec![known.clone()], vec![consent(&c.id, &known, Action::Grant, 1)]);
    first.idempotency = Some(assent_store::IdempotencyClaim { key: "used".into(), request_hash: [1; 32] });
    store.append_owned(first).await.unwrap();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(usize::try_from(APPENDS).unwrap()));
    let mut tasks = Vec::new();
    for i in 0..APPENDS {
        let (store, id, barrier, known) = (store.clone(), c.id.clone(), barrier.clone(), known.clone());
        tasks.push(tokio::spawn(async move {
            let fresh = subject(i);
            let mut b = batch_of(&id, vec![fresh.clone()], vec![consent(&id, &fresh, Action::Grant, 10)]);
            match i % 5 {
                // A consent for a customer the store does not have.
                0 => {
                    let unknown = SubjectRecord { number: 10_000 + i, ..fresh.clone() };
                    b = batch_of(&id, vec![], vec![consent(&id, &unknown, Action::Grant, 10)]);
                }
                // A key used before the group.
                1 => b.idempotency = Some(assent_store::IdempotencyClaim { key: "used".into(), request_hash: [2; 32] }),
                // Two batches of the group share a key: one wins.
                2 => {
                    let key = format!("pair-{}", i / 10);
                    b.idempotency = Some(assent_store::IdempotencyClaim { key, request_hash: [3; 32] });
                }
                // The stored customer's id with another record.
                3 => {
                    let impostor = SubjectRecord { id: known.id.clone(), ..fresh.clone() };
                    b = batch_of(&id, vec![impostor.clone()], vec![consent(&id, &impostor, Action::Grant, 10)]);
                }
                // The stored customer, by number: accepted.
                _ if i % 10 == 4 => b = batch_of(&id, vec![], vec![consent(&id, &known, Action::Withdraw, 10)]),
                _ => {}
            }
            barrier.wait().await;
            (i, store.append_owned(b).await)
        }));
    }
    let mut firsts = Vec::new();
    // Per shared key: (append, Ok(first seq) or Err(the first seq it was told of)).
    type Answer = (u64, Result<u64, u64>);
    let mut pairs: BTreeMap<u64, Vec<Answer>> = BTreeMap::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match (i % 5, result) {
            (0, Err(assent_store::StoreError::NotFound(_))) => {}
            (1, Err(assent_store::StoreError::IdempotencyKeyUsed(r))) => assert_eq!((r.first_seq, r.count), (0, 1)),
            (2, Ok(a)) => {
                firsts.push(a.first_seq);
                pairs.entry(i / 10).or_default().push((i, Ok(a.first_seq)));
            }
            (2, Err(assent_store::StoreError::IdempotencyKeyUsed(r))) => {
                pairs.entry(i / 10).or_default().push((i, Err(r.first_seq)));
            }
            (3, Err(assent_store::StoreError::SubjectExists(s))) => assert_eq!(s.number, known.number),
            (4, Ok(a)) => firsts.push(a.first_seq),
            (k, other) => panic!("append {i} (kind {k}) got {other:?}"),
        }
    }
    let mut expected_ids: std::collections::BTreeSet<String> =
        (0..APPENDS).filter(|i| i % 10 == 9).map(|i| subject(i).id.as_str().to_owned()).collect();
    expected_ids.insert(known.id.as_str().to_owned());
    for (key, answers) in &pairs {
        let won: Vec<(u64, u64)> = answers.iter().filter_map(|(i, a)| a.ok().map(|seq| (*i, seq))).collect();
        let lost: Vec<u64> = answers.iter().filter_map(|(_, a)| a.err()).collect();
        assert_eq!(won.len(), 1, "pair-{key}: {answers:?}");
        assert_eq!(lost, [won[0].1], "the loser is told where the winner's events are");
        expected_ids.insert(subject(won[0].0).id.as_str().to_owned());
    }
    firsts.sort_unstable();
    let size = 1 + firsts.len() as u64;
    assert_eq!(firsts, (1..size).collect::<Vec<_>>(), "accepted batches tile the ledger after the first entry");
    assert_eq!(store.ledger_size(c.id.clone()).await.unwrap(), size);
    assert_ledger_is_the_tree_of_its_leaves(&[&store], &c.id, size).await;
    // One record per customer: the stored one and each accepted new customer; no impostor, and
    // nothing of the refused batches.
    let subjects = store.load_subjects(c.id.clone()).await.unwrap();
    let ids: std::collections::BTreeSet<String> = subjects.iter().map(|s| s.id.as_str().to_owned()).collect();
    assert_eq!(ids, expected_ids);
    let numbers: std::collections::BTreeSet<u64> = subjects.iter().map(|s| s.number).collect();
    assert_eq!(numbers.len(), subjects.len(), "numbers are not shared");
    let states = store.load_states(c.id.clone()).await.unwrap();
    let known_state = states.iter().find(|s| s.subject == known.pseudonym).unwrap();
    assert_eq!(known_state.state.action, Action::Withdraw, "the stored customer's withdrawals were applied");
}
