//! The webhook sender against a real HTTP receiver started in process (axum on port 0), which
//! checks signatures with `verify` the way a customer's receiver would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assent_dispatch::signature::{WebhookSecret, verify};
use assent_dispatch::webhook::{DEFAULT_TIMEOUT, Outcome, WebhookSender};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;

const MSG_ID: &str = "msg_2Kx7Yqf3";
const TIMESTAMP: i64 = 1_767_225_600;
const BODY: &str = r#"{"type":"consent.granted","subject":"alice@example.com"}"#;

/// What the receiver saw in one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    signature_valid: bool,
}

struct Receiver {
    secret: WebhookSecret,
    calls: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// Answers 500 to the first request and 204 after, like a receiver that was briefly down;
/// 401 to any request whose signature does not verify.
async fn flaky(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let timestamp = text("webhook-timestamp").parse().unwrap_or(i64::MIN);
    let signature_valid = verify(&receiver.secret, &text("webhook-id"), timestamp, &body, &text("webhook-signature"));
    receiver.seen.lock().unwrap().push(Seen { headers: headers.clone(), signature_valid });
    if !signature_valid {
        return StatusCode::UNAUTHORIZED;
    }
    match receiver.calls.fetch_add(1, Ordering::SeqCst) {
        0 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::NO_CONTENT,
    }
}

/// Starts the receiver and returns its base URL.
async fn spawn_receiver(receiver: Arc<Receiver>) -> String {
    let app = Router::new()
        .route("/hook", post(flaky))
        .route("/gone", post(|| async { StatusCode::GONE }))
        .route("/moved", post(|| async { Redirect::temporary("/hook").into_response() }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn receiver() -> Arc<Receiver> {
    Arc::new(Receiver {
        secret: WebhookSecret::generate().unwrap(),
        calls: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    })
}

#[tokio::test]
async fn a_signed_webhook_refused_with_500_is_delivered_on_retry() {
    let receiver = receiver();
    let base = spawn_receiver(Arc::clone(&receiver)).await;
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();
    let url = format!("{base}/hook");

    let first = sender.send(&url, &receiver.secret, MSG_ID, TIMESTAMP, BODY.into()).await;
    let second = sender.send(&url, &receiver.secret, MSG_ID, TIMESTAMP, BODY.into()).await;

    assert_eq!(first, Outcome::Rejected { status: 500, retry: true });
    assert_eq!(second, Outcome::Delivered { status: 204 });
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for Seen { headers, signature_valid } in seen {
        assert!(signature_valid);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers["webhook-id"], MSG_ID);
        assert_eq!(headers["webhook-timestamp"], TIMESTAMP.to_string());
        assert!(headers["webhook-signature"].to_str().unwrap().starts_with("v1,"));
        assert_eq!(headers[header::USER_AGENT], concat!("Assent/", env!("CARGO_PKG_VERSION")));
    }
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_by_the_receiver() {
    let receiver = receiver();
    let base = spawn_receiver(Arc::clone(&receiver)).await;
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();
    let wrong = WebhookSecret::generate().unwrap();

    let outcome = sender.send(&format!("{base}/hook"), &wrong, MSG_ID, TIMESTAMP, BODY.into()).await;

    assert_eq!(outcome, Outcome::Rejected { status: 401, retry: true });
    assert!(!receiver.seen.lock().unwrap()[0].signature_valid);
}

#[tokio::test]
async fn gone_means_no_more_retries() {
    let receiver = receiver();
    let base = spawn_receiver(Arc::clone(&receiver)).await;
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();

    let outcome = sender.send(&format!("{base}/gone"), &receiver.secret, MSG_ID, TIMESTAMP, BODY.into()).await;

    assert_eq!(outcome, Outcome::Rejected { status: 410, retry: false });
    assert!(!outcome.should_retry());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = receiver();
    let base = spawn_receiver(Arc::clone(&receiver)).await;
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();

    let outcome = sender.send(&format!("{base}/moved"), &receiver.secret, MSG_ID, TIMESTAMP, BODY.into()).await;

    assert_eq!(outcome, Outcome::Rejected { status: 307, retry: true });
    assert!(receiver.seen.lock().unwrap().is_empty(), "the redirect target was called");
}

#[tokio::test]
async fn a_slow_receiver_times_out_as_a_failure() {
    let receiver = receiver();
    let base = spawn_receiver(Arc::clone(&receiver)).await;
    let sender = WebhookSender::new(Duration::from_millis(200)).unwrap();

    let outcome = sender.send(&format!("{base}/slow"), &receiver.secret, MSG_ID, TIMESTAMP, BODY.into()).await;

    let Outcome::Failed { error } = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(error.starts_with("timed out"), "{error}");
}

#[tokio::test]
async fn an_unreachable_receiver_fails_without_leaking_the_body_or_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=s3cr3t", listener.local_addr().unwrap());
    drop(listener);
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();

    let outcome = sender.send(&url, &WebhookSecret::generate().unwrap(), MSG_ID, TIMESTAMP, BODY.into()).await;

    let Outcome::Failed { error } = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(!error.contains("alice") && !error.contains("s3cr3t") && !error.contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn https_urls_go_through_tls() {
    // A plain-text peer on an https:// URL: reaching the TLS handshake proves TLS is linked (a
    // reqwest without TLS refuses the scheme before connecting) and that it verifies the peer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    });
    let sender = WebhookSender::new(DEFAULT_TIMEOUT).unwrap();

    let outcome = sender.send(&url, &WebhookSecret::generate().unwrap(), MSG_ID, TIMESTAMP, BODY.into()).await;

    let Outcome::Failed { error } = outcome else { panic!("expected a TLS failure, got {outcome:?}") };
    assert!(error.starts_with("could not connect"), "{error}");
}
