//! Crash test: drive concurrent writes at the real binary, `kill -9` it mid-load, restart, and
//! check that every acknowledged event survived and that state equals the rebuild. Several rounds,
//! bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assent_core::ControllerId;
use assent_core::state::{StateMap, fold};
use assent_store::Store;
use assent_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};

use crate::support::*;

const ROUNDS: usize = 4;
const WRITERS: usize = 32;

/// (seq, leaf_hash) of every event the server acknowledged with a 2xx.
type Acked = Arc<Mutex<Vec<(u64, String)>>>;

async fn load(base: String, key: String, acked: Acked, round: usize) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (client, base, key, acked) = (client.clone(), base.clone(), key.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let subject = format!("r{round}-w{w}-s{}", n % 7);
                let body = if n % 5 == 4 {
                    let events: Vec<Value> = (0..10)
                        .map(|i| json!({"subject": format!("{subject}-b{i}"), "purpose": "ads", "version": 1, "action": "grant"}))
                        .collect();
                    (format!("{base}/v1/consents/batch"), json!({"events": events}))
                } else {
                    let action = if n % 2 == 0 { "grant" } else { "withdraw" };
                    (format!("{base}/v1/consents"), json!({"subject": subject, "purpose": "ads", "version": 1, "action": action}))
                };
                let Ok(response) = client.post(&body.0).bearer_auth(&key).json(&body.1).send().await else { return };
                if !response.status().is_success() {
                    assert!(response.status().is_server_error(), "unexpected {}", response.status());
                    return;
                }
                let Ok(v) = response.json::<Value>().await else { return };
                let mut acked = acked.lock().unwrap();
                match v.get("results") {
                    Some(results) => {
                        for r in results.as_array().unwrap() {
                            acked.push((r["seq"].as_u64().unwrap(), r["leaf_hash"].as_str().unwrap().to_owned()));
                        }
                    }
                    None => acked.push((v["seq"].as_u64().unwrap(), v["leaf_hash"].as_str().unwrap().to_owned())),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_kill_9() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), "crash");
    let server = Server::start(dir.path()).await;
    let client = reqwest::Client::new();
    seed_catalog(&server.base, &key).await;
    server.kill_9();

    let acked: Acked = Arc::default();
    for round in 0..ROUNDS {
        let server = Server::start(dir.path()).await;
        let load = tokio::spawn(load(server.base.clone(), key.clone(), acked.clone(), round));
        // Kill at a different point of each round.
        tokio::time::sleep(Duration::from_millis(400 + 250 * round as u64)).await;
        let before_kill = acked.lock().unwrap().len();
        server.kill_9();
        load.await.unwrap();
        assert!(before_kill > 0, "round {round}: the load produced no acknowledged writes");
    }

    // A last start must come up on what is left, and answer like the rebuild.
    let server = Server::start(dir.path()).await;
    let subjects: Vec<String> = (0..WRITERS).map(|w| format!("r{}-w{w}-s0", ROUNDS - 1)).collect();
    let mut answers = HashMap::new();
    for s in &subjects {
        let v: Value =
            get_json(&client, &format!("{}/v1/decisions?subject={s}&purpose=ads", server.base), Some(&key)).await;
        answers.insert(s.clone(), v["allowed"].as_bool().unwrap());
    }
    server.stop();

    let store = SqliteStore::open(&dir.path().join("assent.db"), SqliteOptions::default()).unwrap();
    let id = ControllerId::parse("crash").unwrap();
    let size = store.ledger_size(id.clone()).await.unwrap();
    let entries = store.entries(id.clone(), 0, size).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..size).collect::<Vec<_>>(), "gapless");
    let by_seq: BTreeMap<u64, String> =
        entries.iter().map(|e| (e.seq, assent_core::crypto::to_hex(&e.leaf_hash))).collect();
    let acked = acked.lock().unwrap().clone();
    for (seq, leaf) in &acked {
        assert_eq!(by_seq.get(seq), Some(leaf), "acknowledged event {seq} is missing or different");
    }
    let decoded: Vec<_> = entries.iter().map(|e| (e.seq, assent_core::encoding::decode(&e.bytes).unwrap())).collect();
    let rebuilt = fold(decoded.iter().map(|(s, e)| (*s, e)));
    let stored: StateMap =
        store.load_states(id.clone()).await.unwrap().into_iter().map(|s| ((s.subject, s.purpose), s.state)).collect();
    assert_eq!(stored, rebuilt, "stored state equals the rebuild from the ledger");

    // The restarted server's decisions agree with the rebuild.
    let pseudonyms: HashMap<String, assent_core::event::Pseudonym> =
        store.load_subjects(id).await.unwrap().into_iter().map(|s| (s.id.as_str().to_owned(), s.pseudonym)).collect();
    for (subject, allowed) in answers {
        let state =
            pseudonyms.get(&subject).and_then(|p| rebuilt.get(&(*p, assent_core::PurposeId::parse("ads").unwrap())));
        assert_eq!(allowed, state.is_some_and(|s| s.action == assent_core::Action::Grant), "{subject}");
    }
    eprintln!(
        "crash test: {} acknowledged events over {ROUNDS} kill -9 rounds, {size} in the ledger, {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}
