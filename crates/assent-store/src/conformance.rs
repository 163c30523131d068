//! The conformance story: one sequence of checks every backend must pass.
//!
//! A backend's test calls [`run`] with a fresh, empty store. The story is written against the
//! trait alone, so a new backend is correct exactly when it passes unchanged.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed expectation is the test failing"
)]

use std::collections::BTreeMap;

use assent_core::catalog::{NoticeContent, NoticeText, NoticeVersion};
use assent_core::event::{ConsentEvent, Method, NoticePublication, Pseudonym};
use assent_core::state::fold;
use assent_core::{
    Action, ConsentModel, ControllerId, DataCategory, DataCategoryId, Language, LedgerEntry, Purpose, PurposeId,
    SubjectId, Timestamp,
};

use crate::{
    ApiKeyRecord, AppendBatch, Controller, IdempotencyClaim, NewEntry, Scope, Store, StoreError, SubjectRecord,
};

fn controller(id: &str) -> Controller {
    Controller {
        id: ControllerId::parse(id).expect("valid id"),
        name: format!("Controller {id}"),
        languages: vec![Language::parse("en").expect("lang"), Language::parse("es").expect("lang")],
        profiles: vec!["us-me-isp".into()],
        allowed_origins: vec!["https://shop.example".into()],
        created_at: Timestamp::from_unix_millis(1_000),
    }
}

fn purpose(id: &str) -> Purpose {
    Purpose {
        id: PurposeId::parse(id).expect("valid id"),
        model: ConsentModel::OptIn,
        data_categories: vec![DataCategoryId::parse("browsing-history").expect("valid id")],
        sale_or_sharing: false,
        targeted_advertising: true,
        max_age_days: Some(365),
        condition_of_service: false,
    }
}

fn notice(purpose: &Purpose, version: u32) -> NoticeVersion {
    let text = NoticeText {
        title: "t".into(),
        what: "w".into(),
        how: "h".into(),
        benefit: "b".into(),
        who: "o".into(),
        retention: "r".into(),
    };
    let content = NoticeContent {
        texts: BTreeMap::from([(Language::parse("en").expect("lang"), text)]),
        recipients: vec![],
        retention_days: Some(30),
        material: false,
    };
    NoticeVersion::publish(purpose, version, content, Timestamp::from_unix_millis(2_000))
}

fn subject(id: &str, byte: u8) -> SubjectRecord {
    SubjectRecord {
        number: u64::from(byte),
        id: SubjectId::parse(id).expect("valid id"),
        secret: [byte; 32],
        pseudonym: Pseudonym([byte.wrapping_add(100); 32]),
        created_at: Timestamp::from_unix_millis(3_000),
    }
}

fn consent(c: &ControllerId, s: &SubjectRecord, p: &str, action: Action, at: i64) -> NewEntry {
    NewEntry::new(
        LedgerEntry::Consent(ConsentEvent {
            controller: c.clone(),
            subject: s.pseudonym,
            purpose: PurposeId::parse(p).expect("valid id"),
            version: Some(1),
            notice_hash: None,
            action,
            method: Method::Api,
            recorded_at: Timestamp::from_unix_millis(at),
            jurisdiction: None,
            language: None,
            evidence: None,
        }),
        None,
    )
    .with_subject(s.number)
}

fn batch(c: &ControllerId, entries: Vec<NewEntry>) -> AppendBatch {
    AppendBatch {
        controller: c.clone(),
        new_subjects: vec![],
        entries,
        notice_versions: vec![],
        idempotency: None,
        erase_subject: None,
    }
}

/// Runs the whole story against an empty store.
pub async fn run<S: Store + Clone>(store: S) {
    controllers_and_keys(&store).await;
    catalog_round_trip(&store).await;
    ledger_sequence_is_gapless_per_controller(&store).await;
    failed_appends_write_nothing(&store).await;
    idempotency_keys_are_claimed_once(&store).await;
    stored_state_is_the_projection_of_the_ledger(&store).await;
    concurrent_appends_stay_gapless(&store).await;
    merkle_nodes_are_stored_as_subtrees_complete(&store).await;
    checkpoints_round_trip(&store).await;
    erasure_unlinks_a_subject_and_keeps_the_ledger(&store).await;
    links_are_single_use(&store).await;
    the_outbox_holds_every_entry_until_delivered(&store).await;
    destinations_advance_and_record_deliveries(&store).await;
}

async fn the_outbox_holds_every_entry_until_delivered<S: Store>(store: &S) {
    let c = controller("outbox");
    store.create_controller(c.clone()).await.expect("create");
    let (s1, s2) = (subject("cust-1", 1), subject("cust-2", 2));
    let mut b =
        batch(&c.id, vec![consent(&c.id, &s1, "ads", Action::Grant, 1), consent(&c.id, &s2, "ads", Action::Grant, 2)]);
    b.new_subjects = vec![s1.clone(), s2.clone()];
    let appended = store.append_owned(b.clone()).await.expect("append");
    assert_eq!(appended.subject_numbers, [s1.number, s2.number], "a single writer's numbers are kept");
    // A refused append leaves no outbox row either.
    let mut unknown = subject("cust-9", 9);
    unknown.number = 999;
    let refused = store.append_owned(batch(&c.id, vec![consent(&c.id, &unknown, "ads", Action::Grant, 3)])).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
    let erasure = NewEntry::new(
        LedgerEntry::Erasure(assent_core::event::Erasure {
            controller: c.id.clone(),
            recorded_at: Timestamp::from_unix_millis(4),
        }),
        None,
    );
    let mut erase = batch(&c.id, vec![erasure]);
    erase.erase_subject = Some(s1.number);
    store.append_owned(erase).await.expect("erase");

    let outbox = store.outbox(c.id.clone(), 0, 10).await.expect("outbox");
    assert_eq!(outbox.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2], "one row per entry, in order");
    assert_eq!(outbox[1].bytes, b.entries[1].bytes);
    assert_eq!(outbox[1].leaf_hash, b.entries[1].leaf_hash);
    // Whom each entry concerns: the erased customer's own event has lost its link, the erasure
    // keeps it until delivered.
    let subjects: Vec<Option<&str>> = outbox.iter().map(|e| e.subject.as_ref().map(SubjectId::as_str)).collect();
    assert_eq!(subjects, [None, Some("cust-2"), Some("cust-1")]);
    let entries = store.entries(c.id.clone(), 0, 10).await.expect("entries");
    assert_eq!(entries.iter().map(|e| e.subject_number).collect::<Vec<_>>(), [Some(1), Some(2), Some(1)]);
    assert_eq!(store.outbox(c.id.clone(), 1, 1).await.expect("outbox").len(), 1, "the limit holds");
    assert_eq!(store.prune_outbox(c.id.clone(), 2).await.expect("prune"), 2);
    assert_eq!(store.outbox(c.id.clone(), 0, 10).await.expect("outbox").iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 3, "pruning the outbox keeps the ledger");
}

async fn destinations_advance_and_record_deliveries<S: Store>(store: &S) {
    use crate::{Delivery, DeliveryFilter, Destination, DestinationKind, Progress};
    let c = controller("dest");
    store.create_controller(c.clone()).await.expect("create");
    let hook = Destination {
        id: "wh_1".into(),
        controller: c.id.clone(),
        kind: DestinationKind::Webhook,
        url: "https://crm.example/hook".into(),
        secret: Some("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0".into()),
        purposes: vec![PurposeId::parse("ads").expect("id")],
        created_at: Timestamp::from_unix_millis(5),
        progress: Progress { cursor: 3, ..Progress::default() },
    };
    store.create_destination(hook.clone()).await.expect("create destination");
    assert!(matches!(store.create_destination(hook.clone()).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.destinations(Some(c.id.clone())).await.expect("list"), std::slice::from_ref(&hook));
    assert!(store.destinations(None).await.expect("all").contains(&hook));

    let failing = Progress {
        cursor: 3,
        attempts: 2,
        first_failure: Some(Timestamp::from_unix_millis(10)),
        next_attempt: Some(Timestamp::from_unix_millis(20)),
        last_error: Some("the receiver answered 503".into()),
    };
    store.advance(hook.id.clone(), 3, failing.clone(), vec![]).await.expect("advance");
    assert_eq!(store.destinations(Some(c.id.clone())).await.expect("list")[0].progress, failing);
    let delivered = |seq, acked: Option<i64>| Delivery {
        destination: hook.id.clone(),
        seq,
        committed_at: Timestamp::from_unix_millis(1),
        delivered_at: Some(Timestamp::from_unix_millis(30)),
        acked_at: acked.map(Timestamp::from_unix_millis),
        attempts: 1,
        error: None,
    };
    let dead = Delivery { delivered_at: None, error: Some("gave up".into()), attempts: 9, ..delivered(5, None) };
    let done = Progress { cursor: 6, ..Progress::default() };
    // A dispatcher that read an older cursor moves nothing and records nothing.
    let stale = store.advance(hook.id.clone(), 2, done.clone(), vec![delivered(3, Some(30))]).await;
    assert!(matches!(stale, Err(StoreError::NotFound(_))), "{stale:?}");
    assert!(store.deliveries(hook.id.clone(), DeliveryFilter::All, 10).await.expect("all").is_empty());
    store
        .advance(hook.id.clone(), 3, done.clone(), vec![delivered(3, Some(30)), delivered(4, None), dead.clone()])
        .await
        .expect("advance");
    assert_eq!(store.destinations(Some(c.id.clone())).await.expect("list")[0].progress, done);
    let ids = |d: Vec<Delivery>| d.iter().map(|d| d.seq).collect::<Vec<_>>();
    assert_eq!(ids(store.deliveries(hook.id.clone(), DeliveryFilter::All, 10).await.expect("all")), [5, 4, 3]);
    assert_eq!(ids(store.deliveries(hook.id.clone(), DeliveryFilter::Dead, 10).await.expect("dead")), [5]);
    assert_eq!(ids(store.deliveries(hook.id.clone(), DeliveryFilter::Unacknowledged, 10).await.expect("u")), [4]);
    assert_eq!(ids(store.deliveries(hook.id.clone(), DeliveryFilter::Acknowledged, 10).await.expect("a")), [3]);
    assert_eq!(ids(store.deliveries(hook.id.clone(), DeliveryFilter::All, 1).await.expect("limit")), [5]);

    // Confirming: once, keeping the first time; never a dead letter; never another controller's.
    let acked =
        store.ack_delivery(c.id.clone(), hook.id.clone(), 4, Timestamp::from_unix_millis(40)).await.expect("ack");
    assert_eq!(acked.and_then(|d| d.acked_at), Some(Timestamp::from_unix_millis(40)));
    let again =
        store.ack_delivery(c.id.clone(), hook.id.clone(), 4, Timestamp::from_unix_millis(50)).await.expect("ack");
    assert_eq!(again.and_then(|d| d.acked_at), Some(Timestamp::from_unix_millis(40)));
    let on_dead = store.ack_delivery(c.id.clone(), hook.id.clone(), 5, Timestamp::from_unix_millis(50)).await;
    assert_eq!(on_dead.expect("ack").and_then(|d| d.acked_at), None);
    let other = ControllerId::parse("outbox").expect("id");
    assert_eq!(
        store.ack_delivery(other.clone(), hook.id.clone(), 4, Timestamp::from_unix_millis(60)).await.expect("ack"),
        None
    );
    assert_eq!(
        store.ack_delivery(c.id.clone(), hook.id.clone(), 77, Timestamp::from_unix_millis(60)).await.expect("ack"),
        None
    );

    assert!(!store.delete_destination(other, hook.id.clone()).await.expect("delete"), "only its own controller");
    assert!(store.delete_destination(c.id.clone(), hook.id.clone()).await.expect("delete"));
    assert!(store.destinations(Some(c.id.clone())).await.expect("list").is_empty());
    assert!(matches!(store.advance(hook.id.clone(), 6, done, vec![]).await, Err(StoreError::NotFound(_))));
    assert!(store.try_lead("conformance").await.expect("lead"), "the only node leads");
}

async fn links_are_single_use<S: Store>(store: &S) {
    let c = controller("links");
    store.create_controller(c.clone()).await.expect("create");
    let at = Timestamp::from_unix_millis(1);
    assert!(store.use_link(c.id.clone(), "n-1".into(), at).await.expect("use"));
    assert!(!store.use_link(c.id.clone(), "n-1".into(), at).await.expect("reuse"));
    assert!(store.use_link(c.id.clone(), "n-2".into(), at).await.expect("other nonce"));
    assert!(
        store.use_link(ControllerId::parse("alpha").expect("id"), "n-1".into(), at).await.expect("other controller")
    );
}

async fn merkle_nodes_are_stored_as_subtrees_complete<S: Store>(store: &S) {
    use assent_core::merkle::{MemoryTree, nodes_needed, root};
    let c = controller("merkle");
    store.create_controller(c.clone()).await.expect("create");
    let s = subject("cust-1", 9);
    let mut first = true;
    // Uneven batches so subtrees complete inside and across appends.
    for size in [1usize, 2, 5, 1, 13, 7] {
        let entries =
            (0..size).map(|i| consent(&c.id, &s, "ads", Action::Grant, i64::try_from(i).expect("small"))).collect();
        let mut b = batch(&c.id, entries);
        if first {
            b.new_subjects.push(s.clone());
            first = false;
        }
        store.append_owned(b).await.expect("append");
    }
    let size = store.ledger_size(c.id.clone()).await.expect("size");
    assert_eq!(size, 29);
    let mut tree = MemoryTree::default();
    for e in store.entries(c.id.clone(), 0, size).await.expect("entries") {
        tree.push(e.leaf_hash);
    }
    for n in 1..=size {
        let wanted = nodes_needed(|get| root(n, get).map(|_| ()));
        let stored = store.tree_nodes(c.id.clone(), wanted.clone()).await.expect("nodes");
        let mut lookup = wanted.iter().copied().zip(stored).collect::<std::collections::HashMap<_, _>>();
        let from_store = root(n, &mut |l, i| lookup.remove(&(l, i)).ok_or(())).expect("all nodes present");
        assert_eq!(from_store, root(n, &mut tree.reader()).expect("memory root"), "root of size {n}");
    }
    // Each entry carries the subtrees it completed, lowest level first.
    let entries = store.entries(c.id.clone(), 0, size).await.expect("entries");
    for e in &entries {
        let expected: Vec<_> =
            assent_core::merkle::completed_by(e.seq).map(|(l, i)| tree.node(l, i).expect("node")).collect();
        assert_eq!(e.nodes, expected, "subtrees completed by entry {}", e.seq);
    }
    assert_eq!(entries[15].nodes.len(), 4);
    assert!(matches!(store.tree_nodes(c.id.clone(), vec![(5, 0)]).await, Err(StoreError::NotFound(_))));
}

async fn checkpoints_round_trip<S: Store>(store: &S) {
    let c = controller("checkpoints");
    store.create_controller(c.clone()).await.expect("create");
    assert!(store.latest_checkpoint(c.id.clone()).await.expect("latest").is_none());
    let cp = |size: u64| crate::StoredCheckpoint {
        tree_size: size,
        root: [u8::try_from(size).expect("small"); 32],
        note: format!("note {size}\n"),
        signed_at: Timestamp::from_unix_millis(i64::try_from(size).expect("small")),
    };
    store.put_checkpoint(c.id.clone(), cp(3)).await.expect("put");
    store.put_checkpoint(c.id.clone(), cp(7)).await.expect("put");
    store.put_checkpoint(c.id.clone(), cp(3)).await.expect("same size again is a no-op");
    assert_eq!(store.latest_checkpoint(c.id.clone()).await.expect("latest"), Some(cp(7)));
    assert_eq!(store.checkpoints(c.id.clone()).await.expect("all"), vec![cp(3), cp(7)]);
}

async fn erasure_unlinks_a_subject_and_keeps_the_ledger<S: Store>(store: &S) {
    let c = controller("erasure");
    store.create_controller(c.clone()).await.expect("create");
    let (s1, s2) = (subject("cust-1", 1), subject("cust-2", 2));
    let mut b =
        batch(&c.id, vec![consent(&c.id, &s1, "ads", Action::Grant, 1), consent(&c.id, &s2, "ads", Action::Grant, 2)]);
    b.new_subjects = vec![s1.clone(), s2.clone()];
    store.append_owned(b).await.expect("append");
    let erasure = NewEntry::new(
        LedgerEntry::Erasure(assent_core::event::Erasure {
            controller: c.id.clone(),
            recorded_at: Timestamp::from_unix_millis(3),
        }),
        None,
    );
    let mut erase = batch(&c.id, vec![erasure]);
    erase.erase_subject = Some(s1.number);
    assert_eq!(store.append_owned(erase.clone()).await.expect("erase").first_seq, 2);
    assert_eq!(store.load_subjects(c.id.clone()).await.expect("subjects"), vec![s2.clone()]);
    let states = store.load_states(c.id.clone()).await.expect("states");
    assert_eq!(states.iter().map(|s| s.subject).collect::<Vec<_>>(), vec![s2.pseudonym]);
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 3, "the ledger keeps every entry");
    // Erasing again finds no one and writes nothing.
    assert!(matches!(store.append_owned(erase).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 3);
    // The erased subject's number is never handed out again.
    assert!(store.next_subject_number(c.id.clone()).await.expect("next") > s2.number);
}

async fn controllers_and_keys<S: Store>(store: &S) {
    let a = controller("alpha");
    store.create_controller(a.clone()).await.expect("create");
    assert!(matches!(store.create_controller(a.clone()).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.controller(a.id.clone()).await.expect("read"), Some(a.clone()));
    let mut renamed = a.clone();
    renamed.name = "Renamed".into();
    store.update_controller(renamed.clone()).await.expect("update");
    assert_eq!(store.controller(a.id.clone()).await.expect("read"), Some(renamed));
    assert!(store.controller(ControllerId::parse("nobody").expect("id")).await.expect("read").is_none());

    let key = ApiKeyRecord {
        hash: [7; 32],
        prefix: "ak_1234".into(),
        controller: a.id.clone(),
        scopes: vec![Scope::Collect, Scope::Read],
        created_at: Timestamp::from_unix_millis(5),
    };
    store.create_api_key(key.clone()).await.expect("key");
    assert_eq!(store.find_api_key([7; 32]).await.expect("find"), Some(key));
    assert_eq!(store.find_api_key([8; 32]).await.expect("find"), None);
    let orphan = ApiKeyRecord {
        hash: [9; 32],
        prefix: "x".into(),
        controller: ControllerId::parse("nobody").expect("id"),
        scopes: vec![],
        created_at: Timestamp::from_unix_millis(5),
    };
    assert!(matches!(store.create_api_key(orphan).await, Err(StoreError::NotFound(_))));
}

async fn catalog_round_trip<S: Store>(store: &S) {
    let c = controller("catalog");
    store.create_controller(c.clone()).await.expect("create");
    let category = DataCategory {
        id: DataCategoryId::parse("browsing-history").expect("id"),
        personal: true,
        names: BTreeMap::from([(Language::parse("en").expect("lang"), "Browsing history".to_owned())]),
        descriptions: BTreeMap::new(),
    };
    store.put_data_category(c.id.clone(), category.clone()).await.expect("category");
    let p = purpose("ads");
    store.put_purpose(c.id.clone(), p.clone()).await.expect("purpose");
    let mut changed = p.clone();
    changed.max_age_days = Some(30);
    store.put_purpose(c.id.clone(), changed.clone()).await.expect("purpose update");

    let v1 = notice(&changed, 1);
    let publication = NewEntry::new(
        LedgerEntry::Notice(NoticePublication {
            controller: c.id.clone(),
            purpose: changed.id.clone(),
            version: 1,
            hash: v1.hash,
            published_at: v1.published_at,
        }),
        None,
    );
    let mut b = batch(&c.id, vec![publication.clone()]);
    b.notice_versions.push(v1.clone());
    assert_eq!(store.append_owned(b.clone()).await.expect("publish").first_seq, 0);
    // Publishing the same version twice fails and leaves the ledger as it was.
    assert!(matches!(store.append_owned(b).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 1);

    let snapshot = store.load_catalog(c.id.clone()).await.expect("load");
    assert_eq!(snapshot.data_categories.get(&category.id), Some(&category));
    assert_eq!(snapshot.purposes.get(&changed.id), Some(&changed));
    assert_eq!(snapshot.versions.get(&changed.id).map(Vec::as_slice), Some(&[v1][..]));
    assert!(store.load_catalog(ControllerId::parse("alpha").expect("id")).await.expect("load").purposes.is_empty());
}

async fn ledger_sequence_is_gapless_per_controller<S: Store>(store: &S) {
    let a = controller("seq-a");
    let b = controller("seq-b");
    store.create_controller(a.clone()).await.expect("create");
    store.create_controller(b.clone()).await.expect("create");
    let s = subject("cust-1", 1);
    let mut first = batch(
        &a.id,
        vec![consent(&a.id, &s, "ads", Action::Grant, 10), consent(&a.id, &s, "ads", Action::Withdraw, 11)],
    );
    first.new_subjects.push(s.clone());
    assert_eq!(store.append_owned(first.clone()).await.expect("append").first_seq, 0);
    assert_eq!(
        store
            .append_owned({
                let mut in_b = batch(&b.id, vec![consent(&b.id, &s, "ads", Action::Grant, 12)]);
                in_b.new_subjects.push(s.clone());
                in_b
            })
            .await
            .expect("append")
            .first_seq,
        0
    );
    assert_eq!(
        store
            .append_owned(batch(&a.id, vec![consent(&a.id, &s, "mail", Action::Grant, 13)]))
            .await
            .expect("append")
            .first_seq,
        2
    );

    let entries = store.entries(a.id.clone(), 0, 100).await.expect("entries");
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(entries[0].bytes, first.entries[0].bytes);
    assert_eq!(entries[0].leaf_hash, first.entries[0].leaf_hash);
    assert_eq!(store.entries(a.id.clone(), 1, 2).await.expect("entries").len(), 1);
    assert_eq!(store.subject_entries(a.id.clone(), s.number).await.expect("history").len(), 3);
    assert_eq!(store.load_subjects(a.id.clone()).await.expect("subjects"), vec![s.clone()]);
    assert_eq!(store.load_subjects(b.id.clone()).await.expect("subjects"), vec![s.clone()]);
    // An event for a subject the store does not have (erased meanwhile, say) is refused whole.
    let stranger = subject("cust-77", 77);
    let refused = store.append_owned(batch(&a.id, vec![consent(&a.id, &stranger, "ads", Action::Grant, 14)])).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))));
    assert_eq!(store.ledger_size(a.id.clone()).await.expect("size"), 3);
    // Subject numbers continue above every number in use, in subjects or in the ledger.
    assert_eq!(store.next_subject_number(a.id.clone()).await.expect("next"), 2);
    assert_eq!(store.next_subject_number(b.id.clone()).await.expect("next"), 2);
    assert_eq!(store.next_subject_number(ControllerId::parse("nobody").expect("id")).await.expect("next"), 0);
}

async fn failed_appends_write_nothing<S: Store>(store: &S) {
    let c = controller("atomic");
    store.create_controller(c.clone()).await.expect("create");
    let s = subject("cust-1", 2);
    let p = purpose("ads");
    let v1 = notice(&p, 1);
    let publish = |v: &NoticeVersion| {
        NewEntry::new(
            LedgerEntry::Notice(NoticePublication {
                controller: c.id.clone(),
                purpose: p.id.clone(),
                version: v.version,
                hash: v.hash,
                published_at: v.published_at,
            }),
            None,
        )
    };
    let mut ok = batch(&c.id, vec![publish(&v1)]);
    ok.notice_versions.push(v1.clone());
    store.append_owned(ok).await.expect("publish");
    // A batch of a consent plus a duplicate publication fails as a whole.
    let mut bad = batch(&c.id, vec![consent(&c.id, &s, "ads", Action::Grant, 1), publish(&v1)]);
    bad.new_subjects.push(s.clone());
    bad.notice_versions.push(v1);
    assert!(store.append_owned(bad).await.is_err());
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 1);
    assert!(store.load_subjects(c.id.clone()).await.expect("subjects").is_empty());
    assert!(store.load_states(c.id.clone()).await.expect("states").is_empty());
}

async fn idempotency_keys_are_claimed_once<S: Store>(store: &S) {
    let c = controller("idem");
    store.create_controller(c.clone()).await.expect("create");
    let s = subject("cust-1", 3);
    let mut b = batch(&c.id, vec![consent(&c.id, &s, "ads", Action::Grant, 1)]);
    b.new_subjects.push(s);
    b.idempotency = Some(IdempotencyClaim { key: "k-1".into(), request_hash: [1; 32] });
    store.append_owned(b.clone()).await.expect("first");
    match store.append_owned(b).await {
        Err(StoreError::IdempotencyKeyUsed(record)) => {
            assert_eq!((record.first_seq, record.count, record.request_hash), (0, 1, [1; 32]));
        }
        other => panic!("expected the key to be taken, got {other:?}"),
    }
    assert_eq!(store.ledger_size(c.id.clone()).await.expect("size"), 1);
    let found = store.find_idempotency(c.id.clone(), "k-1".into()).await.expect("find").expect("present");
    assert_eq!(found.first_seq, 0);
    assert!(store.find_idempotency(c.id.clone(), "k-2".into()).await.expect("find").is_none());
}

async fn stored_state_is_the_projection_of_the_ledger<S: Store>(store: &S) {
    let c = controller("projection");
    store.create_controller(c.clone()).await.expect("create");
    let s1 = subject("cust-1", 4);
    let s2 = subject("cust-2", 5);
    let mut b = batch(
        &c.id,
        vec![
            consent(&c.id, &s1, "ads", Action::Grant, 1),
            consent(&c.id, &s2, "ads", Action::Grant, 2),
            consent(&c.id, &s1, "ads", Action::Withdraw, 3),
            consent(&c.id, &s1, "mail", Action::Grant, 4),
        ],
    );
    b.new_subjects = vec![s1, s2];
    store.append_owned(b).await.expect("append");
    let entries = store.entries(c.id.clone(), 0, 100).await.expect("entries");
    let decoded: Vec<_> =
        entries.iter().map(|e| (e.seq, assent_core::encoding::decode(&e.bytes).expect("decodes"))).collect();
    let rebuilt = fold(decoded.iter().map(|(seq, entry)| (*seq, entry)));
    let stored: BTreeMap<_, _> = store
        .load_states(c.id.clone())
        .await
        .expect("states")
        .into_iter()
        .map(|s| ((s.subject, s.purpose), s.state))
        .collect();
    assert_eq!(stored, rebuilt);
    assert_eq!(stored.len(), 3);
}

async fn concurrent_appends_stay_gapless<S: Store + Clone>(store: &S) {
    let c = controller("concurrent");
    store.create_controller(c.clone()).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let store = store.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            let s = subject(&format!("cust-{i}"), i);
            let mut b =
                batch(&id, vec![consent(&id, &s, "ads", Action::Grant, 1), consent(&id, &s, "mail", Action::Grant, 2)]);
            b.new_subjects.push(s);
            store.append_owned(b).await.expect("append").first_seq
        }));
    }
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.push(t.await.expect("task"));
    }
    firsts.sort_unstable();
    assert_eq!(firsts, (0..32).map(|i| i * 2).collect::<Vec<u64>>());
    let seqs: Vec<u64> = store.entries(c.id.clone(), 0, 1000).await.expect("entries").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..64).collect::<Vec<u64>>());
}
