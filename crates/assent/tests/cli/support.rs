//! Starting and stopping the real binary.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn assent(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_assent"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ASSENT_DATABASE_URL")
        .output()
        .expect("run assent")
}

/// Runs a command that takes no data directory.
pub fn assent_plain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_assent")).args(args).output().expect("run assent")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// Creates controller `id` and returns an admin key for it, through the CLI.
pub fn controller_with_admin_key(data_dir: &Path, id: &str) -> String {
    let o = assent(&["controllers", "create", id, "--name", "Test Co", "--profile", "us-me-isp"], data_dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = assent(&["keys", "create", "--controller", id, "--scope", "admin"], data_dir);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with_env(data_dir, &[]).await
    }

    pub async fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_assent"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .env("ASSENT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, base }
    }

    /// SIGKILL: no shutdown hook, no flush, nothing but what is already on disk survives.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn stop(mut self) {
        let terminated = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(terminated.success());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
    }
}

/// A server a test forgets to stop is stopped anyway, so no `assent serve` outlives the tests.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives controller behind `key` one personal data category (`sites`) and one opt-in purpose
/// (`ads`, targeted advertising) with a published notice in English and Spanish.
pub async fn seed_catalog(base: &str, key: &str) {
    let client = reqwest::Client::new();
    let t = serde_json::json!({"title": "Ads", "what": "Sites you visit", "how": "Pick ads", "benefit": "Relevant ads", "who": "Us", "retention": "6 months"});
    for (method, path, body) in [
        (
            "PUT",
            "/v1/data-categories/sites",
            serde_json::json!({"personal": true, "names": {"en": "Sites", "es": "Sitios"}}),
        ),
        ("PUT", "/v1/purposes/ads", serde_json::json!({"data_categories": ["sites"], "targeted_advertising": true})),
        (
            "POST",
            "/v1/purposes/ads/versions",
            serde_json::json!({"texts": {"en": t, "es": t}, "retention_days": 180, "recipients": [{"name": "Test Co", "role": "shows the ads"}]}),
        ),
    ] {
        let r = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
}

/// `GET url` (with the key, when given) and the body as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str, key: Option<&str>) -> serde_json::Value {
    let request = client.get(url);
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    request.send().await.unwrap().json().await.unwrap()
}

/// `GET url` without a key, and the body as text.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}
