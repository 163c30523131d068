//! The contract's happy paths: publish, grant, decide, withdraw, decide again, history.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn grant_decide_withdraw_decide_history() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "not_asked"}));

    let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(grant("cust-1", "ads", 1))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["state"]["status"], "granted");
    assert_eq!(r.body["state"]["version"], 1);
    assert_eq!(r.body["leaf_hash"].as_str().unwrap().len(), 64);
    let first_seq = r.body["seq"].as_u64().unwrap();
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": true, "reason": "granted"}));

    app.clock.advance_ms(1000);
    let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(withdraw("cust-1", "ads"))).await;
    assert_eq!(r.body["state"]["status"], "withdrawn");
    assert_eq!(r.body["state"]["version"], 1, "a withdrawal names the version it withdraws");
    assert_eq!(r.body["seq"].as_u64().unwrap(), first_seq + 1);
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "withdrawn"}));

    let history = app.get("/v1/subjects/cust-1/history", &key).await.body;
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0]["action"].as_str(), events[1]["action"].as_str()), (Some("grant"), Some("withdraw")));
    assert!(events[0]["recorded_at"].as_str().unwrap() < events[1]["recorded_at"].as_str().unwrap());

    let consents = app.get("/v1/subjects/cust-1/consents", &key).await.body;
    let purposes = consents["purposes"].as_array().unwrap();
    assert_eq!(purposes.len(), 5, "every purpose is listed, asked or not");
    let status = |id: &str| purposes.iter().find(|p| p["purpose"] == id).unwrap()["status"].clone();
    assert_eq!(status("ads"), "withdrawn");
    assert_eq!(status("sharing"), "not_asked");
}

#[tokio::test]
async fn decisions_follow_the_consent_model() {
    let app = spawn_app().await;
    assert_eq!(app.decision("cust-1", "service").await, json!({"allowed": true, "reason": "necessary"}));
    assert_eq!(app.decision("cust-1", "analytics").await, json!({"allowed": true, "reason": "not_objected"}));
    app.ok(Method::POST, "/v1/consents", &app.admin.clone(), withdraw("cust-1", "analytics")).await;
    assert_eq!(app.decision("cust-1", "analytics").await, json!({"allowed": false, "reason": "withdrawn"}));
    assert_eq!(app.decision("cust-1", "nope").await, json!({"allowed": false, "reason": "unknown_purpose"}));
    let r = app
        .ok(
            Method::POST,
            "/v1/decisions",
            &app.admin.clone(),
            json!({"checks": [{"subject": "cust-1", "purpose": "service"}, {"subject": "cust-1", "purpose": "ads"}, {"subject": "x", "purpose": "nope"}]}),
        )
        .await;
    assert_eq!(
        r,
        json!({"results": [{"allowed": true, "reason": "necessary"}, {"allowed": false, "reason": "not_asked"}, {"allowed": false, "reason": "unknown_purpose"}]})
    );
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let before = app.written().await;
    let events: Vec<_> =
        (0..3).map(|i| grant(&format!("cust-{i}"), "ads", 1)).chain([grant("cust-9", "nope", 1)]).collect();
    let r = app.call(Method::POST, "/v1/consents/batch", Some(&key), Some(json!({"events": events}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&r), ["events[3].purpose"]);
    assert_eq!(app.written().await, before);
    assert_eq!(app.decision("cust-0", "ads").await["allowed"], false);

    let events: Vec<_> = (0..1000).map(|i| grant(&format!("cust-{i}"), "ads", 1)).collect();
    let r = app.call(Method::POST, "/v1/consents/batch", Some(&key), Some(json!({"events": events}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let seqs: Vec<u64> = r.body["results"].as_array().unwrap().iter().map(|x| x["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "a batch takes consecutive sequence numbers");
    assert_eq!(app.decision("cust-999", "ads").await["allowed"], true);

    let too_many: Vec<_> = (0..1001).map(|i| grant(&format!("c-{i}"), "ads", 1)).collect();
    let r = app.call(Method::POST, "/v1/consents/batch", Some(&key), Some(json!({"events": too_many}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.call(Method::POST, "/v1/consents/batch", Some(&key), Some(json!({"events": []}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn withdraw_all_takes_back_every_grant_in_one_call() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    for p in ["ads", "sharing", "short-lived"] {
        app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", p, 1)).await;
    }
    let r = app.ok(Method::POST, "/v1/subjects/cust-1/withdraw-all", &key, json!({"method": "web"})).await;
    // Every grant, and an objection to the opt-out purpose: everything optional stops.
    assert_eq!(r, json!({"withdrawn": ["ads", "analytics", "sharing", "short-lived"]}));
    for p in ["ads", "analytics", "sharing", "short-lived"] {
        assert_eq!(app.decision("cust-1", p).await["reason"], "withdrawn");
    }
    // Nothing left to withdraw: nothing is recorded.
    let before = app.written().await;
    let r = app.ok(Method::POST, "/v1/subjects/cust-1/withdraw-all", &key, json!(null)).await;
    assert_eq!(r, json!({"withdrawn": []}));
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn global_privacy_control_opts_out_of_sale_and_targeted_ads() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "short-lived", 1)).await;
    let r = app
        .raw(Method::POST, "/v1/subjects/cust-1/withdraw-all", Some(&key), b"{}".to_vec(), &[("sec-gpc", "1")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"withdrawn": ["ads", "analytics", "sharing", "short-lived"]}));
    let history = app.get("/v1/subjects/cust-1/history", &key).await.body;
    let methods: Vec<_> =
        history["events"].as_array().unwrap().iter().map(|e| (e["purpose"].clone(), e["method"].clone())).collect();
    assert!(methods.contains(&(json!("ads"), json!("gpc"))));
    assert!(methods.contains(&(json!("sharing"), json!("gpc"))));
    assert!(methods.contains(&(json!("short-lived"), json!("api"))));
    // The signal is recorded once, not again on every request.
    let r = app
        .raw(Method::POST, "/v1/subjects/cust-1/withdraw-all", Some(&key), b"{}".to_vec(), &[("sec-gpc", "1")])
        .await;
    assert_eq!(r.body, json!({"withdrawn": []}));
    // Only the exact value `1` is the signal: anything else is a plain opt-out of everything,
    // which for a new customer objects to the opt-out purpose and nothing more.
    let r = app
        .raw(Method::POST, "/v1/subjects/cust-2/withdraw-all", Some(&key), b"{}".to_vec(), &[("sec-gpc", "true")])
        .await;
    assert_eq!(r.body, json!({"withdrawn": ["analytics"]}));
    let history = app.get("/v1/subjects/cust-2/history", &key).await.body;
    assert!(history["events"].as_array().unwrap().iter().all(|e| e["method"] == "api"));
}

#[tokio::test]
async fn a_material_notice_change_requires_consent_again() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 1)).await;
    let mut v2 = notice("ads v2");
    v2["material"] = json!(true);
    let r = app.ok(Method::POST, "/v1/purposes/ads/versions", &key, v2).await;
    assert_eq!(r["version"], 2);
    assert!(r["hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "reconsent_required"}));
    let consents = app.get("/v1/subjects/cust-1/consents", &key).await.body;
    let ads = consents["purposes"].as_array().unwrap().iter().find(|p| p["purpose"] == "ads").unwrap().clone();
    assert_eq!(
        (ads["status"].clone(), ads["version"].clone(), ads["current_version"].clone()),
        (json!("reconsent_required"), json!(1), json!(2))
    );
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 2)).await;
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true);
    // A non-material version does not.
    app.ok(Method::POST, "/v1/purposes/ads/versions", &key, notice("ads v3")).await;
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true);
    // Published versions never change and can be read back.
    let v1 = app.get("/v1/purposes/ads/versions/1", &key).await.body;
    assert_eq!(v1["texts"]["es"]["title"], "ads (es)");
}

#[tokio::test]
async fn a_grant_lapses_after_its_maximum_age() {
    let app = spawn_app().await;
    app.ok(Method::POST, "/v1/consents", &app.admin.clone(), grant("cust-1", "short-lived", 1)).await;
    app.clock.advance_ms(DAY_MS - 1);
    assert_eq!(app.decision("cust-1", "short-lived").await["reason"], "granted");
    app.clock.advance_ms(1);
    assert_eq!(app.decision("cust-1", "short-lived").await, json!({"allowed": false, "reason": "expired"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_decision_after_a_successful_write_reflects_it() {
    let app = Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let subject = format!("ryw-{i}");
            let key = app.admin.clone();
            for round in 0..5 {
                let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(grant(&subject, "ads", 1))).await;
                assert_eq!(r.status, StatusCode::CREATED);
                assert_eq!(app.decision(&subject, "ads").await["allowed"], true, "round {round}");
                app.ok(Method::POST, "/v1/consents", &key, withdraw(&subject, "ads")).await;
                assert_eq!(app.decision(&subject, "ads").await["allowed"], false, "round {round}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn state_survives_a_restart() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 1)).await;
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-2", "sharing", 1)).await;
    app.ok(Method::POST, "/v1/subjects/cust-2/withdraw-all", &key, json!({})).await;
    let before = app.get("/v1/subjects/cust-1/consents", &key).await.body;

    let reopened = open_service(app.dir.path(), app.clock.clone()).await;
    let base = serve(reopened).await;
    let app2 = TestApp { base, ..app };
    assert_eq!(app2.get("/v1/subjects/cust-1/consents", &key).await.body, before);
    assert_eq!(app2.decision("cust-1", "ads").await["allowed"], true);
    assert_eq!(app2.decision("cust-2", "sharing").await["reason"], "withdrawn");
    // Sequence numbers continue without a gap.
    let r = app2.ok(Method::POST, "/v1/consents", &key, grant("cust-3", "ads", 1)).await;
    let history = app2.get("/v1/subjects/cust-2/history", &key).await.body;
    let last = history["events"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(r["seq"].as_u64().unwrap(), last + 1);
}

#[tokio::test]
async fn health_readiness_and_the_api_description_are_served() {
    let app = spawn_app().await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
    let doc = app.call(Method::GET, "/openapi.json", None, None).await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    // Every route the router serves is described.
    let routes = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("get", "/v1/controller"),
        ("patch", "/v1/controller"),
        ("get", "/v1/data-categories"),
        ("put", "/v1/data-categories/{id}"),
        ("get", "/v1/purposes"),
        ("get", "/v1/purposes/{id}"),
        ("put", "/v1/purposes/{id}"),
        ("post", "/v1/purposes/{id}/versions"),
        ("get", "/v1/purposes/{id}/versions/{n}"),
        ("post", "/v1/consents"),
        ("post", "/v1/consents/batch"),
        ("post", "/v1/subjects/{subject}/withdraw-all"),
        ("get", "/v1/subjects/{subject}/consents"),
        ("get", "/v1/subjects/{subject}/history"),
        ("get", "/v1/decisions"),
        ("post", "/v1/decisions"),
        ("get", "/v1/ledger/checkpoint"),
        ("post", "/v1/ledger/checkpoint"),
        ("get", "/v1/ledger/public-key"),
        ("get", "/v1/ledger/proofs/inclusion"),
        ("get", "/v1/ledger/proofs/consistency"),
        ("get", "/v1/ledger/entries"),
        ("get", "/v1/subjects/{subject}/receipts/{seq}"),
        ("delete", "/v1/subjects/{subject}"),
        ("post", "/v1/subjects/{subject}/links"),
        ("get", "/p/{controller}"),
        ("get", "/p/{controller}/open"),
        ("post", "/p/{controller}/choice"),
        ("post", "/p/{controller}/withdraw-all"),
        ("get", "/.well-known/gpc.json"),
        ("post", "/p/{controller}/open"),
        ("get", "/p/{controller}/history"),
        ("get", "/p/{controller}/receipts/{seq}"),
        ("get", "/p/{controller}/ask/{purpose}"),
        ("post", "/p/{controller}/ask/{purpose}"),
        ("get", "/metrics"),
        ("post", "/v1/webhooks"),
        ("get", "/v1/webhooks"),
        ("delete", "/v1/webhooks/{id}"),
        ("get", "/v1/destinations"),
        ("get", "/v1/destinations/{id}/deliveries"),
        ("post", "/v1/deliveries/{id}/ack"),
    ];
    for (method, path) in routes {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not in openapi.json");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let header = format!("bearer {}", app.admin);
    let r = app.raw(Method::GET, "/v1/controller", None, vec![], &[("authorization", header.as_str())]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn widening_a_purpose_without_a_new_notice_asks_again() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 1)).await;
    app.ok(
        Method::PUT,
        "/v1/data-categories/location",
        &key,
        json!({"personal": true, "names": {"en": "Where you are", "es": "Dónde estás"}}),
    )
    .await;
    // The purpose now uses data the customer was never told about.
    app.ok(
        Method::PUT,
        "/v1/purposes/ads",
        &key,
        json!({"data_categories": ["browsing-history", "location"], "targeted_advertising": true}),
    )
    .await;
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "reconsent_required"}));
    // Even a grant of the old notice no longer counts; a notice describing the new terms does.
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-2", "ads", 1)).await;
    assert_eq!(app.decision("cust-2", "ads").await["allowed"], false);
    let v2 = app.ok(Method::POST, "/v1/purposes/ads/versions", &key, notice("ads v2")).await;
    assert_eq!(v2["data_categories"], json!(["browsing-history", "location"]));
    app.ok(Method::POST, "/v1/consents", &key, grant("cust-1", "ads", 2)).await;
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": true, "reason": "granted"}));
    // Narrowing needs no new consent.
    app.ok(
        Method::PUT,
        "/v1/purposes/ads",
        &key,
        json!({"data_categories": ["location"], "targeted_advertising": true}),
    )
    .await;
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true);
}
