//! `spawn_app()`: a real service on a temporary SQLite data dir with a hand-moved clock, two
//! controllers (`acme` and `other`), and a small catalog in English and Spanish.

use std::sync::Arc;

use assent_core::{ControllerId, Timestamp};
use assent_service::{Assent, ManualClock};
use assent_store::{Scope, Store};
use assent_store_sqlite::{SqliteOptions, SqliteStore};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

pub const START: Timestamp = Timestamp::from_unix_millis(1_795_910_400_000); // 2026-11-29T00:00:00Z
pub const DAY_MS: i64 = 86_400_000;

pub struct TestApp {
    /// The real server, listening on a port the OS picked.
    pub base: String,
    pub client: reqwest::Client,
    pub service: Arc<Assent<SqliteStore>>,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    pub other_admin: String,
    pub dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub fn texts(title: &str) -> Value {
    let one = |lang: &str| {
        json!({
            "title": format!("{title} ({lang})"),
            "what": "The websites you visit.",
            "how": "We pick ads from them.",
            "benefit": "Ads about things you like.",
            "who": "Only us.",
            "retention": "Six months."
        })
    };
    json!({ "en": one("en"), "es": one("es") })
}

pub fn notice(title: &str) -> Value {
    json!({ "texts": texts(title), "recipients": [{"name": "Acme", "role": "shows ads"}], "retention_days": 180 })
}

pub fn grant(subject: &str, purpose: &str, version: u32) -> Value {
    json!({ "subject": subject, "purpose": purpose, "version": version, "action": "grant", "method": "api" })
}

pub fn withdraw(subject: &str, purpose: &str) -> Value {
    json!({ "subject": subject, "purpose": purpose, "action": "withdraw", "method": "api" })
}

pub async fn open_service(dir: &std::path::Path, clock: Arc<ManualClock>) -> Arc<Assent<SqliteStore>> {
    let store = SqliteStore::open(&dir.join("assent.db"), SqliteOptions::default()).expect("open store");
    let keys = assent_service::signing::KeyRing::new(dir.join("keys"), "assent.test");
    Arc::new(Assent::open(store, clock, keys).await.expect("open service"))
}

/// Serves `service` over HTTP on 127.0.0.1 port 0, as `assent serve` would, and returns its URL.
pub async fn serve(service: Arc<Assent<SqliteStore>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(assent_http::serve(listener, assent_http::router(service), std::future::pending()));
    format!("http://{addr}")
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START));
    let service = open_service(dir.path(), clock.clone()).await;
    service.create_controller("acme", "Acme Broadband", &[], &["us-me-isp".into()]).await.expect("acme");
    service.create_controller("other", "Other Corp", &[], &[]).await.expect("other");
    let admin = service.create_api_key(&ControllerId::parse("acme").unwrap(), vec![Scope::Admin]).await.unwrap();
    let other_admin = service.create_api_key(&ControllerId::parse("other").unwrap(), vec![Scope::Admin]).await.unwrap();
    let base = serve(service.clone()).await;
    let app = TestApp { base, client: reqwest::Client::new(), service, clock, admin, other_admin, dir };

    for (key, prefix) in [(app.admin.clone(), ""), (app.other_admin.clone(), "other-")] {
        let cat = |personal: bool| json!({"personal": personal, "names": {"en": "Data", "es": "Datos"}});
        app.ok(Method::PUT, "/v1/data-categories/browsing-history", &key, cat(true)).await;
        app.ok(Method::PUT, "/v1/data-categories/network-stats", &key, cat(false)).await;
        let purposes = [
            ("ads", json!({"data_categories": ["browsing-history"], "targeted_advertising": true})),
            ("sharing", json!({"data_categories": ["browsing-history"], "sale_or_sharing": true})),
            ("analytics", json!({"model": "opt-out", "data_categories": ["network-stats"]})),
            ("service", json!({"model": "necessary", "data_categories": ["browsing-history"]})),
            ("short-lived", json!({"data_categories": ["browsing-history"], "max_age_days": 1})),
        ];
        for (id, body) in purposes {
            let id = format!("{prefix}{id}");
            app.ok(Method::PUT, &format!("/v1/purposes/{id}"), &key, body).await;
            app.ok(Method::POST, &format!("/v1/purposes/{id}/versions"), &key, notice(&id)).await;
        }
    }
    // `other` has a customer with a grant; acme must never see a trace of it.
    let r = app
        .call(Method::POST, "/v1/consents", Some(&app.other_admin.clone()), Some(grant("other-cust", "other-ads", 1)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app
}

impl TestApp {
    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut builder = self.client.request(method, format!("{}{uri}", self.base));
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder.body(body).send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp { status, headers, body }
    }

    pub async fn call(&self, method: Method, uri: &str, key: Option<&str>, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json")).unwrap_or_default();
        self.raw(method, uri, key, bytes, &[]).await
    }

    /// Calls and asserts a 2xx.
    pub async fn ok(&self, method: Method, uri: &str, key: &str, body: Value) -> Value {
        let body = if body.is_null() { None } else { Some(body) };
        let r = self.call(method.clone(), uri, Some(key), body).await;
        assert!(r.status.is_success(), "{method} {uri} -> {} {:?}", r.status, r.body);
        r.body
    }

    pub async fn get(&self, uri: &str, key: &str) -> Resp {
        self.call(Method::GET, uri, Some(key), None).await
    }

    pub async fn key(&self, scopes: &[Scope]) -> String {
        self.service.create_api_key(&ControllerId::parse("acme").unwrap(), scopes.to_vec()).await.expect("key")
    }

    pub async fn decision(&self, subject: &str, purpose: &str) -> Value {
        self.get(&format!("/v1/decisions?subject={subject}&purpose={purpose}"), &self.admin.clone()).await.body
    }

    /// Everything acme has written: ledger entries, subjects and stored states.
    pub async fn written(&self) -> (u64, usize, usize) {
        let id = ControllerId::parse("acme").unwrap();
        let store = self.service.store();
        (
            store.ledger_size(id.clone()).await.unwrap(),
            store.load_subjects(id.clone()).await.unwrap().len(),
            store.load_states(id).await.unwrap().len(),
        )
    }
}

pub fn assert_problem(r: &Resp, status: StatusCode) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.headers.get("content-type").map(|v| v.to_str().unwrap()), Some("application/problem+json"));
    assert_eq!(r.body["status"], status.as_u16());
    assert!(r.body["type"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(r.body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

pub fn error_fields(r: &Resp) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}
