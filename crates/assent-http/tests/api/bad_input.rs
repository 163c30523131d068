//! Bad input gets a precise problem and writes nothing.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_a_400_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    let key = app.admin.clone();
    for (path, body) in [
        ("/v1/consents", "{\"subject\": \"cust-1\", "),
        ("/v1/consents", "not json"),
        ("/v1/consents", "[]"),
        (
            "/v1/consents",
            "{\"subject\": \"cust-1\", \"purpose\": \"ads\", \"version\": \"one\", \"action\": \"grant\"}",
        ),
        ("/v1/consents/batch", "{\"events\": {}}"),
        ("/v1/purposes/ads/versions", "{\"texts\": 5}"),
        ("/v1/decisions", "{\"checks\": [{\"subject\": 1}]}"),
    ] {
        let r = app.raw(Method::POST, path, Some(&key), body.as_bytes().to_vec(), &[]).await;
        assert_problem(&r, StatusCode::BAD_REQUEST);
    }
    let r = app.raw(Method::POST, "/v1/consents", Some(&key), Vec::new(), &[]).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn unknown_fields_are_a_400_naming_the_field() {
    let app = spawn_app().await;
    let before = app.written().await;
    let key = app.admin.clone();
    let mut body = grant("cust-1", "ads", 1);
    body["granted"] = json!(true);
    let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(body)).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    assert!(r.body["detail"].as_str().unwrap().contains("granted"));
    let r = app.call(Method::PUT, "/v1/purposes/ads", Some(&key), Some(json!({"modle": "opt-in"}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    let mut n = notice("x");
    n["texts"]["en"]["benfit"] = json!("typo");
    let r = app.call(Method::POST, "/v1/purposes/ads/versions", Some(&key), Some(n)).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_a_413_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    let mut body = grant("cust-1", "ads", 1);
    body["evidence"] = json!({"padding": "x".repeat(1024 * 1024)});
    let r = app.call(Method::POST, "/v1/consents", Some(&app.admin.clone()), Some(body)).await;
    assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn bad_subject_ids_are_a_422_and_write_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    let key = app.admin.clone();
    let long = "a".repeat(257);
    for subject in ["", long.as_str(), "cust\n1", "cust\u{0}1", "tab\there"] {
        let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(grant(subject, "ads", 1))).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_fields(&r), ["subject"]);
        let r = app
            .call(
                Method::POST,
                "/v1/consents/batch",
                Some(&key),
                Some(json!({"events": [grant("ok", "ads", 1), grant(subject, "ads", 1)]})),
            )
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_fields(&r), ["events[1].subject"]);
    }
    // In the path, percent-encoded.
    for path in ["/v1/subjects/cust%0A1/withdraw-all", &format!("/v1/subjects/{long}/withdraw-all")] {
        let r = app.call(Method::POST, path, Some(&key), Some(json!({}))).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.get(&path.replace("withdraw-all", "consents"), &key).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = app.get(&format!("/v1/decisions?subject={long}&purpose=ads"), &key).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn grants_must_name_a_published_version_of_a_known_purpose() {
    let app = spawn_app().await;
    let before = app.written().await;
    let key = app.admin.clone();
    let mut no_version = grant("cust-1", "ads", 1);
    no_version.as_object_mut().unwrap().remove("version");
    let cases = [
        (no_version, "version"),
        (grant("cust-1", "ads", 7), "version"),
        (grant("cust-1", "no-such-purpose", 1), "purpose"),
        (grant("cust-1", "Bad Purpose", 1), "purpose"),
        (grant("cust-1", "service", 1), "purpose"),
        (json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "expire"}), "action"),
        (
            json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "grant", "method": "telepathy"}),
            "method",
        ),
        (json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "grant", "evidence": "ip"}), "evidence"),
        (
            json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "grant", "evidence": {"n": 9007199254740993u64}}),
            "evidence",
        ),
        (
            json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "grant", "evidence": {"n": 1.5}}),
            "evidence",
        ),
        (
            json!({"subject": "cust-1", "purpose": "ads", "version": 1, "action": "grant", "jurisdiction": "maine"}),
            "jurisdiction",
        ),
    ];
    for (body, field) in cases {
        let r = app.call(Method::POST, "/v1/consents", Some(&key), Some(body.clone())).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_fields(&r), [field], "{body}");
    }
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn an_opt_out_purpose_with_personal_data_is_a_422() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let r = app
        .call(
            Method::PUT,
            "/v1/purposes/sneaky",
            Some(&key),
            Some(json!({"model": "opt-out", "data_categories": ["browsing-history"]})),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&r), ["model"]);
    assert_problem(&app.get("/v1/purposes/sneaky", &key).await, StatusCode::NOT_FOUND);
    // Nor may a category an opt-out purpose uses become personal.
    let r = app
        .call(
            Method::PUT,
            "/v1/data-categories/network-stats",
            Some(&key),
            Some(json!({"personal": true, "names": {"en": "a", "es": "b"}})),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    let cats = app.get("/v1/data-categories", &key).await.body;
    let stats =
        cats["data_categories"].as_array().unwrap().iter().find(|c| c["id"] == "network-stats").unwrap().clone();
    assert_eq!(stats["personal"], false);
}

#[tokio::test]
async fn a_notice_missing_text_names_every_missing_field_and_publishes_nothing() {
    let app = spawn_app().await;
    let before = app.written().await;
    let key = app.admin.clone();
    let mut n = notice("ads v2");
    n["texts"]["en"]["benefit"] = json!("  ");
    n["texts"]["es"].as_object_mut().unwrap().remove("who");
    n["texts"]["es"].as_object_mut().unwrap().remove("retention");
    let r = app.call(Method::POST, "/v1/purposes/ads/versions", Some(&key), Some(n)).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&r), ["texts.en.benefit", "texts.es.who", "texts.es.retention"]);
    let mut n = notice("ads v2");
    n["texts"].as_object_mut().unwrap().remove("es");
    let r = app.call(Method::POST, "/v1/purposes/ads/versions", Some(&key), Some(n)).await;
    assert_eq!(error_fields(&r).len(), 6);
    assert!(error_fields(&r).iter().all(|f| f.starts_with("texts.es.")));
    assert_eq!(app.get("/v1/purposes/ads", &key).await.body["current_version"], 1);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_request_and_refuses_a_different_one() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let body = serde_json::to_vec(&grant("cust-1", "ads", 1)).unwrap();
    let headers = [("idempotency-key", "order-42")];
    let first = app.raw(Method::POST, "/v1/consents", Some(&key), body.clone(), &headers).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let after_first = app.written().await;
    app.clock.advance_ms(5_000);
    let again = app.raw(Method::POST, "/v1/consents", Some(&key), body, &headers).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(app.written().await, after_first);

    let other = serde_json::to_vec(&withdraw("cust-1", "ads")).unwrap();
    let r = app.raw(Method::POST, "/v1/consents", Some(&key), other, &headers).await;
    assert_problem(&r, StatusCode::CONFLICT);
    assert_eq!(app.written().await, after_first);
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true);

    // A batch with a used key replays too, and a bad key is a 422.
    let batch = serde_json::to_vec(&json!({"events": [grant("cust-2", "ads", 1), grant("cust-3", "ads", 1)]})).unwrap();
    let h = [("idempotency-key", "batch-1")];
    let first = app.raw(Method::POST, "/v1/consents/batch", Some(&key), batch.clone(), &h).await;
    let again = app.raw(Method::POST, "/v1/consents/batch", Some(&key), batch, &h).await;
    assert_eq!(first.body, again.body);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    let r = app
        .raw(
            Method::POST,
            "/v1/consents",
            Some(&key),
            serde_json::to_vec(&grant("c", "ads", 1)).unwrap(),
            &[("idempotency-key", "has space")],
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(&app.get("/v1/nothing-here", &app.admin.clone()).await, StatusCode::NOT_FOUND);
    let r = app.call(Method::DELETE, "/v1/purposes", Some(&app.admin.clone()), None).await;
    assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/v1/decisions?subject=cust-1", &app.admin.clone()).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn controller_settings_are_validated() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let r = app
        .call(Method::PATCH, "/v1/controller", Some(&key), Some(json!({"profiles": ["us-xx"], "languages": []})))
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&r), ["languages", "profiles[0]"]);
    let r = app
        .call(
            Method::PATCH,
            "/v1/controller",
            Some(&key),
            Some(json!({"allowed_origins": ["https://shop.example/path", "javascript:alert(1)"]})),
        )
        .await;
    assert_eq!(error_fields(&r), ["allowed_origins[0]", "allowed_origins[1]"]);
    let r = app.ok(Method::PATCH, "/v1/controller", &key, json!({"profiles": ["us-me-isp", "us-ca-cpra"]})).await;
    assert_eq!(
        r,
        json!({"id": "acme", "name": "Acme Broadband", "languages": ["en", "es"], "profiles": ["us-me-isp", "us-ca-cpra"], "allowed_origins": []})
    );
}
