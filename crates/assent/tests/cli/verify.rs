//! `assent verify` and `assent receipt verify` on real data, and tampering each detects.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

/// A data dir with a catalog, 40 events, two checkpoints and one receipt; the server stopped.
async fn ledger_with_history() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), "audit");
    let server = Server::start(dir.path()).await;
    let client = reqwest::Client::new();
    let call = |method: &str, path: &str, body: Value| {
        client.request(method.parse().unwrap(), format!("{}{path}", server.base)).bearer_auth(&key).json(&body).send()
    };
    seed_catalog(&server.base, &key).await;
    for i in 0..30 {
        let r = call("POST", "/v1/consents", json!({"subject": format!("c{}", i % 9), "purpose": "ads", "version": 1, "action": if i % 3 == 2 { "withdraw" } else { "grant" }})).await.unwrap();
        assert!(r.status().is_success());
    }
    call("POST", "/v1/ledger/checkpoint", json!(null)).await.unwrap();
    for i in 0..9 {
        call(
            "POST",
            "/v1/consents",
            json!({"subject": format!("c{i}"), "purpose": "ads", "version": 1, "action": "grant"}),
        )
        .await
        .unwrap();
    }
    call("DELETE", "/v1/subjects/c8", json!(null)).await.unwrap();
    call("POST", "/v1/ledger/checkpoint", json!(null)).await.unwrap();
    let receipt: Value = get_json(&client, &format!("{}/v1/subjects/c1/receipts/2", server.base), Some(&key)).await;
    let public_key = get_text(&client, &format!("{}/v1/ledger/public-key?controller=audit", server.base)).await;
    server.stop();
    std::fs::write(dir.path().join("receipt.json"), receipt.to_string()).unwrap();
    (dir, public_key.trim().to_owned(), receipt["receipt"].as_str().unwrap().to_owned())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn verify(dir: &Path) -> (bool, String, String) {
    let o = assent(&["verify"], dir);
    (o.status.success(), stdout(&o), stderr(&o))
}

/// Applies `sql` to a copy of `dir` and returns what `assent verify` says about it.
fn tampered(dir: &Path, sql: &str) -> String {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let db = rusqlite::Connection::open(copy.path().join("assent.db")).unwrap();
    db.execute_batch(sql).unwrap();
    drop(db);
    let (ok, out, err) = verify(copy.path());
    assert!(!ok, "tampering `{sql}` went unnoticed: {out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_ledger_verifies_and_each_kind_of_tampering_is_named() {
    let (dir, _, _) = ledger_with_history().await;
    let (ok, out, err) = verify(dir.path());
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("ok: controller `audit`: 41 entries, 2 checkpoints, 8 subjects"), "{out}");

    // One byte of one stored event.
    let err = tampered(
        dir.path(),
        "UPDATE ledger SET bytes = CAST(replace(CAST(bytes AS TEXT), 'grant', 'grent') AS BLOB) WHERE seq = 5",
    );
    assert!(err.contains("entry 5") && err.contains("leaf hash"), "{err}");
    // One byte, with the leaf hash recomputed to match: the tree and checkpoints catch it.
    let err = tampered(
        dir.path(),
        "UPDATE ledger SET bytes = CAST(replace(CAST(bytes AS TEXT), 'grant', 'grent') AS BLOB) WHERE seq = 6;
         UPDATE ledger SET leaf_hash = (SELECT leaf_hash FROM ledger WHERE seq = 7) WHERE seq = 6",
    );
    assert!(err.contains("entry 6"), "{err}");
    // A deleted row.
    let err = tampered(dir.path(), "DELETE FROM ledger WHERE seq = 7");
    assert!(err.contains("entry 7 is missing"), "{err}");
    // Two rows swapped.
    let err = tampered(
        dir.path(),
        "UPDATE ledger SET seq = -1 WHERE seq = 8; UPDATE ledger SET seq = 8 WHERE seq = 9; UPDATE ledger SET seq = 9 WHERE seq = -1",
    );
    assert!(err.contains("entry 8") && err.contains("Merkle subtree"), "{err}");
    // A replaced checkpoint: re-signed by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let note_sql = {
        let db = rusqlite::Connection::open(dir.path().join("assent.db")).unwrap();
        let (size, root): (i64, Vec<u8>) = db
            .query_row("SELECT tree_size, root FROM checkpoints ORDER BY tree_size LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let cp = assent_core::note::Checkpoint {
            origin: "assent.local/audit".into(),
            size: size as u64,
            root: root.try_into().unwrap(),
        };
        format!("UPDATE checkpoints SET note = '{}' WHERE tree_size = {size}", cp.sign(&other).replace('\'', "''"))
    };
    let err = tampered(dir.path(), &note_sql);
    assert!(err.contains("checkpoint at size"), "{err}");
    // Stored state that no event supports.
    let err = tampered(
        dir.path(),
        "UPDATE consent_state SET action = 'withdraw' WHERE subject_no = (SELECT MIN(subject_no) FROM consent_state)",
    );
    assert!(err.contains("stored state"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_verifies_offline_and_a_forged_one_fails_at_the_step_that_breaks() {
    let (dir, public_key, receipt) = ledger_with_history().await;
    let file = dir.path().join("receipt.json");
    let o = assent_plain(&["receipt", "verify", file.to_str().unwrap(), "--public-key", &public_key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    assert!(
        out.starts_with("valid: ") && out.contains("`ads`") && out.contains("`c1`") && out.contains("entry 2 "),
        "{out}"
    );

    let check = |token: &str, key: &str| {
        let path = dir.path().join("forged.jws");
        std::fs::write(&path, token).unwrap();
        let o = assent_plain(&["receipt", "verify", path.to_str().unwrap(), "--public-key", key]);
        assert!(!o.status.success());
        stderr(&o)
    };
    // A payload edited after signing.
    let mut parts: Vec<String> = receipt.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert!(check(&parts.join("."), &public_key).contains("signature"));
    // Another controller's key.
    let stranger = assent_core::note::verifier_key(
        "assent.local/audit",
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
    );
    assert!(check(&receipt, &stranger).contains("signature"));
    // A bad key is one clear line.
    let err = check(&receipt, "not-a-key");
    assert!(err.starts_with("error: public key"), "{err}");
}

/// The README's audit walk-through, run for real: an auditor with the public key, the
/// checkpoint and an audit key rebuilds the signed root with a script that shares no code
/// with Assent (`docs/audit.py`, Python standard library only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_audit_walk_through_works() {
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), "walk");
    let server = Server::start(dir.path()).await;
    let client = reqwest::Client::new();
    let call = |method: &str, path: &str, body: Value| {
        client.request(method.parse().unwrap(), format!("{}{path}", server.base)).bearer_auth(&key).json(&body).send()
    };
    // A checkpoint of the empty log, asked for before anything happened, is served signed.
    let empty = get_text(&client, &format!("{}/v1/ledger/checkpoint?controller=walk", server.base)).await;
    assert_eq!(empty.lines().nth(1), Some("0"));
    seed_catalog(&server.base, &key).await;
    let events: Vec<Value> = (0..1500)
        .map(|i| json!({"subject": format!("c{i}"), "purpose": "ads", "version": 1, "action": "grant"}))
        .collect();
    for chunk in events.chunks(500) {
        assert!(call("POST", "/v1/consents/batch", json!({"events": chunk})).await.unwrap().status().is_success());
    }
    // The signer runs every second: the public checkpoint catches up without being asked.
    let mut note = String::new();
    for _ in 0..40 {
        note = get_text(&client, &format!("{}/v1/ledger/checkpoint?controller=walk", server.base)).await;
        if note.lines().nth(1) == Some("1501") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(note.lines().nth(1), Some("1501"), "{note}");
    let vkey = get_text(&client, &format!("{}/v1/ledger/public-key?controller=walk", server.base)).await;
    std::fs::write(dir.path().join("checkpoint.txt"), &note).unwrap();
    std::fs::write(dir.path().join("walk.vkey"), &vkey).unwrap();
    let o = assent(&["keys", "create", "--controller", "walk", "--scope", "audit"], dir.path());
    let audit_key = stdout(&o);

    let o = assent_plain(&[
        "checkpoint",
        "verify",
        dir.path().join("checkpoint.txt").to_str().unwrap(),
        "--public-key",
        dir.path().join("walk.vkey").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("valid: assent.local/walk has 1501 entries"), "{}", stdout(&o));

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .args(["--url", &server.base, "--key", &audit_key, "--checkpoint"])
        .arg(dir.path().join("checkpoint.txt"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("OK: assent.local/walk: the 1501 entries (1500 consent, 1 notice)"),
        "{}",
        stdout(&o)
    );
    server.stop();
    let o = assent(&["verify"], dir.path());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
