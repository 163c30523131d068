//! Notices that tell the truth: the lint on publish, material changes found without being
//! declared, and grants that lapse (and are recorded as lapsed by the sweeper).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn coded(r: &Resp) -> Vec<(String, String)> {
    r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap_or("").to_owned(), e["field"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn publishing_a_bad_notice_is_refused_with_every_finding_coded_and_nothing_written() {
    let app = spawn_app().await;
    let before = app.written().await;
    let mut body = notice("ads");
    body["texts"]["en"]["benefit"] = json!("Get a 10% discount on your bill.");
    body["texts"]["es"]["benefit"] = json!("");
    body["recipients"] = json!([]);
    body.as_object_mut().unwrap().remove("retention_days");
    let r = app.call(Method::POST, "/v1/purposes/ads/versions", Some(&app.admin.clone()), Some(body)).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    let mut got = coded(&r);
    got.sort();
    assert_eq!(
        got,
        [
            ("benefit-missing".into(), "texts.es.benefit".into()),
            ("incentive-offered".into(), "texts.en.benefit".into()),
            ("recipient-not-named".into(), "recipients".into()),
            ("retention-missing".into(), "retention_days".into()),
        ]
    );
    for e in r.body["errors"].as_array().unwrap() {
        assert!(e["message"].as_str().unwrap().len() > 20, "a fix, not a label: {e}");
    }
    assert_eq!(app.written().await, before, "a refused publication writes nothing");
    let purpose = app.get("/v1/purposes/ads", &app.admin.clone()).await.body;
    assert_eq!(purpose["current_version"], 1);
}

#[tokio::test]
async fn warnings_do_not_block_publication_and_come_back_with_it() {
    let app = spawn_app().await;
    let mut body = notice("ads");
    body["texts"]["en"]["how"] = json!(
        "We disclose information to third parties pursuant to contractual obligations and legitimate interests, \
         including affiliated organizations and subsidiaries."
    );
    let published = app.ok(Method::POST, "/v1/purposes/ads/versions", &app.admin.clone(), body).await;
    assert_eq!(published["version"], 2);
    let warnings: Vec<(&str, &str)> = published["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["code"].as_str().unwrap(), w["field"].as_str().unwrap()))
        .collect();
    assert!(warnings.contains(&("readability", "texts.en")), "{warnings:?}");
    assert!(warnings.contains(&("jargon", "texts.en.how")), "{warnings:?}");
    assert!(published["warnings"].as_array().unwrap().iter().all(|w| w["severity"] == "warning"));
}

#[tokio::test]
async fn california_controllers_must_say_when_data_is_sold_or_shared() {
    let app = spawn_app().await;
    app.ok(Method::PATCH, "/v1/controller", &app.admin.clone(), json!({"profiles": ["us-ca-cpra"]})).await;
    let r = app.call(Method::POST, "/v1/purposes/sharing/versions", Some(&app.admin.clone()), Some(notice("s"))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        coded(&r),
        [("sale-not-disclosed".into(), "texts.en.how".into()), ("sale-not-disclosed".into(), "texts.es.how".into())]
    );
    let mut body = notice("s");
    body["texts"]["en"]["how"] = json!("We share the websites you visit with Acme Ads.");
    body["texts"]["es"]["how"] = json!("Compartimos los sitios web que visita con Acme Ads.");
    app.ok(Method::POST, "/v1/purposes/sharing/versions", &app.admin.clone(), body).await;
}

#[tokio::test]
async fn a_wider_notice_is_material_without_being_declared_and_asks_again() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &admin, grant("cust-1", "ads", 1)).await;
    // Rewording alone is not material: the grant still counts.
    let mut reworded = notice("ads");
    reworded["texts"]["en"]["how"] = json!("We choose ads from them.");
    let v2 = app.ok(Method::POST, "/v1/purposes/ads/versions", &admin, reworded).await;
    assert_eq!((v2["version"].clone(), v2["material"].clone()), (json!(2), json!(false)));
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true);
    // A new recipient and longer retention are, whatever the body says.
    let mut wider = notice("ads");
    wider["recipients"] = json!([{"name": "Acme", "role": "shows ads"}, {"name": "Acme Ads", "role": "ad network"}]);
    wider["retention_days"] = json!(365);
    wider["material"] = json!(false);
    let v3 = app.ok(Method::POST, "/v1/purposes/ads/versions", &admin, wider).await;
    assert_eq!(v3["material"], true);
    assert_eq!(
        v3["material_reasons"],
        json!(["adds recipient `Acme Ads`", "keeps the data longer: 365 days instead of 180"])
    );
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "reconsent_required"}));
    let consents = app.get("/v1/subjects/cust-1/consents", &admin).await.body;
    let ads = consents["purposes"].as_array().unwrap().iter().find(|p| p["purpose"] == "ads").unwrap().clone();
    assert_eq!(
        (ads["status"].clone(), ads["version"].clone(), ads["current_version"].clone()),
        (json!("reconsent_required"), json!(1), json!(3))
    );
    // The stored version says it is material, and its hash covers that.
    let stored = app.get("/v1/purposes/ads/versions/3", &admin).await.body;
    assert_eq!(stored["material"], true);
}

fn history_actions(history: &Value, purpose: &str) -> Vec<String> {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["purpose"] == purpose)
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lapsed_grants_decide_as_expired_at_once_and_the_sweeper_records_them_once() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    app.ok(Method::POST, "/v1/consents", &admin, grant("cust-1", "short-lived", 1)).await;
    app.ok(Method::POST, "/v1/consents", &admin, grant("cust-1", "ads", 1)).await;
    assert_eq!(app.service.sweep_expired().await.unwrap(), 0, "nothing has lapsed yet");
    // `short-lived` lasts one day: from that moment on decisions say so, sweep or no sweep.
    app.clock.advance_ms(DAY_MS);
    assert_eq!(app.decision("cust-1", "short-lived").await, json!({"allowed": false, "reason": "expired"}));
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true, "`ads` has no maximum age");
    let (before, _, _) = app.written().await;
    assert_eq!(app.service.sweep_expired().await.unwrap(), 1);
    assert_eq!(app.written().await.0, before + 1, "one `expire` event in the ledger");
    let history = app.get("/v1/subjects/cust-1/history", &admin).await.body;
    assert_eq!(history_actions(&history, "short-lived"), ["grant", "expire"]);
    let expire = history["events"].as_array().unwrap().iter().find(|e| e["action"] == "expire").unwrap().clone();
    assert_eq!(expire["method"], "system");
    // Recorded once: a second sweep finds nothing.
    assert_eq!(app.service.sweep_expired().await.unwrap(), 0);
    assert_eq!(app.decision("cust-1", "short-lived").await, json!({"allowed": false, "reason": "expired"}));
    // A new yes starts a new lifetime.
    app.ok(Method::POST, "/v1/consents", &admin, grant("cust-1", "short-lived", 1)).await;
    assert_eq!(app.decision("cust-1", "short-lived").await["allowed"], true);
}

#[tokio::test]
async fn gdpr_controllers_refresh_consent_after_the_configured_period() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    app.service.set_consent_refresh_days(30);
    app.ok(Method::POST, "/v1/consents", &admin, grant("cust-1", "ads", 1)).await;
    app.clock.advance_ms(31 * DAY_MS);
    assert_eq!(app.decision("cust-1", "ads").await["allowed"], true, "acme is not bound by GDPR");
    app.ok(Method::PATCH, "/v1/controller", &admin, json!({"profiles": ["us-me-isp", "eu-gdpr"]})).await;
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": false, "reason": "expired"}));
    assert_eq!(app.service.sweep_expired().await.unwrap(), 1);
    let history = app.get("/v1/subjects/cust-1/history", &admin).await.body;
    assert_eq!(history_actions(&history, "ads"), ["grant", "expire"]);
}
