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

#[tokio::test]
async fn the_server_runs_on_postgres_and_keeps_what_it_acknowledged_across_a_restart() {
    let Ok(url) = std::env::var("ASSENT_TEST_DATABASE_URL") else {
        eprintln!("the_server_runs_on_postgres…: not run: ASSENT_TEST_DATABASE_URL is not set");
        return;
    };
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!("assent_cli_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let schema = Schema { url, name };
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["controllers", "create", "pg", "--name", "PG Co", "--profile", "us-me-isp"], dir.path(), &schema);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["keys", "create", "--controller", "pg", "--scope", "admin"], dir.path(), &schema);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = stdout(&o);

    let env = [("ASSENT_DATABASE_URL", schema.url.as_str()), ("ASSENT_DATABASE_SCHEMA", schema.name.as_str())];
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
