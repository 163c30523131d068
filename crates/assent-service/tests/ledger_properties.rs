//! Property: whatever the workload, state rebuilt from the ledger equals the live state and the
//! stored state, and every decision matches a simple reference model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use assent_core::catalog::NoticeText;
use assent_core::state::{StateMap, fold};
use assent_core::{ControllerId, Timestamp};
use assent_service::catalog::{DataCategoryInput, NoticeInput, PurposeInput};
use assent_service::consents::{ConsentInput, WithdrawAllInput};
use assent_service::{Assent, ManualClock};
use assent_store::Store;
use assent_store_sqlite::{SqliteOptions, SqliteStore};
use proptest::prelude::*;

const SUBJECTS: usize = 4;
const PURPOSES: [&str; 3] = ["ads", "offers", "sharing"];
const MAX_AGE_DAYS: u32 = 30;
const DAY: i64 = 86_400_000;

#[derive(Debug, Clone)]
enum Op {
    Grant { subject: usize, purpose: usize, latest: bool },
    Withdraw { subject: usize, purpose: usize },
    Publish { purpose: usize, material: bool },
    WithdrawAll { subject: usize },
    Advance { days: i64 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SUBJECTS, 0..PURPOSES.len(), any::<bool>()).prop_map(|(subject, purpose, latest)| Op::Grant { subject, purpose, latest }),
        2 => (0..SUBJECTS, 0..PURPOSES.len()).prop_map(|(subject, purpose)| Op::Withdraw { subject, purpose }),
        1 => (0..PURPOSES.len(), any::<bool>()).prop_map(|(purpose, material)| Op::Publish { purpose, material }),
        1 => (0..SUBJECTS).prop_map(|subject| Op::WithdrawAll { subject }),
        1 => (1i64..20).prop_map(|days| Op::Advance { days }),
        1 => Just(Op::Restart),
    ]
}

/// The reference: what a person reading the rules would compute, with no ledger at all.
#[derive(Default)]
struct Model {
    /// Per purpose, the material flag of each published version (index 0 = version 1).
    versions: Vec<Vec<bool>>,
    /// (subject, purpose) -> (granted?, version, at)
    last: HashMap<(usize, usize), (bool, Option<u32>, i64)>,
}

impl Model {
    fn reason(&self, subject: usize, purpose: usize, now: i64) -> &'static str {
        match self.last.get(&(subject, purpose)) {
            None => "not_asked",
            Some((false, _, _)) => "withdrawn",
            Some((true, version, at)) => {
                if now >= at + i64::from(MAX_AGE_DAYS) * DAY {
                    return "expired";
                }
                let granted = version.unwrap_or(0);
                let newer_material = self.versions[purpose]
                    .iter()
                    .enumerate()
                    .any(|(i, material)| *material && u32::try_from(i + 1).unwrap() > granted);
                if newer_material { "reconsent_required" } else { "granted" }
            }
        }
    }
}

fn text() -> NoticeText {
    NoticeText {
        title: "t".into(),
        what: "w".into(),
        how: "h".into(),
        benefit: "b".into(),
        who: "o".into(),
        retention: "r".into(),
    }
}

fn notice(material: bool) -> NoticeInput {
    NoticeInput {
        texts: BTreeMap::from([("en".to_owned(), text()), ("es".to_owned(), text())]),
        recipients: vec![assent_core::Recipient { name: "Prop Co".into(), role: "uses it".into() }],
        retention_days: Some(30),
        material,
    }
}

async fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Assent<SqliteStore> {
    let store = SqliteStore::open(&dir.join("assent.db"), SqliteOptions::default()).unwrap();
    Assent::open(store, clock, assent_service::signing::KeyRing::new(dir.join("keys"), "assent.test")).await.unwrap()
}

fn live_states(service: &Assent<SqliteStore>, id: &ControllerId) -> StateMap {
    let handle = futures_lite_block(service.controller(id)).unwrap();
    let subjects = handle.subjects.read().unwrap();
    let mut map = StateMap::new();
    for entry in subjects.by_id.values().filter(|e| e.persisted) {
        for (purpose, state) in &entry.states {
            map.insert((entry.record.pseudonym, purpose.clone()), *state);
        }
    }
    map
}

fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_795_910_400_000)));
    let mut service = open(dir.path(), clock.clone()).await;
    let id = ControllerId::parse("prop").unwrap();
    service.create_controller("prop", "Prop", &[], &[]).await.unwrap();
    let admin = service.system_principal(&id).await.unwrap();
    let category = DataCategoryInput {
        personal: true,
        names: BTreeMap::from([("en".into(), "d".into()), ("es".into(), "d".into())]),
        descriptions: BTreeMap::new(),
    };
    service.put_data_category(&admin, "data", category).await.unwrap();
    let mut model = Model::default();
    for p in PURPOSES {
        let input = PurposeInput {
            data_categories: vec!["data".into()],
            max_age_days: Some(MAX_AGE_DAYS),
            condition_of_service: false,
            ..PurposeInput::default()
        };
        service.put_purpose(&admin, p, input).await.unwrap();
        service.publish_notice(&admin, p, notice(false)).await.unwrap();
        model.versions.push(vec![false]);
    }

    for op in ops {
        let now = clock.now_ms();
        let principal = service.system_principal(&id).await.unwrap();
        match op {
            Op::Grant { subject, purpose, latest } => {
                let current = u32::try_from(model.versions[purpose].len()).unwrap();
                let version = if latest { current } else { 1 };
                let input = ConsentInput {
                    subject: format!("s{subject}"),
                    purpose: PURPOSES[purpose].into(),
                    version: Some(version),
                    action: "grant".into(),
                    method: None,
                    evidence: Some(serde_json::json!({"ip": "10.0.0.0"})),
                    jurisdiction: Some("US-ME".into()),
                    language: Some("en".into()),
                };
                service.record_consent(&principal, input, None).await.unwrap();
                model.last.insert((subject, purpose), (true, Some(version), now));
            }
            Op::Withdraw { subject, purpose } => {
                let input = ConsentInput {
                    subject: format!("s{subject}"),
                    purpose: PURPOSES[purpose].into(),
                    version: None,
                    action: "withdraw".into(),
                    method: Some("web".into()),
                    evidence: None,
                    jurisdiction: None,
                    language: None,
                };
                service.record_consent(&principal, input, None).await.unwrap();
                let version = model.last.get(&(subject, purpose)).and_then(|l| l.1);
                model.last.insert((subject, purpose), (false, version, now));
            }
            Op::Publish { purpose, material } => {
                service.publish_notice(&principal, PURPOSES[purpose], notice(material)).await.unwrap();
                model.versions[purpose].push(material);
            }
            Op::WithdrawAll { subject } => {
                let out = service
                    .withdraw_all(&principal, &format!("s{subject}"), WithdrawAllInput::default(), false, None)
                    .await
                    .unwrap();
                let mut expected: Vec<&str> = Vec::new();
                for (p, name) in PURPOSES.iter().enumerate() {
                    if let Some((true, version, _)) = model.last.get(&(subject, p)).copied() {
                        expected.push(name);
                        model.last.insert((subject, p), (false, version, now));
                    }
                }
                let got: Vec<String> = out.withdrawn.iter().map(ToString::to_string).collect();
                assert_eq!(got, expected);
            }
            Op::Advance { days } => clock.advance_ms(days * DAY),
            Op::Restart => {
                drop(principal);
                drop(service);
                service = open(dir.path(), clock.clone()).await;
            }
        }
    }

    // Rebuilt from the ledger == stored projection == live memory.
    let store = service.store();
    let size = store.ledger_size(id.clone()).await.unwrap();
    let entries = store.entries(id.clone(), 0, size).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..size).collect::<Vec<_>>(), "gapless from 0");
    let decoded: Vec<_> = entries
        .iter()
        .map(|e| {
            assert_eq!(e.leaf_hash, assent_core::crypto::leaf_hash(&e.bytes));
            (e.seq, assent_core::encoding::decode(&e.bytes).unwrap())
        })
        .collect();
    let rebuilt = fold(decoded.iter().map(|(s, e)| (*s, e)));
    let stored: StateMap =
        store.load_states(id.clone()).await.unwrap().into_iter().map(|s| ((s.subject, s.purpose), s.state)).collect();
    assert_eq!(rebuilt, stored, "stored state is the projection of the ledger");
    assert_eq!(rebuilt, live_states(&service, &id), "live state is the projection of the ledger");

    // Every decision matches the reference model.
    let principal = service.system_principal(&id).await.unwrap();
    let now = clock.now_ms();
    for s in 0..SUBJECTS {
        for (p, name) in PURPOSES.iter().enumerate() {
            let got = service.decide(&principal, &format!("s{s}"), name).unwrap();
            let want = model.reason(s, p, now);
            assert_eq!(got.reason.as_str(), want, "subject s{s}, purpose {name}");
            assert_eq!(got.allowed, want == "granted");
        }
    }
}

trait NowMs {
    fn now_ms(&self) -> i64;
}

impl NowMs for ManualClock {
    fn now_ms(&self) -> i64 {
        assent_service::Clock::now(self).unix_millis()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn state_is_always_the_projection_of_the_ledger_and_decisions_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}
