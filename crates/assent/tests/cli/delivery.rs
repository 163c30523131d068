//! Delivery to downstream systems, end to end: the real server, a real webhook receiver that
//! fails, goes down and comes back, and (when `ASSENT_TEST_NATS_URL` names one) a real NATS
//! JetStream server with a consumer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assent_dispatch::{WebhookSecret, verify};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::support::{Server, controller_with_admin_key, get_json, seed_catalog};

/// What a receiver keeps: every verified request, and how many it should still refuse.
pub(crate) struct Inbox {
    pub(crate) secret: Mutex<Option<WebhookSecret>>,
    pub(crate) refuse_next: Mutex<usize>,
    /// `(webhook-id, body)` of each accepted request, in arrival order.
    pub(crate) accepted: Mutex<Vec<(String, serde_json::Value)>>,
    pub(crate) attempts: Mutex<usize>,
}

impl Inbox {
    pub(crate) fn new(refuse_first: usize) -> Arc<Self> {
        Arc::new(Self {
            secret: Mutex::new(None),
            refuse_next: Mutex::new(refuse_first),
            accepted: Mutex::new(Vec::new()),
            attempts: Mutex::new(0),
        })
    }

    /// Each event's sequence numbers per customer, in first-arrival order, and how many
    /// distinct events arrived.
    pub(crate) fn by_subject(&self) -> (BTreeMap<String, Vec<u64>>, usize) {
        let mut arrived: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (webhook_id, body) in self.accepted.lock().unwrap().iter() {
            let data = &body["data"];
            assert_eq!(webhook_id, data["id"].as_str().unwrap(), "webhook-id is the event id");
            if seen.insert(webhook_id.clone()) {
                arrived
                    .entry(data["subject"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(data["seq"].as_u64().unwrap());
            }
        }
        (arrived, seen.len())
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *inbox.attempts.lock().unwrap() += 1;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let secret = inbox.secret.lock().unwrap().clone();
    let Some(secret) = secret else { return StatusCode::SERVICE_UNAVAILABLE };
    let timestamp: i64 = text("webhook-timestamp").parse().unwrap_or_default();
    if !verify(&secret, &text("webhook-id"), timestamp, &body, &text("webhook-signature")) {
        return StatusCode::UNAUTHORIZED;
    }
    {
        let mut refuse = inbox.refuse_next.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    inbox.accepted.lock().unwrap().push((text("webhook-id"), serde_json::from_slice(&body).unwrap()));
    StatusCode::NO_CONTENT
}

/// Serves `inbox` on `port` until the returned handle is aborted (then connections are refused).
pub(crate) async fn start_receiver(inbox: Arc<Inbox>, port: u16) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inbox);
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: serde_json::Value) -> serde_json::Value {
    let r = client.post(url).bearer_auth(key).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// A server for controller `id` with the seeded catalog, retrying failed deliveries within
/// milliseconds (and giving up after `give_up_seconds`, when set), that may deliver to this
/// machine's test receivers.
async fn server_with_fast_retries(id: &str, give_up_seconds: Option<&str>) -> (tempfile::TempDir, String, Server) {
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), id);
    let mut env = vec![
        ("ASSENT_DELIVERY_RETRY_BASE_MS", "30"),
        ("ASSENT_DELIVERY_RETRY_CAP_SECONDS", "1"),
        ("ASSENT_DELIVERY_ALLOW_PRIVATE_NETWORKS", "true"),
    ];
    if let Some(seconds) = give_up_seconds {
        env.push(("ASSENT_DELIVERY_GIVE_UP_SECONDS", seconds));
    }
    let server = Server::start_with_env(dir.path(), &env).await;
    seed_catalog(&server.base, &key).await;
    (dir, key, server)
}

#[tokio::test]
async fn a_webhook_gets_every_event_in_order_through_failures_and_an_outage() {
    let (_dir, key, server) = server_with_fast_retries("hooks", None).await;
    let client = reqwest::Client::new();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let inbox = Inbox::new(3);
    let mut receiver = start_receiver(Arc::clone(&inbox), port).await;
    let created = post(
        &client,
        &format!("{}/v1/webhooks", server.base),
        &key,
        serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook"), "purposes": ["ads"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    *inbox.secret.lock().unwrap() = Some(WebhookSecret::parse(secret).unwrap());
    let listed = get_json(&client, &format!("{}/v1/webhooks", server.base), Some(&key)).await;
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());
    assert!(listed.to_string().find("whsec_").is_none(), "a listing never shows the secret: {listed}");

    // Five customers change their minds back and forth; the receiver refuses the first three
    // attempts, and goes away entirely for a while in the middle.
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut record = async |i: usize| {
        let subject = format!("cust-{}", i % 5);
        let action = if (i / 5).is_multiple_of(2) { "grant" } else { "withdraw" };
        let out = post(
            &client,
            &format!("{}/v1/consents", server.base),
            &key,
            serde_json::json!({"subject": subject, "purpose": "ads", "version": 1, "action": action}),
        )
        .await;
        expected.entry(subject).or_default().push(out["seq"].as_u64().unwrap());
    };
    for i in 0..20 {
        record(i).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.accepted.lock().unwrap().len() < 10 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.abort();
    let _ = (&mut receiver).await;
    for i in 20..40 {
        record(i).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let while_down = get_json(&client, &format!("{}/v1/webhooks", server.base), Some(&key)).await;
    assert!(while_down["webhooks"][0]["pending"].as_u64().unwrap() > 0, "{while_down}");
    assert!(while_down["webhooks"][0]["last_error"].is_string(), "{while_down}");
    let _receiver = start_receiver(Arc::clone(&inbox), port).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids: std::collections::BTreeSet<String> =
            inbox.accepted.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        if ids.len() == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of 40 events arrived", ids.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(*inbox.attempts.lock().unwrap() > 40, "the refused attempts were retried");
    // Every event arrived, each subject's in the order they were recorded, none lost.
    for (_, body) in inbox.accepted.lock().unwrap().iter() {
        assert!(body["type"] == "consent.granted" || body["type"] == "consent.withdrawn", "{body}");
    }
    assert_eq!(inbox.by_subject(), (expected, 40));

    let after = get_json(&client, &format!("{}/v1/webhooks", server.base), Some(&key)).await;
    let hook = &after["webhooks"][0];
    assert_eq!(hook["pending"], 0, "{after}");
    assert_eq!(hook["dead_letters"], 0, "{after}");
    assert_eq!(hook["time_to_honor"]["sample"], 40, "{after}");
    assert!(hook["time_to_honor"]["max_ms"].as_i64().unwrap() >= 1000, "the outage shows in time to honor: {after}");
    let metrics =
        client.get(format!("{}/metrics", server.base)).bearer_auth(&key).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics
            .contains(&format!("assent_time_to_honor_seconds_count{{controller=\"hooks\",destination=\"{id}\"}} 40")),
        "{metrics}"
    );
    assert!(!metrics.contains("cust-"), "metrics name no customer");

    // Deleting the webhook stops deliveries to it.
    let r = client.delete(format!("{}/v1/webhooks/{id}", server.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = client.delete(format!("{}/v1/webhooks/{id}", server.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    server.stop();
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_a_receiver_that_never_answers_gets_dead_letters() {
    let (_dir, key, server) = server_with_fast_retries("dead", Some("1")).await;
    let client = reqwest::Client::new();
    for (body, field) in [
        (serde_json::json!({"url": "ftp://example.com/hook"}), "url"),
        (serde_json::json!({"url": "https://user:pw@example.com/hook"}), "url"),
        (serde_json::json!({"url": "https://example.com/hook", "purposes": ["nope"]}), "purposes[0]"),
    ] {
        let r = client.post(format!("{}/v1/webhooks", server.base)).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert!(problem.to_string().contains(field), "{problem}");
    }
    assert_eq!(
        get_json(&client, &format!("{}/v1/webhooks", server.base), Some(&key)).await["webhooks"],
        serde_json::json!([])
    );

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let created = post(
        &client,
        &format!("{}/v1/webhooks", server.base),
        &key,
        serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    for action in ["grant", "withdraw"] {
        post(
            &client,
            &format!("{}/v1/consents", server.base),
            &key,
            serde_json::json!({"subject": "gone", "purpose": "ads", "version": 1, "action": action}),
        )
        .await;
    }
    let url = format!("{}/v1/destinations/{id}/deliveries?status=dead", server.base);
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = get_json(&client, &url, Some(&key)).await;
        if dead["deliveries"].as_array().unwrap().len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "no dead letters: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for d in dead["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "dead");
        assert!(d["error"].is_string(), "{d}");
    }
    // The first was retried through the whole period; the second, queued behind it for as long,
    // had used its own period up by then and is given up on after one more try.
    let oldest = dead["deliveries"].as_array().unwrap().last().unwrap();
    assert!(oldest["attempts"].as_u64().unwrap() >= 2, "{oldest}");
    let listed = get_json(&client, &format!("{}/v1/destinations", server.base), Some(&key)).await;
    assert_eq!(listed["destinations"][0]["dead_letters"], 2, "{listed}");
    assert_eq!(listed["destinations"][0]["pending"], 0, "{listed}");
    let bad = client
        .get(format!("{}/v1/destinations/{id}/deliveries?status=lost", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    server.stop();
}

#[tokio::test]
async fn a_nats_consumer_sees_each_event_once_even_after_the_dispatcher_starts_over() {
    let Ok(nats_url) = std::env::var("ASSENT_TEST_NATS_URL") else {
        eprintln!("a_nats_consumer_sees_each_event_once…: not run: ASSENT_TEST_NATS_URL is not set");
        return;
    };
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).unwrap();
    let controller = format!("nats{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), &controller);
    let env = [("ASSENT_NATS_URL", nats_url.as_str())];
    let server = Server::start_with_env(dir.path(), &env).await;
    seed_catalog(&server.base, &key).await;
    let client = reqwest::Client::new();
    // The dispatcher registers the NATS destination for each controller when it starts.
    let destinations_url = format!("{}/v1/destinations", server.base);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&client, &destinations_url, Some(&key)).await["destinations"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no NATS destination");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        post(
            &client,
            &format!("{}/v1/consents", server.base),
            &key,
            serde_json::json!({"subject": format!("n{}", i % 4), "purpose": "ads", "version": 1,
                               "action": if i % 3 == 0 { "withdraw" } else { "grant" }}),
        )
        .await;
    }
    let wait_delivered = async |base: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let d = get_json(&client, &format!("{base}/v1/destinations"), Some(&key)).await;
            if d["destinations"][0]["pending"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "NATS deliveries stalled: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_delivered(&server.base).await;
    server.stop();

    // The dispatcher starts over from the first event, as after a crash between publishing and
    // recording it: JetStream drops every repeat by its Nats-Msg-Id.
    let db = rusqlite::Connection::open(dir.path().join("assent.db")).unwrap();
    let reset = db.execute("UPDATE destinations SET cursor = 0 WHERE kind = 'nats'", []).unwrap();
    assert_eq!(reset, 1);
    drop(db);
    let server = Server::start_with_env(dir.path(), &env).await;
    wait_delivered(&server.base).await;

    let nats = assent_dispatch::NatsClient::connect(&nats_url).await.unwrap();
    nats.create_consumer("ASSENT", &controller, &format!("assent.{controller}.>")).await.unwrap();
    let mut messages = Vec::new();
    loop {
        let batch = nats.fetch("ASSENT", &controller, 100, Duration::from_millis(500)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            nats.ack(m).await.unwrap();
        }
        messages.extend(batch);
    }
    assert_eq!(messages.len(), 20, "each event once, though published twice");
    let mut last_seq = 0;
    for m in &messages {
        assert_eq!(m.subject, format!("assent.{controller}.consent.ads"));
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let seq = body["data"]["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "in ledger order");
        last_seq = seq;
        assert_eq!(m.header("Nats-Msg-Id"), body["data"]["id"].as_str());
        // The consumer confirms it applied the event: that closes its time to honor.
        let ack_url = format!("{}/v1/deliveries/{}/ack", server.base, body["data"]["delivery_id"].as_str().unwrap());
        let first = post(&client, &ack_url, &key, serde_json::json!({})).await;
        assert_eq!(first["status"], "acknowledged");
        let again = post(&client, &ack_url, &key, serde_json::json!({})).await;
        assert_eq!(again["acked_at"], first["acked_at"], "a second confirmation keeps the first time");
    }
    let d = get_json(&client, &format!("{}/v1/destinations", server.base), Some(&key)).await;
    assert_eq!(d["destinations"][0]["time_to_honor"]["sample"], 20, "{d}");
    assert_eq!(d["destinations"][0]["awaiting_confirmation"], 0, "{d}");
    let missing = client
        .post(format!("{}/v1/deliveries/nats_{controller}:99999/ack", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop();
}
