//! The NATS client against a real nats-server with JetStream. These tests run only when
//! `ASSENT_TEST_NATS_URL` names one (e.g. `nats://127.0.0.1:4222`); each uses its own stream and
//! subjects and deletes the stream afterwards, even when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use assent_dispatch::nats::{NatsClient, NatsError};

const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

fn nats_url(test: &str) -> Option<String> {
    match std::env::var("ASSENT_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped {test}: ASSENT_TEST_NATS_URL is not set; set it to a NATS server with JetStream \
                 (e.g. nats://127.0.0.1:4222) to run it"
            );
            None
        }
    }
}

/// A stream and subject space no other test run uses.
#[derive(Clone)]
struct Names {
    stream: String,
    /// Messages go to `<prefix>.<something>`; the stream captures `<prefix>.>`.
    prefix: String,
}

impl Names {
    fn new() -> Self {
        let suffix = format!("{:016x}", getrandom::u64().unwrap());
        // Outside `assent.>`, which the server's own `ASSENT` stream captures (subjects of two
        // streams may not overlap).
        Self { stream: format!("ASSENT_TEST_{suffix}"), prefix: format!("assent_dispatch_test.{suffix}") }
    }

    fn subject(&self, leaf: &str) -> String {
        format!("{}.{leaf}", self.prefix)
    }

    fn wildcard(&self) -> String {
        format!("{}.>", self.prefix)
    }
}

/// Runs `body` with a connected client and a fresh stream, then deletes the stream whether or
/// not `body` panicked, and re-raises its panic.
async fn with_stream<F, Fut>(url: &str, body: F)
where
    F: FnOnce(Arc<NatsClient>, Names) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = Arc::new(NatsClient::connect(url).await.unwrap());
    let names = Names::new();
    client.ensure_stream(&names.stream, &[&names.wildcard()], DUPLICATE_WINDOW).await.unwrap();
    let outcome = tokio::spawn(body(Arc::clone(&client), names.clone())).await;
    client.delete_stream(&names.stream).await.unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn a_republished_message_id_is_stored_once_even_from_a_restarted_client() {
    let Some(url) = nats_url("a_republished_message_id_is_stored_once_even_from_a_restarted_client") else {
        return;
    };
    let fresh_url = url.clone();
    with_stream(&url, |client, names| async move {
        let subject = names.subject("events");
        let ids = ["evt-1", "evt-2", "evt-3"];

        for (index, id) in ids.iter().enumerate() {
            let ack = client.publish(&subject, id, format!("payload {id}").as_bytes()).await.unwrap();
            assert_eq!(ack.stream, names.stream);
            assert_eq!(ack.seq, index as u64 + 1);
            assert!(!ack.duplicate, "{id} is new");
        }

        let again = client.publish(&subject, "evt-2", b"payload evt-2").await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.seq, 2, "a duplicate reports the original's sequence");
        assert_eq!(client.stream_info(&names.stream).await.unwrap().unwrap().messages, 3);

        // A new connection stands for a dispatcher restarted after a crash between publishing
        // and marking its outbox rows sent.
        let restarted = NatsClient::connect(&fresh_url).await.unwrap();
        for id in ids {
            let ack = restarted.publish(&subject, id, format!("payload {id}").as_bytes()).await.unwrap();
            assert!(ack.duplicate, "{id} is a duplicate");
        }
        let info = client.stream_info(&names.stream).await.unwrap().unwrap();
        assert_eq!((info.messages, info.last_seq), (3, 3));
    })
    .await;
}

#[tokio::test]
async fn a_pull_consumer_sees_each_message_once_in_order_with_its_id() {
    let Some(url) = nats_url("a_pull_consumer_sees_each_message_once_in_order_with_its_id") else {
        return;
    };
    with_stream(&url, |client, names| async move {
        for id in ["evt-1", "evt-2", "evt-3"] {
            client.publish(&names.subject(id), id, format!("{{\"id\":\"{id}\"}}").as_bytes()).await.unwrap();
        }
        client.create_consumer(&names.stream, "reader", &names.wildcard()).await.unwrap();

        let messages = client.fetch(&names.stream, "reader", 10, Duration::from_millis(500)).await.unwrap();

        let seen: Vec<_> = messages.iter().map(|m| (m.subject.clone(), m.header("nats-msg-id").unwrap())).collect();
        assert_eq!(
            seen,
            vec![
                (names.subject("evt-1"), "evt-1"),
                (names.subject("evt-2"), "evt-2"),
                (names.subject("evt-3"), "evt-3"),
            ]
        );
        assert_eq!(messages[0].payload, br#"{"id":"evt-1"}"#);
        for message in &messages {
            client.ack(message).await.unwrap();
        }
        let waited = client.fetch(&names.stream, "reader", 10, Duration::from_millis(300)).await.unwrap();
        assert!(waited.is_empty(), "acknowledged messages came back: {waited:?}");
        let no_wait = client.fetch(&names.stream, "reader", 10, Duration::ZERO).await.unwrap();
        assert!(no_wait.is_empty(), "acknowledged messages came back: {no_wait:?}");
    })
    .await;
}

#[tokio::test]
async fn fetching_from_a_missing_consumer_names_it() {
    let Some(url) = nats_url("fetching_from_a_missing_consumer_names_it") else {
        return;
    };
    let quick_url = url.clone();
    with_stream(&url, |_, names| async move {
        // The server does not answer such a pull, so the client waits for its request timeout.
        let client = NatsClient::connect_with_timeout(&quick_url, Duration::from_millis(500)).await.unwrap();

        let error = client.fetch(&names.stream, "nobody", 1, Duration::ZERO).await.unwrap_err();

        assert!(matches!(error, NatsError::NoConsumer { .. }), "{error:?}");
        assert!(error.to_string().contains("`nobody`"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn ensure_stream_keeps_an_existing_stream_and_updates_its_subjects() {
    let Some(url) = nats_url("ensure_stream_keeps_an_existing_stream_and_updates_its_subjects") else {
        return;
    };
    with_stream(&url, |client, names| async move {
        client.publish(&names.subject("kept"), "kept-1", b"{}").await.unwrap();

        let same = client.ensure_stream(&names.stream, &[&names.wildcard()], DUPLICATE_WINDOW).await.unwrap();
        assert_eq!((same.messages, same.duplicate_window), (1, DUPLICATE_WINDOW));

        // Subjects of one stream may not overlap, hence a sibling of the prefix.
        let sibling = format!("{}x.>", names.prefix);
        let updated = client.ensure_stream(&names.stream, &[&names.wildcard(), &sibling], DUPLICATE_WINDOW).await;
        let updated = updated.unwrap();
        assert_eq!(updated.subjects, vec![names.wildcard(), sibling]);
        assert_eq!(updated.messages, 1, "an update keeps the messages");
    })
    .await;
}

#[tokio::test]
async fn publishing_where_no_stream_listens_says_so() {
    let Some(url) = nats_url("publishing_where_no_stream_listens_says_so") else {
        return;
    };
    let client = NatsClient::connect(&url).await.unwrap();
    let subject = Names::new().subject("nowhere");

    let error = client.publish(&subject, "evt-1", b"{}").await.unwrap_err();

    assert!(matches!(error, NatsError::NoStream(_)), "{error:?}");
    assert_eq!(error.to_string(), format!("no JetStream stream captures subject `{subject}`"));
}

#[tokio::test]
async fn connecting_to_a_closed_port_names_the_url() {
    // Needs no server: a port just released by the OS has nothing listening.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    drop(listener);

    let error = NatsClient::connect(&url).await.unwrap_err();

    assert!(matches!(error, NatsError::Connect { .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("cannot connect to NATS at `{url}`"));
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.to_lowercase().contains("refused"), "{cause}");
}

#[tokio::test]
async fn connecting_to_something_that_is_not_nats_fails_the_handshake() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
    });

    let error = NatsClient::connect(&url).await.unwrap_err();

    assert!(matches!(error, NatsError::Handshake { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn replies_split_across_reads_are_reassembled_and_a_dropped_connection_fails_fast() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    // A scripted server that sends everything a few bytes at a time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        let mut dribble = async |bytes: &[u8]| {
            for chunk in bytes.chunks(3) {
                write.write_all(chunk).await.unwrap();
                write.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        };
        dribble(b"INFO {\"server_id\":\"fake\",\"headers\":true,\"max_payload\":1048576}\r\n").await;
        let mut line = String::new();
        while !line.starts_with("PING") {
            line.clear();
            read.read_line(&mut line).await.unwrap();
        }
        dribble(b"PING\r\nPONG\r\n").await;
        // The SUB for the inbox, then the client's answer to our PING, then the HPUB.
        let mut hpub = String::new();
        while !hpub.starts_with("HPUB") {
            hpub.clear();
            read.read_line(&mut hpub).await.unwrap();
        }
        let fields: Vec<&str> = hpub.split_whitespace().collect();
        let (reply, total): (&str, usize) = (fields[2], fields[4].parse().unwrap());
        let mut body = vec![0; total + 2];
        read.read_exact(&mut body).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("Nats-Msg-Id: evt-1\r\n"));
        let ack = br#"{"stream":"FAKE","seq":7}"#;
        dribble(format!("MSG {reply} 1 {}\r\n", ack.len()).as_bytes()).await;
        dribble(ack).await;
        dribble(b"\r\n").await;
        // Closing the socket ends the scripted session.
    });

    let client = NatsClient::connect(&url).await.unwrap();
    let ack = client.publish("fake.subject", "evt-1", b"{}").await.unwrap();
    server.await.unwrap();

    assert_eq!((ack.stream.as_str(), ack.seq, ack.duplicate), ("FAKE", 7, false));
    let started = std::time::Instant::now();
    while !client.is_closed() && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = client.publish("fake.subject", "evt-2", b"{}").await.unwrap_err();
    assert!(matches!(error, NatsError::Closed(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "a closed connection should fail at once");
}
