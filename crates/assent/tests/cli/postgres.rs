//! The binary on PostgreSQL (`--database-url postgres://…`): run when `ASSENT_TEST_DATABASE_URL`
//! names a server (`.ci/run` sets it), each run in a fresh schema dropped afterwards.

use std::process::Command;

use crate::support::{Server, get_json, seed_catalog, stderr, stdout};

struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A fresh runtime: drop may run while the test's own runtime is shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
                }
            });
        })
        .join();
    }
}

fn run(args: &[&str], data_dir: &std::path::Path, schema: &Schema) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("ASSENT_DATABASE_URL", &schema.url)
        .env("ASSENT_DATABASE_SCHEMA", &schema.name)
        .output()
        .expect("run assent")
}

/// A fresh schema on the test server, or `None` (with a line saying so) when none is configured.
fn fresh_schema(test: &str) -> Option<Schema> {
    let Ok(url) = std::env::var("ASSENT_TEST_DATABASE_URL") else {
        eprintln!("{test}: not run: ASSENT_TEST_DATABASE_URL is not set");
        return None;
    };
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!("assent_cli_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Some(Schema { url, name })
}

/// Creates controller `id` with an admin key in `schema`; returns the key.
fn controller_on(schema: &Schema, dir: &std::path::Path, id: &str) -> String {
    let o = run(&["controllers", "create", id, "--name", "PG Co", "--profile", "us-me-isp"], dir, schema);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["keys", "create", "--controller", id, "--scope", "admin"], dir, schema);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

impl Schema {
    fn env(&self) -> [(&str, &str); 2] {
        [("ASSENT_DATABASE_URL", self.url.as_str()), ("ASSENT_DATABASE_SCHEMA", self.name.as_str())]
    }
}

#[tokio::test]
async fn the_server_runs_on_postgres_and_keeps_what_it_acknowledged_across_a_restart() {
    let Some(schema) = fresh_schema("the_server_runs_on_postgres…") else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = controller_on(&schema, dir.path(), "pg");
    let env = schema.env();
    let server = Server::start_with_env(dir.path(), &env).await;
    seed_catalog(&server.base, &key).await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let r = client
            .post(format!("{}/v1/consents", server.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"subject": format!("c{i}"), "purpose": "ads", "version": 1, "action": "grant"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    server.stop();

    let server = Server::start_with_env(dir.path(), &env).await;
    for i in 0..20 {
        let d: serde_json::Value =
            get_json(&client, &format!("{}/v1/decisions?subject=c{i}&purpose=ads", server.base), Some(&key)).await;
        assert_eq!(d, serde_json::json!({"allowed": true, "reason": "granted"}));
    }
    let note = client.get(format!("{}/v1/ledger/checkpoint?controller=pg", server.base)).send().await.unwrap();
    assert_eq!(note.status(), 200);
    // One notice and twenty grants.
    assert_eq!(note.text().await.unwrap().lines().nth(1), Some("21"));
    server.stop();
    // The offline audit works on PostgreSQL too: entries, Merkle tree, checkpoints, state.
    let o = run(&["verify"], dir.path(), &schema);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok: controller `pg`: 21 entries"), "{}", stdout(&o));
}

/// The multi-node tests start several servers each; run them one at a time so their timings
/// measure the feed, not each other.
static NODES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn decision(client: &reqwest::Client, base: &str, key: &str, subject: &str) -> Option<String> {
    let r =
        client.get(format!("{base}/v1/decisions?subject={subject}&purpose=ads")).bearer_auth(key).send().await.ok()?;
    let body: serde_json::Value = r.json().await.ok()?;
    body["reason"].as_str().map(str::to_owned)
}

/// Posts one choice with an idempotency key, to the first node that answers, starting with
/// `first`: a node killed mid-request may or may not have committed it, and the key makes the
/// retry either replay it or record it, never twice. Returns the `seq` acknowledged.
async fn record_somewhere(
    client: &reqwest::Client,
    bases: &std::sync::RwLock<Vec<String>>,
    first: usize,
    key: &str,
    body: serde_json::Value,
    idempotency: &str,
) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for attempt in 0.. {
        let base = {
            let bases = bases.read().unwrap();
            bases[(first + attempt) % bases.len()].clone()
        };
        let sent = client
            .post(format!("{base}/v1/consents"))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency)
            .json(&body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = sent {
            let status = r.status();
            if status.as_u16() == 201 || status.as_u16() == 200 {
                let out: serde_json::Value = r.json().await.unwrap();
                return out["seq"].as_u64().unwrap();
            }
            assert!(status.is_server_error() || status.as_u16() == 409, "{status}: {}", r.text().await.unwrap());
        }
        assert!(std::time::Instant::now() < deadline, "no node took the write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn three_nodes_share_one_database_through_a_node_crash() {
    let Some(schema) = fresh_schema("three_nodes_share_one_database…") else { return };
    let _one_at_a_time = NODES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = controller_on(&schema, dir.path(), "multi");
    let env = schema.env();
    let mut nodes = vec![
        Server::start_with_env(dir.path(), &env).await,
        Server::start_with_env(dir.path(), &env).await,
        Server::start_with_env(dir.path(), &env).await,
    ];
    let bases = std::sync::Arc::new(std::sync::RwLock::new(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>()));
    // The catalog is written on one node and reaches the others through the feed.
    seed_catalog(&nodes[0].base, &key).await;
    let client = reqwest::Client::new();
    for node in &nodes[1..] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while decision(&client, &node.base, &key, "nobody").await.as_deref() != Some("not_asked") {
            assert!(std::time::Instant::now() < deadline, "the catalog did not reach {}", node.base);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    // Six writers, two per node, each on customers of its own: a grant each, then a
    // withdrawal for every third.
    const PER_WRITER: usize = 80;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..6usize {
        let (client, bases, key) = (client.clone(), std::sync::Arc::clone(&bases), key.clone());
        let progress = std::sync::Arc::clone(&progress);
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_WRITER {
                let subject = format!("w{w}-{i}");
                let grant = serde_json::json!({"subject": subject, "purpose": "ads", "version": 1, "action": "grant"});
                acked.push(record_somewhere(&client, &bases, w % 3, &key, grant, &format!("{subject}-g")).await);
                if i % 3 == 0 {
                    let withdraw = serde_json::json!({"subject": subject, "purpose": "ads", "action": "withdraw"});
                    acked.push(record_somewhere(&client, &bases, w % 3, &key, withdraw, &format!("{subject}-w")).await);
                }
                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            acked
        }));
    }
    // Meanwhile the same new customers are created on two nodes at once: one node stores the
    // customer first, the other adopts that record and records its event for the same person.
    let mut racing = Vec::new();
    for i in 0..15 {
        for node in 0..2usize {
            let (client, bases, key) = (client.clone(), std::sync::Arc::clone(&bases), key.clone());
            racing.push(tokio::spawn(async move {
                let body = serde_json::json!({"subject": format!("both-{i}"), "purpose": "ads", "version": 1, "action": "grant"});
                record_somewhere(&client, &bases, node, &key, body, &format!("both-{i}-{node}")).await
            }));
        }
    }
    // Kill a node mid-run, without warning, and bring it back while the writers go on.
    while progress.load(std::sync::atomic::Ordering::Relaxed) < 6 * PER_WRITER / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    nodes.pop().unwrap().kill_9();
    let at_kill = progress.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let restarted = Server::start_with_env(dir.path(), &env).await;
    bases.write().unwrap()[2] = restarted.base.clone();
    nodes.push(restarted);
    let at_restart = progress.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("node killed after {at_kill} of {} customers, back after {at_restart}", 6 * PER_WRITER);
    // The restarted node takes writes of its own, whether or not the writers are still going.
    let mut after_restart = Vec::new();
    for i in 0..10 {
        let body =
            serde_json::json!({"subject": format!("back-{i}"), "purpose": "ads", "version": 1, "action": "grant"});
        after_restart.push(record_somewhere(&client, &bases, 2, &key, body, &format!("back-{i}")).await);
    }

    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    for r in racing {
        acked.push(r.await.unwrap());
    }
    acked.extend(after_restart);
    let expected_events = 6 * PER_WRITER + 6 * PER_WRITER.div_ceil(3) + 30 + 10;
    assert_eq!(acked.len(), expected_events);
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), expected_events, "two acknowledgements named the same entry");

    // Every node answers the same, right, decision for every customer.
    let mut expect: Vec<(String, &str)> = Vec::new();
    for w in 0..6 {
        for i in 0..PER_WRITER {
            expect.push((format!("w{w}-{i}"), if i % 3 == 0 { "withdrawn" } else { "granted" }));
        }
    }
    for i in 0..15 {
        expect.push((format!("both-{i}"), "granted"));
    }
    for i in 0..10 {
        expect.push((format!("back-{i}"), "granted"));
    }
    for node in &nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for (subject, reason) in &expect {
            loop {
                let got = decision(&client, &node.base, &key, subject).await;
                if got.as_deref() == Some(*reason) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{}: {subject} is {got:?}, not {reason}", node.base);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    // Exactly once: each customer's history holds each of their events once, whichever node
    // took it and however often it was retried.
    for (subject, reason) in &expect {
        let history = get_json(&client, &format!("{}/v1/subjects/{subject}/history", nodes[1].base), Some(&key)).await;
        let events = history["events"].as_array().map(Vec::len).unwrap_or_default();
        let want = if subject.starts_with("both-") || *reason == "withdrawn" { 2 } else { 1 };
        assert_eq!(events, want, "{subject}: {history}");
    }
    // The ledger holds the notice and exactly the acknowledged events, gapless.
    let size = acked.len() as u64 + 1;
    assert_eq!(acked.first(), Some(&1));
    assert_eq!(acked.last(), Some(&(size - 1)));
    for node in nodes {
        node.stop();
    }
    let o = run(&["verify"], dir.path(), &schema);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("ok: controller `multi`: {size} entries")), "{}", stdout(&o));
}

#[tokio::test]
async fn a_write_on_one_node_is_visible_on_another_within_100_ms_at_the_99th_percentile() {
    let Some(schema) = fresh_schema("a_write_on_one_node_is_visible…") else { return };
    let _one_at_a_time = NODES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = controller_on(&schema, dir.path(), "seen");
    let env = schema.env();
    let (a, b) = (Server::start_with_env(dir.path(), &env).await, Server::start_with_env(dir.path(), &env).await);
    seed_catalog(&a.base, &key).await;
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while decision(&client, &b.base, &key, "nobody").await.as_deref() != Some("not_asked") {
        assert!(std::time::Instant::now() < deadline, "the catalog did not reach the second node");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut latencies = Vec::new();
    for i in 0..200 {
        let subject = format!("v{i}");
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let r = client
            .post(format!("{}/v1/consents", writer.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"subject": subject, "purpose": "ads", "version": 1, "action": "grant"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let acknowledged = std::time::Instant::now();
        // Read-your-writes on the node that took it: no waiting at all.
        assert_eq!(decision(&client, &writer.base, &key, &subject).await.as_deref(), Some("granted"));
        loop {
            if decision(&client, &reader.base, &key, &subject).await.as_deref() == Some("granted") {
                break;
            }
            assert!(
                acknowledged.elapsed() < std::time::Duration::from_secs(5),
                "{subject} never reached the other node"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        latencies.push(acknowledged.elapsed());
    }
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    eprintln!("visibility on the other node after the 201: p50 {p50:?}, p99 {p99:?}, max {:?}", latencies.last());
    assert!(p99 < std::time::Duration::from_millis(100), "p99 {p99:?}");
    a.stop();
    b.stop();
}

#[tokio::test]
async fn deliveries_go_on_when_the_dispatching_node_dies() {
    let Some(schema) = fresh_schema("deliveries_go_on_when_the_dispatching_node_dies") else { return };
    let _one_at_a_time = NODES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = controller_on(&schema, dir.path(), "relay");
    let [url, name] = schema.env();
    let env = [url, name, ("ASSENT_DELIVERY_ALLOW_PRIVATE_NETWORKS", "true")];
    let first = Server::start_with_env(dir.path(), &env).await;
    // The first node takes the dispatcher lease; the second waits for it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = Server::start_with_env(dir.path(), &env).await;
    seed_catalog(&first.base, &key).await;
    let client = reqwest::Client::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let inbox = crate::delivery::Inbox::new(0);
    let _receiver = crate::delivery::start_receiver(std::sync::Arc::clone(&inbox), port).await;
    let r = client
        .post(format!("{}/v1/webhooks", second.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    *inbox.secret.lock().unwrap() =
        Some(assent_dispatch::WebhookSecret::parse(created["secret"].as_str().unwrap()).unwrap());

    let mut expected: std::collections::BTreeMap<String, Vec<u64>> = std::collections::BTreeMap::new();
    let mut write = async |base: &str, i: usize| {
        let subject = format!("r{}", i % 3);
        let action = if i.is_multiple_of(2) { "grant" } else { "withdraw" };
        let r = client
            .post(format!("{base}/v1/consents"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"subject": subject, "purpose": "ads", "version": 1, "action": action}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let out: serde_json::Value = r.json().await.unwrap();
        expected.entry(subject).or_default().push(out["seq"].as_u64().unwrap());
    };
    for i in 0..10 {
        write(if i % 2 == 0 { &first.base } else { &second.base }, i).await;
    }
    let wait_for = |n: usize| {
        let inbox = std::sync::Arc::clone(&inbox);
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while inbox.by_subject().1 < n {
                assert!(std::time::Instant::now() < deadline, "only {} of {n} arrived", inbox.by_subject().1);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(10).await;
    // The node holding the lease dies; its session, and the lease, go with it.
    first.kill_9();
    for i in 10..20 {
        write(&second.base, i).await;
    }
    wait_for(20).await;
    assert_eq!(inbox.by_subject(), (expected, 20), "every event once, in order per customer, across the failover");
    second.stop();
}

#[tokio::test]
async fn an_erasure_on_one_node_reaches_the_others_and_a_returning_customer_starts_afresh() {
    let Some(schema) = fresh_schema("an_erasure_on_one_node_reaches_the_others…") else { return };
    let _one_at_a_time = NODES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = controller_on(&schema, dir.path(), "forget");
    let env = schema.env();
    let (a, b) = (Server::start_with_env(dir.path(), &env).await, Server::start_with_env(dir.path(), &env).await);
    seed_catalog(&a.base, &key).await;
    let client = reqwest::Client::new();
    let send = async |method: reqwest::Method, url: String, body: Option<serde_json::Value>| {
        let request = client.request(method, url).bearer_auth(&key);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    };
    // A second purpose, published on node A.
    let t = serde_json::json!({"title": "News", "what": "Your email", "how": "Send news", "benefit": "Offers first", "who": "Us", "retention": "1 year"});
    let r = send(
        reqwest::Method::PUT,
        format!("{}/v1/purposes/news", a.base),
        Some(serde_json::json!({"data_categories": ["sites"]})),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    let notice = serde_json::json!({"texts": {"en": t, "es": t}, "retention_days": 365, "recipients": [{"name": "Us", "role": "sends it"}]});
    let r = send(reqwest::Method::POST, format!("{}/v1/purposes/news/versions", a.base), Some(notice)).await;
    assert_eq!(r.status(), 201);
    let grant = |subject: &str, purpose: &str| serde_json::json!({"subject": subject, "purpose": purpose, "version": 1, "action": "grant"});
    let until = async |base: &str, subject: &str, purpose: &str, want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let url = format!("{base}/v1/decisions?subject={subject}&purpose={purpose}");
            let got = get_json(&client, &url, Some(&key)).await["reason"].as_str().unwrap_or_default().to_owned();
            if got == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{base}: {subject}/{purpose} is {got}, not {want}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    for purpose in ["ads", "news"] {
        assert_eq!(
            send(reqwest::Method::POST, format!("{}/v1/consents", a.base), Some(grant("x", purpose))).await.status(),
            201
        );
    }
    until(&b.base, "x", "news", "granted").await;

    // Erased on A, then back on A with one purpose only: B forgets the old record entirely.
    assert_eq!(send(reqwest::Method::DELETE, format!("{}/v1/subjects/x", a.base), None).await.status(), 200);
    assert_eq!(
        send(reqwest::Method::POST, format!("{}/v1/consents", a.base), Some(grant("x", "ads"))).await.status(),
        201
    );
    until(&b.base, "x", "ads", "granted").await;
    until(&b.base, "x", "news", "not_asked").await;
    until(&a.base, "x", "news", "not_asked").await;

    // A customer created on A a moment ago can be erased through B at once: B's 404 would mean
    // no one to erase, not that it had not heard of them yet.
    assert_eq!(
        send(reqwest::Method::POST, format!("{}/v1/consents", a.base), Some(grant("y", "ads"))).await.status(),
        201
    );
    assert_eq!(send(reqwest::Method::DELETE, format!("{}/v1/subjects/y", b.base), None).await.status(), 200);
    until(&a.base, "y", "ads", "not_asked").await;
    assert_eq!(send(reqwest::Method::DELETE, format!("{}/v1/subjects/y", a.base), None).await.status(), 404);

    // Every node's LISTEN session is cut off; what is written meanwhile still reaches them, by
    // the resync after they reconnect (and the re-check of a quiet feed).
    let (admin, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN assent_%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(cut.len() >= 2, "both nodes' feeds were found");
    assert_eq!(
        send(reqwest::Method::POST, format!("{}/v1/consents", a.base), Some(grant("z", "news"))).await.status(),
        201
    );
    until(&b.base, "z", "news", "granted").await;
    a.stop();
    b.stop();
}
