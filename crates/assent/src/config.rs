//! Layered configuration: defaults, then `assent.toml` (or `--config`), then `ASSENT_*`
//! environment variables and flags (clap applies those two).

use std::path::{Path, PathBuf};

use assent_store_sqlite::{CommitMode, SqliteOptions};

use crate::cli::StorageArgs;

pub const DEFAULT_DATA_DIR: &str = "./assent-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8380";
pub const DEFAULT_ORIGIN_PREFIX: &str = "assent.local";

/// The optional configuration file. Every field may be left out.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    /// The PostgreSQL schema Assent's tables live in (default `public`); ignored for SQLite.
    pub database_schema: Option<String>,
    /// Logs are named `<origin_prefix>/<controller>` in checkpoints (default `assent.local`):
    /// set it to the host name auditors know this deployment by.
    pub origin_prefix: Option<String>,
    /// The URL customers reach the pages on, for links (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Where ledger signing keys live (default: `keys/` in the data directory).
    pub keys_dir: Option<PathBuf>,
    /// Mark the pages' session cookies `Secure` (default: when `public_url` is `https://`).
    pub secure_cookies: Option<bool>,
    /// Behind a reverse proxy: take the client's address from the entry it appends to
    /// `X-Forwarded-For` (default: off, the socket peer is the client).
    pub trust_proxy: Option<bool>,
    /// Days a grant lasts for controllers bound by the `eu-gdpr` profile, when the purpose sets
    /// no `max_age_days` (default 365).
    pub consent_refresh_days: Option<u32>,
    /// How often, in seconds, lapsed grants are recorded as `expire` events (default 60).
    pub expiry_sweep_seconds: Option<u64>,
    /// Readability below which the notice lint warns (default 60, "plain language").
    pub lint_min_readability: Option<f64>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub log: LogConfig,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `group` (default) or `per-request` (benchmark baseline only).
    pub commit_mode: Option<String>,
}

/// Delivery to downstream systems.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `nats://host:port` of a JetStream server: every event is also published there.
    pub nats_url: Option<String>,
    /// First retry delay after a failed delivery, in milliseconds (default 1000); it doubles
    /// per attempt, with jitter.
    pub retry_base_ms: Option<u64>,
    /// Longest wait between attempts, in seconds (default 3600).
    pub retry_cap_seconds: Option<u64>,
    /// How long to keep retrying one event before it becomes a dead letter, in seconds
    /// (default 90000: 25 hours).
    pub give_up_seconds: Option<u64>,
    /// How long a webhook receiver may take to answer, in seconds (default 10).
    pub webhook_timeout_seconds: Option<u64>,
    /// Let webhooks point at this machine or private addresses (default false).
    pub allow_private_networks: Option<bool>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: Option<String>,
}

/// Settings after every layer is applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub database_url: Option<String>,
    pub database_schema: String,
    pub sqlite: SqliteOptions,
    pub json_logs: bool,
    pub origin_prefix: String,
    pub keys_dir: PathBuf,
    pub public_url: String,
    pub secure_cookies: bool,
    pub trust_proxy: bool,
    pub consent_refresh_days: u32,
    pub expiry_sweep_seconds: u64,
    pub lint_min_readability: f64,
    pub dispatch: assent_service::delivery::DispatchOptions,
    pub allow_private_webhooks: bool,
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, String> {
    let (path, required) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => (PathBuf::from("assent.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            format!("config file `{}` is invalid: {}", path.display(), e.to_string().lines().next().unwrap_or_default())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(FileConfig::default()),
        Err(e) => Err(format!("cannot read config file `{}`: {e}", path.display())),
    }
}

/// A number from the environment; a value that is not one is an error, not a silent default.
fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| format!("{name}=`{v}` is not a valid number")),
        Err(_) => Ok(None),
    }
}

pub fn resolve(storage: &StorageArgs, listen: Option<&str>) -> Result<Settings, String> {
    let file = load_file(storage.config.as_deref())?;
    let commit_mode = std::env::var("ASSENT_COMMIT_MODE").ok().or(file.storage.commit_mode);
    let commit_mode = match commit_mode.as_deref() {
        None | Some("group") => CommitMode::Group,
        Some("per-request") => CommitMode::PerRequest,
        Some(other) => {
            return Err(format!("commit mode `{other}` must be `group` or `per-request`"));
        }
    };
    let log_format = std::env::var("ASSENT_LOG_FORMAT").ok().or(file.log.format);
    let json_logs = match log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("log format `{other}` must be `text` or `json`")),
    };
    let listen = listen.map(str::to_owned).or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let public_url =
        std::env::var("ASSENT_PUBLIC_URL").ok().or(file.public_url).unwrap_or_else(|| format!("http://{listen}"));
    let data_dir = storage.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let consent_refresh_days = env_number("ASSENT_CONSENT_REFRESH_DAYS")?
        .or(file.consent_refresh_days)
        .unwrap_or(assent_service::DEFAULT_REFRESH_DAYS);
    if consent_refresh_days == 0 {
        return Err("consent_refresh_days must be at least 1".into());
    }
    let expiry_sweep_seconds = env_number("ASSENT_EXPIRY_SWEEP_SECONDS")?.or(file.expiry_sweep_seconds).unwrap_or(60);
    if expiry_sweep_seconds == 0 {
        return Err("expiry_sweep_seconds must be at least 1".into());
    }
    let lint_min_readability = env_number("ASSENT_LINT_MIN_READABILITY")?
        .or(file.lint_min_readability)
        .unwrap_or(assent_core::lint::LintOptions::default().min_readability);
    let defaults = assent_dispatch::RetryPolicy::default();
    let delivery = file.delivery;
    let millis = |ms: u64| std::time::Duration::from_millis(ms.max(1));
    let seconds = |s: u64| std::time::Duration::from_secs(s.max(1));
    let allow_private_webhooks = std::env::var("ASSENT_DELIVERY_ALLOW_PRIVATE_NETWORKS")
        .ok()
        .map(|v| v == "true" || v == "1")
        .or(delivery.allow_private_networks)
        .unwrap_or(false);
    let dispatch = assent_service::delivery::DispatchOptions {
        nats_url: std::env::var("ASSENT_NATS_URL").ok().filter(|u| !u.is_empty()).or(delivery.nats_url),
        retry: assent_dispatch::RetryPolicy {
            base: env_number("ASSENT_DELIVERY_RETRY_BASE_MS")?.or(delivery.retry_base_ms).map_or(defaults.base, millis),
            cap: env_number("ASSENT_DELIVERY_RETRY_CAP_SECONDS")?
                .or(delivery.retry_cap_seconds)
                .map_or(defaults.cap, seconds),
            give_up_after: env_number("ASSENT_DELIVERY_GIVE_UP_SECONDS")?
                .or(delivery.give_up_seconds)
                .map_or(defaults.give_up_after, seconds),
        },
        webhook_timeout: env_number("ASSENT_WEBHOOK_TIMEOUT_SECONDS")?
            .or(delivery.webhook_timeout_seconds)
            .map_or(assent_dispatch::webhook::DEFAULT_TIMEOUT, seconds),
    };
    Ok(Settings {
        dispatch,
        allow_private_webhooks,
        consent_refresh_days,
        expiry_sweep_seconds,
        lint_min_readability,
        data_dir: data_dir.clone(),
        listen,
        trust_proxy: std::env::var("ASSENT_TRUST_PROXY")
            .ok()
            .map(|v| v == "true" || v == "1")
            .or(file.trust_proxy)
            .unwrap_or(false),
        secure_cookies: std::env::var("ASSENT_SECURE_COOKIES")
            .ok()
            .map(|v| v == "true" || v == "1")
            .or(file.secure_cookies)
            .unwrap_or_else(|| public_url.starts_with("https://")),
        public_url,
        database_url: storage.database_url.clone().or(file.database_url),
        database_schema: std::env::var("ASSENT_DATABASE_SCHEMA")
            .ok()
            .or(file.database_schema)
            .unwrap_or_else(|| "public".to_owned()),
        sqlite: SqliteOptions { commit_mode, ..SqliteOptions::default() },
        json_logs,
        keys_dir: std::env::var_os("ASSENT_KEYS_DIR")
            .map(PathBuf::from)
            .or(file.keys_dir)
            .unwrap_or_else(|| data_dir.join("keys")),
        origin_prefix: std::env::var("ASSENT_ORIGIN_PREFIX")
            .ok()
            .or(file.origin_prefix)
            .unwrap_or_else(|| DEFAULT_ORIGIN_PREFIX.to_owned()),
    })
}
