//! Opt-outs that reach every downstream system: destinations, the dispatcher, confirmations
//! and time-to-honor.
//!
//! Every ledger entry is in the outbox from the moment it commits (the store writes both in one
//! transaction). One node at a time (the store's `dispatcher` lease) runs [`Assent::dispatch`]:
//! for each destination it reads the outbox from the destination's cursor and delivers entries
//! strictly in order, so a subject's events arrive in the order they were recorded. A failure
//! holds the destination at that entry and retries it with exponential backoff and jitter
//! ([`RetryPolicy`]); past the give-up period (25 h by default) the entry becomes a dead letter,
//! visible through the API, and delivery moves on. Nothing is dropped silently.
//!
//! Time-to-honor is the time from an event's commit to the destination confirming it applied it:
//! a webhook's 2xx, or `POST /v1/deliveries/{id}/ack` for NATS consumers. Each node exports what
//! it observed as a Prometheus histogram ([`Metrics`]); the API shows each destination's recent
//! confirmations from the store.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use assent_core::crypto::to_hex;
use assent_core::{Action, ControllerId, LedgerEntry, PurposeId, Timestamp, ValidationErrors};
use assent_dispatch::{NatsClient, Outcome, RetryPolicy, WebhookSecret, WebhookSender};
use assent_store::{
    Delivery, DeliveryFilter, Destination, DestinationKind, OutboxEntry, Progress, Scope, Store, StoreError,
};

use crate::{Assent, Principal, ServiceError, ServiceResult, random_bytes};

/// How many outbox entries one pass reads per destination.
const BATCH: u64 = 200;
/// How often the dispatcher looks for controllers without a NATS destination.
const REGISTER_EVERY: Duration = Duration::from_secs(5);
/// Outbox rows kept past the end of the ledger's delivered part when no destination exists.
const PRUNE_MARGIN: u64 = 10_000;
/// The JetStream stream that captures every controller's subjects.
pub const NATS_STREAM: &str = "ASSENT";
/// Bucket bounds of the time-to-honor histogram, in seconds: from a live receiver's few
/// milliseconds to the day a retried delivery may take.
const BUCKETS: [f64; 18] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];

/// How the dispatcher delivers.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// `nats://host:port` of a JetStream server, if events go to NATS too.
    pub nats_url: Option<String>,
    pub retry: RetryPolicy,
    pub webhook_timeout: Duration,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            nats_url: None,
            retry: RetryPolicy::default(),
            webhook_timeout: assent_dispatch::webhook::DEFAULT_TIMEOUT,
        }
    }
}

/// What this node observed of deliveries, for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    by_destination: Mutex<BTreeMap<(String, String), DestinationMetrics>>,
}

/// A counter's name, help text, and how to read it from a destination's metrics.
type Counter = (&'static str, &'static str, fn(&DestinationMetrics) -> u64);

#[derive(Debug, Default, Clone)]
struct DestinationMetrics {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
    delivered: u64,
    dead: u64,
}

impl Metrics {
    fn with(&self, controller: &ControllerId, destination: &str, f: impl FnOnce(&mut DestinationMetrics)) {
        if let Ok(mut all) = self.by_destination.lock() {
            f(all.entry((controller.to_string(), destination.to_owned())).or_default());
        }
    }

    fn honored(&self, controller: &ControllerId, destination: &str, seconds: f64) {
        self.with(controller, destination, |m| {
            for (bucket, bound) in m.buckets.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            m.count += 1;
            m.sum_seconds += seconds;
        });
    }

    /// The Prometheus text exposition of what was observed for `controller`: a key sees only
    /// its own controller's destinations.
    pub fn render(&self, controller: &ControllerId) -> String {
        use std::fmt::Write as _;
        let mut all = self.by_destination.lock().map(|m| m.clone()).unwrap_or_default();
        all.retain(|(c, _), _| c.as_str() == controller.as_str());
        let mut out = String::new();
        out.push_str("# HELP assent_time_to_honor_seconds From an event's commit to its destination confirming it.\n");
        out.push_str("# TYPE assent_time_to_honor_seconds histogram\n");
        for ((controller, destination), m) in &all {
            let labels = format!("controller=\"{controller}\",destination=\"{destination}\"");
            for (bound, count) in BUCKETS.iter().zip(m.buckets) {
                let _ = writeln!(out, "assent_time_to_honor_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "assent_time_to_honor_seconds_bucket{{{labels},le=\"+Inf\"}} {}", m.count);
            let _ = writeln!(out, "assent_time_to_honor_seconds_sum{{{labels}}} {}", m.sum_seconds);
            let _ = writeln!(out, "assent_time_to_honor_seconds_count{{{labels}}} {}", m.count);
        }
        let counters: [Counter; 2] = [
            ("assent_deliveries_total", "Events delivered to a destination.", |m| m.delivered),
            ("assent_dead_letters_total", "Events given up on after the retry period.", |m| m.dead),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((controller, destination), m) in &all {
                let _ =
                    writeln!(out, "{name}{{controller=\"{controller}\",destination=\"{destination}\"}} {}", value(m));
            }
        }
        out
    }
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
    #[serde(default)]
    pub purposes: Vec<String>,
}

/// A new webhook, with its signing secret: shown this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookCreated {
    pub id: String,
    pub url: String,
    pub purposes: Vec<PurposeId>,
    pub secret: String,
    pub created_at: Timestamp,
}

/// Percentiles of recent confirmations.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HonorStats {
    /// How many confirmations these figures are computed over (the most recent, up to 1000).
    pub sample: usize,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// A destination as the API shows it: never its secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationOut {
    pub id: String,
    pub kind: DestinationKind,
    pub url: String,
    pub purposes: Vec<PurposeId>,
    pub created_at: Timestamp,
    /// Ledger entries not yet delivered (or dead-lettered).
    pub pending: u64,
    pub failed_attempts: u32,
    pub next_attempt: Option<Timestamp>,
    pub last_error: Option<String>,
    pub dead_letters: usize,
    pub awaiting_confirmation: usize,
    pub time_to_honor: HonorStats,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryOut {
    /// `<destination>:<seq>`: what `POST /v1/deliveries/{id}/ack` takes.
    pub id: String,
    pub destination: String,
    pub seq: u64,
    pub status: &'static str,
    pub committed_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub acked_at: Option<Timestamp>,
    pub attempts: u32,
    pub error: Option<String>,
    pub time_to_honor_ms: Option<i64>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        let status = match (d.delivered_at, d.acked_at) {
            (None, _) => "dead",
            (Some(_), None) => "delivered",
            (Some(_), Some(_)) => "acknowledged",
        };
        Self {
            id: format!("{}:{}", d.destination, d.seq),
            time_to_honor_ms: d.acked_at.map(|at| at.unix_millis() - d.committed_at.unix_millis()),
            destination: d.destination,
            seq: d.seq,
            status,
            committed_at: d.committed_at,
            delivered_at: d.delivered_at,
            acked_at: d.acked_at,
            attempts: d.attempts,
            error: d.error,
        }
    }
}

/// Whether `host` (a URL's host, brackets and port removed) names this machine or a private,
/// link-local or unspecified address: where an `admin` key could otherwise point Assent at
/// services that trust the internal network (cloud metadata at 169.254.169.254, say). Host
/// names are not resolved here; a name that resolves to a private address is not caught.
fn is_internal_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast()
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments().first().copied().unwrap_or_default();
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
        }
        Err(_) => false,
    }
}

/// The host of an `http(s)://` URL's authority, without port or IPv6 brackets.
fn url_host(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    }
}

/// Checks a webhook URL: absolute `http` or `https`, with a host, no credentials, and (unless
/// the deployment allows it) not an internal address.
fn parse_webhook_url(url: &str, allow_internal: bool, errors: &mut ValidationErrors) {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        None => errors.push("url", "must start with https:// (or http:// for a receiver on a private network)"),
        Some(rest) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.is_empty() {
                errors.push("url", "must name a host");
            } else if authority.contains('@') {
                errors.push("url", "must not carry credentials: the signature authenticates Assent");
            } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.len() > 2048 {
                errors.push("url", "must be at most 2048 characters with no spaces");
            } else if !allow_internal && is_internal_host(url_host(authority)) {
                errors.push(
                    "url",
                    "names this machine or a private address; set `[delivery] allow_private_networks = true` \
                     if receivers really live on the internal network",
                );
            }
        }
    }
}

impl<S: Store> Assent<S> {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Registers a webhook; events recorded from now on are delivered to it.
    pub async fn create_webhook(&self, principal: &Principal, input: WebhookInput) -> ServiceResult<WebhookCreated> {
        principal.require(Scope::Admin)?;
        let mut errors = ValidationErrors::default();
        parse_webhook_url(&input.url, self.allow_private_webhooks(), &mut errors);
        let catalog = principal.controller.catalog();
        let mut purposes = Vec::new();
        for (i, p) in input.purposes.iter().enumerate() {
            match PurposeId::parse(p) {
                Ok(id) if catalog.purposes.contains_key(&id) => purposes.push(id),
                Ok(id) => errors.push(format!("purposes[{i}]"), format!("unknown purpose `{id}`")),
                Err(e) => errors.push(format!("purposes[{i}]"), e),
            }
        }
        errors.into_result(())?;
        let controller = principal.controller.id();
        let secret = WebhookSecret::generate()
            .map_err(|e| ServiceError::Store(StoreError::Backend(format!("no randomness: {e}").into())))?;
        let id = format!("wh_{}", to_hex(&random_bytes::<8>()?));
        let created_at = self.now();
        let cursor = self.store.ledger_size(controller.clone()).await?;
        self.store
            .create_destination(Destination {
                id: id.clone(),
                controller,
                kind: DestinationKind::Webhook,
                url: input.url.clone(),
                secret: Some(secret.to_string()),
                purposes: purposes.clone(),
                created_at,
                progress: Progress { cursor, ..Progress::default() },
            })
            .await?;
        tracing::info!(webhook = %id, "webhook registered");
        Ok(WebhookCreated { id, url: input.url, purposes, secret: secret.to_string(), created_at })
    }

    /// The controller's webhooks (`webhooks_only`) or every destination, with progress.
    pub async fn list_destinations(
        &self,
        principal: &Principal,
        webhooks_only: bool,
    ) -> ServiceResult<Vec<DestinationOut>> {
        principal.require(Scope::Admin)?;
        let controller = principal.controller.id();
        let size = self.store.ledger_size(controller.clone()).await?;
        let mut out = Vec::new();
        for d in self.store.destinations(Some(controller)).await? {
            if webhooks_only && d.kind != DestinationKind::Webhook {
                continue;
            }
            out.push(self.describe(d, size).await?);
        }
        Ok(out)
    }

    async fn describe(&self, d: Destination, size: u64) -> ServiceResult<DestinationOut> {
        let dead = self.store.deliveries(d.id.clone(), DeliveryFilter::Dead, 1000).await?.len();
        let waiting = self.store.deliveries(d.id.clone(), DeliveryFilter::Unacknowledged, 1000).await?.len();
        let mut honored: Vec<i64> = self
            .store
            .deliveries(d.id.clone(), DeliveryFilter::Acknowledged, 1000)
            .await?
            .iter()
            .filter_map(|d| d.acked_at.map(|at| at.unix_millis() - d.committed_at.unix_millis()))
            .collect();
        honored.sort_unstable();
        let pick = |q: usize| honored.get((honored.len() * q / 100).min(honored.len().saturating_sub(1))).copied();
        Ok(DestinationOut {
            time_to_honor: HonorStats {
                sample: honored.len(),
                p50_ms: pick(50),
                p99_ms: pick(99),
                max_ms: honored.last().copied(),
            },
            pending: size.saturating_sub(d.progress.cursor),
            failed_attempts: d.progress.attempts,
            next_attempt: d.progress.next_attempt,
            last_error: d.progress.last_error,
            dead_letters: dead,
            awaiting_confirmation: waiting,
            id: d.id,
            kind: d.kind,
            url: d.url,
            purposes: d.purposes,
            created_at: d.created_at,
        })
    }

    pub async fn delete_webhook(&self, principal: &Principal, id: &str) -> ServiceResult<()> {
        principal.require(Scope::Admin)?;
        let controller = principal.controller.id();
        let is_webhook = self
            .store
            .destinations(Some(controller.clone()))
            .await?
            .iter()
            .any(|d| d.id == id && d.kind == DestinationKind::Webhook);
        if !is_webhook || !self.store.delete_destination(controller, id.to_owned()).await? {
            return Err(ServiceError::NotFound(format!("webhook `{id}`")));
        }
        Ok(())
    }

    /// A destination's deliveries, newest first: `dead`, `delivered` (awaiting confirmation),
    /// `acknowledged` or all.
    pub async fn list_deliveries(
        &self,
        principal: &Principal,
        destination: &str,
        status: Option<&str>,
    ) -> ServiceResult<Vec<DeliveryOut>> {
        principal.require(Scope::Admin)?;
        let filter = match status {
            None => DeliveryFilter::All,
            Some("dead") => DeliveryFilter::Dead,
            Some("delivered") => DeliveryFilter::Unacknowledged,
            Some("acknowledged") => DeliveryFilter::Acknowledged,
            Some(other) => {
                return Err(ServiceError::invalid(
                    "status",
                    format!("`{other}` must be one of dead, delivered, acknowledged"),
                ));
            }
        };
        let controller = principal.controller.id();
        let owned = self.store.destinations(Some(controller)).await?.iter().any(|d| d.id == destination);
        if !owned {
            return Err(ServiceError::NotFound(format!("destination `{destination}`")));
        }
        Ok(self.store.deliveries(destination.to_owned(), filter, 1000).await?.into_iter().map(Into::into).collect())
    }

    /// A downstream system confirms it applied an event: `id` is `<destination>:<seq>`, as the
    /// delivered payload's `delivery_id` says. Confirming twice keeps the first time.
    pub async fn ack_delivery(&self, principal: &Principal, id: &str) -> ServiceResult<DeliveryOut> {
        principal.require(Scope::Collect)?;
        let not_found = || ServiceError::NotFound(format!("delivery `{id}`"));
        let (destination, seq) = id.rsplit_once(':').ok_or_else(not_found)?;
        let seq: u64 = seq.parse().map_err(|_| not_found())?;
        let controller = principal.controller.id();
        let now = self.now();
        let delivery = self
            .store
            .ack_delivery(controller.clone(), destination.to_owned(), seq, now)
            .await?
            .ok_or_else(not_found)?;
        if delivery.acked_at == Some(now) {
            let seconds = (now.unix_millis() - delivery.committed_at.unix_millis()).max(0) as f64 / 1000.0;
            self.metrics.honored(&controller, destination, seconds);
        }
        Ok(delivery.into())
    }

    /// Runs the dispatcher forever. Only the node holding the `dispatcher` lease delivers; the
    /// others check again every second, so a new leader takes over within about a second of the
    /// old one's connection closing.
    pub async fn dispatch(&self, options: DispatchOptions) {
        let sender = match WebhookSender::new(options.webhook_timeout) {
            Ok(sender) => sender,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the dispatcher");
                return;
            }
        };
        let mut nats: Option<NatsClient> = None;
        let mut last_prune = std::time::Instant::now();
        let mut registered: Option<std::time::Instant> = None;
        loop {
            match self.store.try_lead("dispatcher").await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the dispatcher lease; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            if let Some(url) = &options.nats_url {
                if nats.as_ref().is_none_or(NatsClient::is_closed) {
                    nats = connect_nats(url).await;
                    registered = None;
                }
                // New controllers get their NATS destination within a few seconds; checking on
                // every pass would cost two reads per pass for nothing.
                let due = registered.is_none_or(|at: std::time::Instant| at.elapsed() > REGISTER_EVERY);
                if nats.is_some() && due {
                    match self.ensure_nats_destinations(url).await {
                        Ok(()) => registered = Some(std::time::Instant::now()),
                        Err(e) => tracing::warn!(error = %e, "cannot register the NATS destinations"),
                    }
                }
            }
            let mut busy = false;
            match self.store.destinations(None).await {
                Ok(destinations) => {
                    for d in destinations {
                        match self.deliver(d, &sender, nats.as_ref(), &options.retry).await {
                            Ok(moved) => busy |= moved,
                            Err(e) => tracing::warn!(error = %e, "a delivery pass failed; will retry"),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list destinations; will retry"),
            }
            if last_prune.elapsed() > Duration::from_secs(10) {
                last_prune = std::time::Instant::now();
                if let Err(e) = self.prune_outbox().await {
                    tracing::warn!(error = %e, "cannot prune the outbox; will retry");
                }
            }
            if !busy {
                tokio::select! {
                    // A moment's wait lets a burst of commits go out in one pass, rather than
                    // a pass (and a read of every destination) per commit under heavy ingest.
                    () = self.outbox_wake.notified() => tokio::time::sleep(Duration::from_millis(10)).await,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        }
    }

    /// Every controller gets a NATS destination once NATS is configured, starting at its
    /// ledger's current end.
    async fn ensure_nats_destinations(&self, url: &str) -> ServiceResult<()> {
        let existing = self.store.destinations(None).await?;
        for controller in self.store.list_controllers().await? {
            let id = format!("nats_{}", controller.id);
            if existing.iter().any(|d| d.id == id) {
                continue;
            }
            let cursor = self.store.ledger_size(controller.id.clone()).await?;
            let created = self
                .store
                .create_destination(Destination {
                    id,
                    controller: controller.id,
                    kind: DestinationKind::Nats,
                    url: url.to_owned(),
                    secret: None,
                    purposes: vec![],
                    created_at: self.now(),
                    progress: Progress { cursor, ..Progress::default() },
                })
                .await;
            match created {
                Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes outbox rows every destination of a controller has passed.
    async fn prune_outbox(&self) -> ServiceResult<()> {
        let destinations = self.store.destinations(None).await?;
        for controller in self.store.list_controllers().await? {
            let size = self.store.ledger_size(controller.id.clone()).await?;
            // With no destination, keep a margin: one being created right now starts at the
            // ledger's end as it reads it, which may be a little behind `size`.
            let below = destinations
                .iter()
                .filter(|d| d.controller == controller.id)
                .map(|d| d.progress.cursor)
                .min()
                .unwrap_or_else(|| size.saturating_sub(PRUNE_MARGIN));
            self.store.prune_outbox(controller.id, below).await?;
        }
        Ok(())
    }

    /// One pass over one destination. Returns whether it moved (so the loop goes on at once).
    async fn deliver(
        &self,
        d: Destination,
        sender: &WebhookSender,
        nats: Option<&NatsClient>,
        retry: &RetryPolicy,
    ) -> ServiceResult<bool> {
        let now = self.now();
        if d.progress.next_attempt.is_some_and(|at| at > now) {
            return Ok(false);
        }
        let secret = match (&d.kind, &d.secret) {
            (DestinationKind::Webhook, Some(s)) => Some(
                WebhookSecret::parse(s).map_err(|e| StoreError::Corrupt(format!("webhook `{}` secret: {e}", d.id)))?,
            ),
            (DestinationKind::Webhook, None) => {
                return Err(StoreError::Corrupt(format!("webhook `{}` has no secret", d.id)).into());
            }
            (DestinationKind::Nats, _) => None,
        };
        let entries = self.store.outbox(d.controller.clone(), d.progress.cursor, BATCH).await?;
        if entries.is_empty() {
            return Ok(false);
        }
        if let Some(first) = entries.first()
            && first.seq > d.progress.cursor
        {
            tracing::error!(
                destination = %d.id,
                from = d.progress.cursor,
                to = first.seq,
                "outbox rows this destination had not passed are gone; those entries are skipped"
            );
        }
        let mut progress = d.progress.clone();
        let mut records = Vec::new();
        for entry in entries {
            progress.cursor = progress.cursor.max(entry.seq);
            let Some(message) = message_for(&d, &entry)? else {
                progress.cursor = entry.seq + 1;
                continue;
            };
            let now = self.now();
            let attempt = progress.attempts + 1;
            let result = match (&d.kind, &secret) {
                (DestinationKind::Webhook, Some(secret)) => {
                    match sender.send(&d.url, secret, &message.event_id, now.unix_millis() / 1000, message.body).await {
                        Outcome::Delivered { .. } => Ok(()),
                        Outcome::Rejected { status, retry } => Err((format!("the receiver answered {status}"), retry)),
                        Outcome::Failed { error } => Err((error, true)),
                    }
                }
                (DestinationKind::Nats, _) => match nats {
                    None => Err(("NATS is not connected".to_owned(), true)),
                    Some(client) => client
                        .publish(&message.subject, &message.event_id, &message.body)
                        .await
                        .map(drop)
                        .map_err(|e| (e.to_string(), true)),
                },
                (DestinationKind::Webhook, None) => Err(("no secret".to_owned(), false)),
            };
            match result {
                Ok(()) => {
                    // A webhook's 2xx is its confirmation; a NATS consumer confirms through the API.
                    let acked = (d.kind == DestinationKind::Webhook).then_some(now);
                    records.push(Delivery {
                        destination: d.id.clone(),
                        seq: entry.seq,
                        committed_at: message.committed_at,
                        delivered_at: Some(now),
                        acked_at: acked,
                        attempts: attempt,
                        error: None,
                    });
                    self.metrics.with(&d.controller, &d.id, |m| m.delivered += 1);
                    if acked.is_some() {
                        let seconds = (now.unix_millis() - message.committed_at.unix_millis()).max(0) as f64 / 1000.0;
                        self.metrics.honored(&d.controller, &d.id, seconds);
                    }
                    progress = Progress { cursor: entry.seq + 1, ..Progress::default() };
                }
                Err((error, retryable)) => {
                    // The give-up clock of an event starts when it was recorded, or when this
                    // outage began if later: every event gets the whole retry period, and a
                    // receiver that never comes back costs each event that period, not the
                    // period times the backlog ahead of it (an erasure's outbox row, with its
                    // customer id, is kept no longer than that).
                    let first_failure = progress.first_failure.unwrap_or(now);
                    let clock = first_failure.max(message.committed_at);
                    let jitter = f64::from(u32::from_le_bytes(random_bytes::<4>()?)) / f64::from(u32::MAX);
                    let next = retryable
                        .then(|| retry.next_attempt_at(clock.unix_millis(), now.unix_millis(), attempt, jitter))
                        .flatten();
                    match next {
                        Some(at) => {
                            tracing::info!(destination = %d.id, seq = entry.seq, attempt, %error, "delivery failed; will retry");
                            progress = Progress {
                                cursor: entry.seq,
                                attempts: attempt,
                                first_failure: Some(first_failure),
                                next_attempt: Some(Timestamp::from_unix_millis(at)),
                                last_error: Some(error),
                            };
                            break;
                        }
                        None => {
                            tracing::warn!(destination = %d.id, seq = entry.seq, attempt, %error, "delivery given up: dead letter");
                            records.push(Delivery {
                                destination: d.id.clone(),
                                seq: entry.seq,
                                committed_at: message.committed_at,
                                delivered_at: None,
                                acked_at: None,
                                attempts: attempt,
                                error: Some(error.clone()),
                            });
                            self.metrics.with(&d.controller, &d.id, |m| m.dead += 1);
                            // The outage goes on: the next event's clock starts no earlier.
                            progress = Progress {
                                cursor: entry.seq + 1,
                                first_failure: Some(first_failure),
                                last_error: Some(error),
                                ..Progress::default()
                            };
                        }
                    }
                }
            }
        }
        let moved = progress.cursor != d.progress.cursor;
        match self.store.advance(d.id.clone(), d.progress.cursor, progress, records).await {
            Ok(()) => Ok(moved),
            // Deleted while this pass ran, or moved by a dispatcher that took over: its record
            // stands, and this pass's is dropped (receivers deduplicate by event id).
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(destination = %d.id, "the destination changed under this dispatcher; dropping its pass");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

async fn connect_nats(url: &str) -> Option<NatsClient> {
    let client = match NatsClient::connect(url).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "cannot connect to NATS; will retry");
            return None;
        }
    };
    match client.ensure_stream(NATS_STREAM, &["assent.>"], Duration::from_secs(48 * 3600)).await {
        Ok(_) => Some(client),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up the ASSENT stream on NATS; will retry");
            None
        }
    }
}

/// What one outbox entry becomes for a destination.
struct Message {
    /// `<controller>:<seq>`: stable across retries, so receivers and JetStream deduplicate.
    event_id: String,
    subject: String,
    body: Vec<u8>,
    committed_at: Timestamp,
}

/// The payload for `entry`, or `None` when the destination does not take it (notices; consent
/// events for purposes it did not ask for).
fn message_for(d: &Destination, entry: &OutboxEntry) -> ServiceResult<Option<Message>> {
    let decoded = assent_core::encoding::decode(&entry.bytes)
        .map_err(|e| StoreError::Corrupt(format!("outbox entry {}: {e}", entry.seq)))?;
    let event_id = format!("{}:{}", d.controller, entry.seq);
    let delivery_id = format!("{}:{}", d.id, entry.seq);
    let subject = entry.subject.as_ref().map(|s| s.as_str().to_owned());
    // What every kind of event says: which event, where to confirm it, whom it concerns.
    let common = |recorded_at: assent_core::Timestamp| {
        let mut data = serde_json::Map::new();
        data.insert("id".into(), event_id.clone().into());
        data.insert("delivery_id".into(), delivery_id.clone().into());
        data.insert("controller".into(), d.controller.as_str().into());
        data.insert("seq".into(), entry.seq.into());
        data.insert("subject".into(), subject.clone().into());
        data.insert("recorded_at".into(), serde_json::json!(recorded_at));
        data.insert("leaf_hash".into(), to_hex(&entry.leaf_hash).into());
        data
    };
    let (kind, nats_subject, recorded_at, data) = match decoded {
        LedgerEntry::Consent(e) => {
            if !d.purposes.is_empty() && !d.purposes.contains(&e.purpose) {
                return Ok(None);
            }
            let kind = match e.action {
                Action::Grant => "consent.granted",
                Action::Withdraw => "consent.withdrawn",
                Action::Expire => "consent.expired",
            };
            let mut data = common(e.recorded_at);
            data.insert("purpose".into(), serde_json::json!(e.purpose));
            data.insert("action".into(), e.action.as_str().into());
            data.insert("version".into(), serde_json::json!(e.version));
            data.insert("method".into(), e.method.as_str().into());
            (kind, format!("assent.{}.consent.{}", d.controller, e.purpose), e.recorded_at, data)
        }
        LedgerEntry::Erasure(e) => {
            let data = common(e.recorded_at);
            ("subject.erased", format!("assent.{}.erasure", d.controller), e.recorded_at, data)
        }
        LedgerEntry::Notice(_) => return Ok(None),
    };
    let body = serde_json::to_vec(&serde_json::json!({"type": kind, "timestamp": recorded_at, "data": data}))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(Message { event_id, subject: nats_subject, body, committed_at: recorded_at }))
}
