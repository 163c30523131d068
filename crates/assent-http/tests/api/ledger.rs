//! The provable ledger, checked the way an auditor would: with only the public key, the
//! checkpoint and the entries endpoint.

use assent_core::crypto::{Hash32, leaf_hash};
use assent_core::merkle::{self, MemoryTree};
use assent_core::note::{Checkpoint, Verifier};
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};

use crate::helpers::*;

async fn public_key(app: &TestApp) -> Verifier {
    let r = app.call(Method::GET, "/v1/ledger/public-key?controller=acme", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    Verifier::parse(r.body.as_str().unwrap()).unwrap()
}

async fn checkpoint(app: &TestApp, verifier: &Verifier) -> Checkpoint {
    let r = app.call(Method::GET, "/v1/ledger/checkpoint?controller=acme", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    Checkpoint::open(r.body.as_str().unwrap(), verifier).unwrap()
}

async fn sign_now(app: &TestApp, verifier: &Verifier) -> Checkpoint {
    let r = app.call(Method::POST, "/v1/ledger/checkpoint", Some(&app.admin.clone()), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    Checkpoint::open(r.body.as_str().unwrap(), verifier).unwrap()
}

/// Every leaf hash of the log, fetched through the entries endpoint, 1000 at a time.
async fn leaves(app: &TestApp, size: u64) -> Vec<Hash32> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + 1000).min(size);
        let page = app.get(&format!("/v1/ledger/entries?start={start}&end={end}"), &app.admin.clone()).await.body;
        for (i, e) in page["entries"].as_array().unwrap().iter().enumerate() {
            assert_eq!(e["index"].as_u64().unwrap(), start + i as u64);
            out.push(leaf_hash(&B64.decode(e["data"].as_str().unwrap()).unwrap()));
        }
        start = end;
    }
    out
}

fn hashes(v: &Value) -> Vec<Hash32> {
    v.as_array().unwrap().iter().map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect()
}

#[tokio::test]
async fn an_auditor_rebuilds_the_signed_root_from_the_entries() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    for i in 0..40 {
        app.ok(Method::POST, "/v1/consents", &key, grant(&format!("cust-{i}"), "ads", 1)).await;
    }
    let verifier = public_key(&app).await;
    assert_eq!(verifier.name, "assent.test/acme");
    let cp = sign_now(&app, &verifier).await;
    assert_eq!(checkpoint(&app, &verifier).await, cp, "the public checkpoint is the latest signed one");
    let mut tree = MemoryTree::default();
    leaves(&app, cp.size).await.into_iter().for_each(|l| tree.push(l));
    assert_eq!(merkle::root(cp.size, &mut tree.reader()).unwrap(), cp.root);

    // Every entry's inclusion proof verifies against the signed root.
    for index in [0, 1, 7, cp.size / 2, cp.size - 1] {
        let r = app.get(&format!("/v1/ledger/proofs/inclusion?index={index}&tree_size={}", cp.size), &key).await;
        assert_eq!(r.body["leaf_index"], index);
        let leaf = tree.node(0, index).unwrap();
        merkle::verify_inclusion(index, cp.size, &leaf, &hashes(&r.body["hashes"]), &cp.root).unwrap();
    }

    // The log only grows: a later checkpoint is consistent with the earlier one.
    for i in 0..13 {
        app.ok(Method::POST, "/v1/consents", &key, withdraw(&format!("cust-{i}"), "ads")).await;
    }
    let later = sign_now(&app, &verifier).await;
    assert_eq!(later.size, cp.size + 13);
    let r = app.get(&format!("/v1/ledger/proofs/consistency?from={}&to={}", cp.size, later.size), &key).await;
    merkle::verify_consistency(cp.size, later.size, &hashes(&r.body["hashes"]), &cp.root, &later.root).unwrap();
}

#[tokio::test]
async fn ledger_requests_outside_the_log_are_refused() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let size = app.service.store().ledger_size(assent_core::ControllerId::parse("acme").unwrap()).await.unwrap();
    for path in [
        format!("/v1/ledger/proofs/inclusion?index=0&tree_size={}", size + 1),
        format!("/v1/ledger/proofs/inclusion?index={size}&tree_size={size}"),
        format!("/v1/ledger/proofs/consistency?from=0&to={size}"),
        format!("/v1/ledger/proofs/consistency?from=2&to={}", size + 5),
        "/v1/ledger/entries?start=0&end=1001".to_owned(),
        "/v1/ledger/entries?start=5&end=1".to_owned(),
    ] {
        assert_problem(&app.get(&path, &key).await, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_problem(&app.get("/v1/ledger/proofs/inclusion?index=x&tree_size=1", &key).await, StatusCode::BAD_REQUEST);
    let r = app.call(Method::GET, "/v1/ledger/checkpoint?controller=nobody", None, None).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    let r = app.call(Method::GET, "/v1/ledger/checkpoint", None, None).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    // With an audit key, the controller may be left out.
    let audit = app.key(&[assent_store::Scope::Audit]).await;
    assert_eq!(app.get("/v1/ledger/checkpoint", &audit).await.status, StatusCode::OK);
}

fn receipt_payload(receipt: &str, verifier: &Verifier) -> Value {
    serde_json::from_slice(&assent_core::jws::verify(receipt, &verifier.key).unwrap()).unwrap()
}

#[tokio::test]
async fn a_receipt_proves_the_choice_offline() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let mut body = grant("cust-1", "ads", 1);
    body["evidence"] = json!({"ip": "203.0.113.0", "ua": "Firefox"});
    body["language"] = json!("es");
    body["jurisdiction"] = json!("US-ME");
    let seq = app.ok(Method::POST, "/v1/consents", &key, body).await["seq"].as_u64().unwrap();
    let verifier = public_key(&app).await;

    let r = app.get(&format!("/v1/subjects/cust-1/receipts/{seq}"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let receipt = r.body["receipt"].as_str().unwrap();
    let header: Value = serde_json::from_slice(&B64URL.decode(receipt.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let p = receipt_payload(receipt, &verifier);
    assert_eq!(p["version"], "KI-CR-v1.1.0");
    assert_eq!(p["piiPrincipalId"], "cust-1");
    assert_eq!(p["jurisdiction"], "US-ME");
    assert_eq!(p["language"], "es");
    assert_eq!(p["collectionMethod"], "api");
    assert_eq!(p["services"][0]["service"], "ads");
    assert_eq!(p["services"][0]["purposes"][0]["purpose"], "ads (es)");
    assert_eq!(p["services"][0]["purposes"][0]["consentType"], "EXPLICIT");
    let a = &p["assent"];
    assert_eq!((a["action"].as_str(), a["notice_version"].as_u64()), (Some("grant"), Some(1)));
    assert!(a["notice_hash"].as_str().unwrap().starts_with("sha256:"));

    // Leaf hash, inclusion proof and checkpoint all check out with nothing but the key.
    let entry = B64.decode(a["entry"].as_str().unwrap()).unwrap();
    assert_eq!(assent_core::crypto::to_hex(&leaf_hash(&entry)), a["leaf_hash"].as_str().unwrap());
    let cp = Checkpoint::open(a["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(cp.size, a["tree_size"].as_u64().unwrap());
    merkle::verify_inclusion(seq, cp.size, &leaf_hash(&entry), &hashes(&a["inclusion_proof"]), &cp.root).unwrap();
    // The subject id is in the receipt the customer keeps, never in the ledger entry.
    assert!(!String::from_utf8(entry).unwrap().contains("cust-1"));

    // Another customer's event, a notice entry, or an unknown seq: no receipt.
    let other = app.ok(Method::POST, "/v1/consents", &key, grant("cust-2", "ads", 1)).await["seq"].as_u64().unwrap();
    for path in [
        format!("/v1/subjects/cust-1/receipts/{other}"),
        "/v1/subjects/cust-1/receipts/0".into(),
        "/v1/subjects/cust-1/receipts/99999".into(),
        "/v1/subjects/cust-1/receipts/x".into(),
    ] {
        assert_problem(&app.get(&path, &key).await, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn erasure_unlinks_the_customer_and_the_log_still_verifies() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let mut body = grant("cust-1", "ads", 1);
    body["evidence"] = json!({"ip": "203.0.113.0"});
    let seq = app.ok(Method::POST, "/v1/consents", &key, body).await["seq"].as_u64().unwrap();
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-2", "ads", 1)).await;
    let r = app
        .raw(
            Method::POST,
            "/v1/subjects/cust-1/withdraw-all",
            Some(&key),
            b"{}".to_vec(),
            &[("idempotency-key", "wd-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let verifier = public_key(&app).await;
    let before = sign_now(&app, &verifier).await;

    let r = app.call(Method::DELETE, "/v1/subjects/cust-1", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["erased"], true);
    let erasure_seq = r.body["seq"].as_u64().unwrap();

    // The customer reads as unknown and decides as never asked; others are untouched.
    assert_problem(&app.get("/v1/subjects/cust-1/consents", &key).await, StatusCode::NOT_FOUND);
    assert_problem(&app.get("/v1/subjects/cust-1/history", &key).await, StatusCode::NOT_FOUND);
    assert_problem(&app.get(&format!("/v1/subjects/cust-1/receipts/{seq}"), &key).await, StatusCode::NOT_FOUND);
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "not_asked"}));
    assert_eq!(app.decision("cust-2", "ads").await["allowed"], true);
    assert_problem(&app.call(Method::DELETE, "/v1/subjects/cust-1", Some(&key), None).await, StatusCode::NOT_FOUND);

    // The log kept every entry and still verifies end to end, including the erasure entry,
    // which names no one.
    let after = sign_now(&app, &verifier).await;
    let mut tree = MemoryTree::default();
    leaves(&app, after.size).await.into_iter().for_each(|l| tree.push(l));
    assert_eq!(merkle::root(after.size, &mut tree.reader()).unwrap(), after.root);
    let r = app.get(&format!("/v1/ledger/proofs/consistency?from={}&to={}", before.size, after.size), &key).await;
    merkle::verify_consistency(before.size, after.size, &hashes(&r.body["hashes"]), &before.root, &after.root).unwrap();
    let erasure = app.get(&format!("/v1/ledger/entries?start={erasure_seq}&end={}", erasure_seq + 1), &key).await.body;
    let text = String::from_utf8(B64.decode(erasure["entries"][0]["data"].as_str().unwrap()).unwrap()).unwrap();
    assert!(text.contains(r#""kind":"erasure""#) && !text.contains("subject"), "{text}");

    // Nothing left in storage links the old entries to the id: no subject record, no evidence.
    let id = assent_core::ControllerId::parse("acme").unwrap();
    let subjects = app.service.store().load_subjects(id.clone()).await.unwrap();
    assert!(subjects.iter().all(|s| s.id.as_str() != "cust-1"));
    // Idempotency fingerprints hash the subject id: theirs are gone too.
    assert!(app.service.store().find_idempotency(id, "wd-1".into()).await.unwrap().is_none());

    // The same id can come back as a new, unrelated customer.
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 1)).await;
    let history = app.get("/v1/subjects/cust-1/history", &key).await.body;
    assert_eq!(history["events"].as_array().unwrap().len(), 1);
}

use assent_store::Store;
