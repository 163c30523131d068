//! Every endpoint with no key, a bad key, a key without the scope, and another controller's key.

use assent_store::Scope;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

struct Endpoint {
    method: Method,
    path: &'static str,
    scope: Scope,
    body: Option<Value>,
}

fn endpoints() -> Vec<Endpoint> {
    let e =
        |method: Method, path: &'static str, scope: Scope, body: Option<Value>| Endpoint { method, path, scope, body };
    vec![
        e(Method::GET, "/v1/controller", Scope::Admin, None),
        e(Method::PATCH, "/v1/controller", Scope::Admin, Some(json!({"name": "Renamed"}))),
        e(Method::GET, "/v1/data-categories", Scope::Catalog, None),
        e(
            Method::PUT,
            "/v1/data-categories/app-usage",
            Scope::Catalog,
            Some(json!({"personal": true, "names": {"en": "Apps", "es": "Apps"}})),
        ),
        e(Method::GET, "/v1/purposes", Scope::Catalog, None),
        e(Method::GET, "/v1/purposes/ads", Scope::Catalog, None),
        e(Method::PUT, "/v1/purposes/new-one", Scope::Catalog, Some(json!({"data_categories": ["browsing-history"]}))),
        e(Method::POST, "/v1/purposes/ads/versions", Scope::Catalog, Some(notice("ads v2"))),
        e(Method::GET, "/v1/purposes/ads/versions/1", Scope::Catalog, None),
        e(Method::POST, "/v1/consents", Scope::Collect, Some(grant("cust-1", "ads", 1))),
        e(Method::POST, "/v1/consents/batch", Scope::Collect, Some(json!({"events": [grant("cust-1", "ads", 1)]}))),
        e(Method::POST, "/v1/subjects/cust-1/withdraw-all", Scope::Collect, Some(json!({"method": "api"}))),
        e(Method::GET, "/v1/subjects/cust-1/consents", Scope::Read, None),
        e(Method::GET, "/v1/subjects/cust-1/history", Scope::Read, None),
        e(Method::GET, "/v1/decisions?subject=cust-1&purpose=ads", Scope::Decide, None),
        e(
            Method::POST,
            "/v1/decisions",
            Scope::Decide,
            Some(json!({"checks": [{"subject": "cust-1", "purpose": "ads"}]})),
        ),
        e(Method::GET, "/v1/ledger/proofs/inclusion?index=0&tree_size=1", Scope::Audit, None),
        e(Method::GET, "/v1/ledger/proofs/consistency?from=1&to=2", Scope::Audit, None),
        e(Method::GET, "/v1/ledger/entries?start=0&end=2", Scope::Audit, None),
        e(Method::POST, "/v1/ledger/checkpoint", Scope::Audit, None),
        e(Method::GET, "/v1/subjects/cust-1/receipts/5", Scope::Read, None),
        e(Method::POST, "/v1/subjects/cust-1/links", Scope::Collect, Some(json!({"ttl_seconds": 60}))),
        e(Method::DELETE, "/v1/subjects/cust-1", Scope::Admin, None),
        e(Method::POST, "/v1/webhooks", Scope::Admin, Some(json!({"url": "https://crm.example/hook"}))),
        e(Method::GET, "/v1/webhooks", Scope::Admin, None),
        e(Method::GET, "/v1/destinations", Scope::Admin, None),
        e(Method::GET, "/metrics", Scope::Audit, None),
    ]
}

#[tokio::test]
async fn delivery_endpoints_keep_to_their_scope_and_their_controller() {
    let app = spawn_app().await;
    let theirs = app
        .ok(Method::POST, "/v1/webhooks", &app.other_admin.clone(), json!({"url": "https://theirs.example/hook"}))
        .await;
    let id = theirs["id"].as_str().unwrap().to_owned();
    let key = app.admin.clone();
    // Their webhook is invisible here, and cannot be deleted or inspected.
    assert_eq!(app.get("/v1/webhooks", &key).await.body, json!({"webhooks": []}));
    assert_eq!(app.get("/v1/destinations", &key).await.body, json!({"destinations": []}));
    let r = app.call(Method::DELETE, &format!("/v1/webhooks/{id}"), Some(&key), None).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    let r = app.get(&format!("/v1/destinations/{id}/deliveries"), &key).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    let r = app.call(Method::POST, &format!("/v1/deliveries/{id}:0/ack"), Some(&key), None).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    // Still theirs, with its secret never shown again.
    let listed = app.get("/v1/webhooks", &app.other_admin.clone()).await.body;
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());
    assert!(listed["webhooks"][0].get("secret").is_none());

    // Webhooks may not point inside the network unless the deployment says so; nothing is stored.
    for internal in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://[::1]:9000/hook",
        "http://[fd00::1]/hook",
    ] {
        let r = app.call(Method::POST, "/v1/webhooks", Some(&key), Some(json!({"url": internal}))).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["errors"][0]["field"], "url", "{internal}");
    }
    assert_eq!(app.get("/v1/webhooks", &key).await.body, json!({"webhooks": []}));

    // Confirming needs `collect`; managing destinations needs `admin`.
    let collect = app.key(&[Scope::Collect]).await;
    let r = app.call(Method::POST, "/v1/deliveries/wh_0:0/ack", Some(&collect), None).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    let read = app.key(&[Scope::Read, Scope::Decide, Scope::Catalog, Scope::Audit]).await;
    let r = app.call(Method::POST, "/v1/deliveries/wh_0:0/ack", Some(&read), None).await;
    assert_problem(&r, StatusCode::FORBIDDEN);
    for path in [format!("/v1/webhooks/{id}"), format!("/v1/destinations/{id}/deliveries")] {
        let method = if path.starts_with("/v1/webhooks") { Method::DELETE } else { Method::GET };
        let r = app.call(method, &path, Some(&collect), None).await;
        assert_problem(&r, StatusCode::FORBIDDEN);
    }
    for bad in ["/v1/deliveries/no-colon/ack", "/v1/deliveries/wh_0:not-a-number/ack"] {
        let r = app.call(Method::POST, bad, Some(&collect), None).await;
        assert_problem(&r, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn every_endpoint_refuses_requests_without_a_valid_key_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    for e in endpoints() {
        for key in
            [None, Some("ak_0000000000000000000000000000000000000000000000000000000000000000"), Some("not-a-key")]
        {
            let r = app.call(e.method.clone(), e.path, key, e.body.clone()).await;
            assert_problem(&r, StatusCode::UNAUTHORIZED);
            assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer", "{} {}", e.method, e.path);
        }
    }
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn every_endpoint_refuses_a_key_without_its_scope_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    let name_before = app.get("/v1/controller", &app.admin.clone()).await.body["name"].clone();
    for e in endpoints() {
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != e.scope && *s != Scope::Admin).collect();
        let key = app.key(&others).await;
        let r = app.call(e.method.clone(), e.path, Some(&key), e.body.clone()).await;
        assert_problem(&r, StatusCode::FORBIDDEN);
        assert!(r.body["detail"].as_str().unwrap().contains(e.scope.as_str()), "{} {}", e.method, e.path);
    }
    assert_eq!(app.written().await, before);
    assert_eq!(app.get("/v1/controller", &app.admin.clone()).await.body["name"], name_before);
}

#[tokio::test]
async fn every_endpoint_accepts_a_key_with_exactly_its_scope() {
    let app = spawn_app().await;
    for e in endpoints() {
        let key = app.key(&[e.scope]).await;
        // The subject must exist for the subject reads.
        app.ok(Method::POST, "/v1/consents", &app.admin.clone(), grant("cust-1", "ads", 1)).await;
        let r = app.call(e.method.clone(), e.path, Some(&key), e.body.clone()).await;
        assert!(r.status.is_success(), "{} {} -> {} {:?}", e.method, e.path, r.status, r.body);
    }
}

#[tokio::test]
async fn another_controllers_resources_are_not_found_and_indistinguishable_from_missing_ones() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    // Reads of the other controller's purposes, versions and subjects: 404, like ids that never existed.
    for (theirs, missing) in [
        ("/v1/purposes/other-ads", "/v1/purposes/never-existed"),
        ("/v1/purposes/other-ads/versions/1", "/v1/purposes/never-existed/versions/1"),
        ("/v1/subjects/other-cust/consents", "/v1/subjects/never-existed/consents"),
        ("/v1/subjects/other-cust/history", "/v1/subjects/never-existed/history"),
        ("/v1/subjects/other-cust/receipts/5", "/v1/subjects/never-existed/receipts/5"),
    ] {
        let a = app.get(theirs, &key).await;
        let b = app.get(missing, &key).await;
        assert_problem(&a, StatusCode::NOT_FOUND);
        assert_eq!(a.status, b.status);
        assert_eq!(a.body["title"], b.body["title"]);
    }
    let r = app.call(Method::POST, "/v1/purposes/other-ads/versions", Some(&key), Some(notice("x"))).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    let r = app.call(Method::DELETE, "/v1/subjects/other-cust", Some(&key), None).await;
    assert_problem(&r, StatusCode::NOT_FOUND);
    // The other controller's ledger is public by design, but an audit key reads only its own.
    let mine = app.get("/v1/ledger/entries?start=0&end=1000", &key).await.body;
    let theirs = app.get("/v1/ledger/entries?start=0&end=1000", &app.other_admin.clone()).await.body;
    assert_ne!(mine, theirs);

    // Decisions about their customer and purpose look exactly like unknown ones.
    assert_eq!(app.decision("other-cust", "other-ads").await, app.decision("never-existed", "never-existed").await);
    assert_eq!(app.decision("other-cust", "other-ads").await, json!({"allowed": false, "reason": "unknown_purpose"}));
    assert_eq!(app.decision("other-cust", "ads").await, json!({"allowed": false, "reason": "not_asked"}));

    // Writing their purpose fails like any unknown purpose; withdraw-all of their customer
    // touches nothing of theirs.
    let a = app.call(Method::POST, "/v1/consents", Some(&key), Some(grant("other-cust", "other-ads", 1))).await;
    let b = app.call(Method::POST, "/v1/consents", Some(&key), Some(grant("other-cust", "never-existed", 1))).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["errors"][0]["field"], b.body["errors"][0]["field"]);
    let theirs = app.ok(Method::POST, "/v1/subjects/other-cust/withdraw-all", &key, json!({})).await;
    let unknown = app.ok(Method::POST, "/v1/subjects/never-existed/withdraw-all", &key, json!({})).await;
    assert_eq!(theirs, unknown, "their customer is a stranger here");

    // Their data is untouched: their customer is still granted, seen with their key.
    let theirs = app.get("/v1/decisions?subject=other-cust&purpose=other-ads", &app.other_admin.clone()).await;
    assert_eq!(theirs.body, json!({"allowed": true, "reason": "granted"}));
    let theirs = app.get("/v1/controller", &app.other_admin.clone()).await;
    assert_eq!(theirs.body["id"], "other");
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let key = app.key(&[Scope::Read]).await;
    assert!(key.len() >= 3 + 32, "at least 128 bits of hex");
    let db = std::fs::read(app.dir.path().join("assent.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("assent.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the key secret must not be stored");
    }
    let hash = assent_core::crypto::sha256(key.as_bytes());
    assert!(app.service.store().find_api_key(hash).await.unwrap().is_some());
}

use assent_store::Store;
