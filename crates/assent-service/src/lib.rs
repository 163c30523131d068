//! Assent's application layer.
//!
//! [`Assent`] owns the store and the in-memory projection, and is the only path by which state
//! changes: the JSON API, the customer pages and the CLI all call the same methods here. It
//! validates input into core types, appends to the ledger through [`assent_store::Store`], and
//! applies the committed result to memory before returning, which is what makes every
//! decision after a successful write see it (read-your-writes).

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod catalog_file;
pub mod center;
pub mod clock;
pub mod consents;
pub mod delivery;
pub mod error;
pub mod follow;
pub mod ledger;
pub mod links;
pub mod memory;
pub mod reads;
pub mod receipts;
pub mod signing;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use assent_core::event::Pseudonym;
use assent_core::{ControllerId, SubjectId, Timestamp};
use assent_store::{Scope, Store, SubjectRecord};

pub use crate::auth::Principal;
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::error::{ServiceError, ServiceResult};
use crate::memory::{CatalogView, ControllerHandle, Subjects, read, write};

/// Languages every controller gets unless it says otherwise.
pub const DEFAULT_LANGUAGES: [&str; 2] = ["en", "es"];
/// Jurisdiction profiles Assent knows.
/// GDPR sets no fixed lifetime for consent; a year is the common supervisory expectation.
pub const DEFAULT_REFRESH_DAYS: u32 = 365;

#[derive(Debug, Clone)]
struct CachedKey {
    controller: ControllerId,
    scopes: Vec<Scope>,
}

/// The Assent service over a store `S`.
pub struct Assent<S: Store> {
    store: S,
    clock: Arc<dyn Clock>,
    controllers: RwLock<HashMap<ControllerId, Arc<ControllerHandle>>>,
    api_keys: RwLock<HashMap<[u8; 32], CachedKey>>,
    loading: tokio::sync::Mutex<()>,
    checkpointing: tokio::sync::Mutex<()>,
    ledger_keys: signing::KeyRing,
    public_url: RwLock<Option<String>>,
    secure_cookies: std::sync::atomic::AtomicBool,
    trust_proxy: std::sync::atomic::AtomicBool,
    lint_options: RwLock<assent_core::lint::LintOptions>,
    /// Days a grant lasts under a profile that requires consent to be refreshed (GDPR), when
    /// its purpose sets no `max_age_days` of its own.
    consent_refresh_days: std::sync::atomic::AtomicU32,
    metrics: delivery::Metrics,
    /// Webhooks may point at this machine or private addresses (off unless configured).
    allow_private_webhooks: std::sync::atomic::AtomicBool,
    /// Woken when entries commit, so the dispatcher delivers them without waiting for its tick.
    outbox_wake: tokio::sync::Notify,
}

impl<S: Store> std::fmt::Debug for Assent<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assent").field("controllers", &read(&self.controllers).len()).finish_non_exhaustive()
    }
}

impl<S: Store> Assent<S> {
    /// Opens the service over `store` and loads every controller's state into memory.
    pub async fn open(store: S, clock: Arc<dyn Clock>, keys: signing::KeyRing) -> ServiceResult<Self> {
        let service = Self::open_lazy(store, clock, keys);
        for controller in service.store.list_controllers().await? {
            service.load_controller(controller.id).await?;
        }
        Ok(service)
    }

    /// Opens the service without preloading anything: controllers load on first use. For
    /// short-lived admin commands.
    pub fn open_lazy(store: S, clock: Arc<dyn Clock>, keys: signing::KeyRing) -> Self {
        Self {
            store,
            clock,
            controllers: RwLock::new(HashMap::new()),
            api_keys: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            checkpointing: tokio::sync::Mutex::new(()),
            ledger_keys: keys,
            public_url: RwLock::new(None),
            secure_cookies: std::sync::atomic::AtomicBool::new(false),
            trust_proxy: std::sync::atomic::AtomicBool::new(false),
            lint_options: RwLock::new(assent_core::lint::LintOptions::default()),
            consent_refresh_days: std::sync::atomic::AtomicU32::new(DEFAULT_REFRESH_DAYS),
            metrics: delivery::Metrics::default(),
            allow_private_webhooks: std::sync::atomic::AtomicBool::new(false),
            outbox_wake: tokio::sync::Notify::new(),
        }
    }

    pub fn set_lint_options(&self, options: assent_core::lint::LintOptions) {
        *write(&self.lint_options) = options;
    }

    pub fn lint_options(&self) -> assent_core::lint::LintOptions {
        *read(&self.lint_options)
    }

    /// Sets the GDPR refresh period and applies it to every controller already loaded.
    pub fn set_consent_refresh_days(&self, days: u32) {
        self.consent_refresh_days.store(days.max(1), std::sync::atomic::Ordering::Relaxed);
        let handles: Vec<_> = read(&self.controllers).values().cloned().collect();
        for handle in handles {
            self.refresh_terms(&handle);
        }
    }

    /// Recomputes the refresh period a controller's profiles give its grants.
    pub(crate) fn refresh_terms(&self, handle: &ControllerHandle) {
        let refresh = self.refresh_days_for(&read(&handle.info).profiles);
        let mut catalog = write(&handle.catalog);
        if catalog.refresh_days != refresh {
            let mut next = (**catalog).clone();
            next.refresh_days = refresh;
            *catalog = Arc::new(next);
        }
    }

    /// A controller's catalog from the store, with what its profiles add to decisions.
    pub(crate) async fn catalog_view(&self, info: &assent_store::Controller) -> ServiceResult<CatalogView> {
        let mut catalog = CatalogView::from_snapshot(self.store.load_catalog(info.id.clone()).await?);
        catalog.refresh_days = self.refresh_days_for(&info.profiles);
        Ok(catalog)
    }

    fn refresh_days_for(&self, profiles: &[String]) -> Option<u32> {
        let gdpr = assent_core::lint::Profile::from_names(profiles).contains(&assent_core::lint::Profile::EuGdpr);
        gdpr.then(|| self.consent_refresh_days.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// An all-scopes principal for in-process callers that are trusted by construction (the
    /// CLI working on its own data directory), never for anything arriving over the network.
    pub async fn system_principal(&self, controller: &ControllerId) -> ServiceResult<Principal> {
        Ok(Principal { controller: self.controller(controller).await?, scopes: vec![Scope::Admin] })
    }

    /// The URL customers reach the pages on, when configured (links use it).
    pub fn set_public_url(&self, url: Option<String>) {
        *write(&self.public_url) = url;
    }

    /// Marks session cookies `Secure` even when TLS ends before Assent and is not announced.
    pub fn set_secure_cookies(&self, on: bool) {
        self.secure_cookies.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Trusts the nearest proxy's `X-Forwarded-For` entry as the client's address.
    pub fn set_trust_proxy(&self, on: bool) {
        self.trust_proxy.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lets webhooks point at this machine or private addresses.
    pub fn set_allow_private_webhooks(&self, on: bool) {
        self.allow_private_webhooks.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn allow_private_webhooks(&self) -> bool {
        self.allow_private_webhooks.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn trust_proxy(&self) -> bool {
        self.trust_proxy.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn public_url(&self) -> Option<String> {
        read(&self.public_url).clone()
    }

    /// The controller's ledger signing key (created on first use).
    pub fn ledger_key(&self, controller: &ControllerId) -> ServiceResult<Arc<signing::LogKey>> {
        self.ledger_keys.key(controller)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Loads (or reloads) one controller from the store into memory.
    pub async fn load_controller(&self, id: ControllerId) -> ServiceResult<Arc<ControllerHandle>> {
        let info = self
            .store
            .controller(id.clone())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("controller `{id}`")))?;
        // Read before the state: whatever commits meanwhile is read back by the next catch-up
        // (applying an entry twice changes nothing).
        let applied = self.store.ledger_size(id.clone()).await?;
        let catalog = self.catalog_view(&info).await?;
        let mut subjects =
            Subjects { next_number: self.store.next_subject_number(id.clone()).await?, ..Subjects::default() };
        for record in self.store.load_subjects(id.clone()).await? {
            subjects.insert_stored(record, Vec::new());
        }
        for stored in self.store.load_states(id.clone()).await? {
            let owner = subjects.by_pseudonym.get(&stored.subject).cloned();
            if let Some(entry) = owner.and_then(|owner| subjects.by_id.get_mut(&owner)) {
                entry.apply(&stored.purpose, stored.state);
            }
        }
        let handle = Arc::new(ControllerHandle::new(info, catalog, subjects, applied));
        write(&self.controllers).insert(id, Arc::clone(&handle));
        Ok(handle)
    }

    /// The controller's in-memory handle, loading it if another process created it since.
    pub async fn controller(&self, id: &ControllerId) -> ServiceResult<Arc<ControllerHandle>> {
        let cached = read(&self.controllers).get(id).cloned();
        match cached {
            Some(handle) => Ok(handle),
            None => {
                // One load per controller: two handles for one controller would each hand out
                // subject numbers and hold half of the state.
                let _loading = self.loading.lock().await;
                let cached = read(&self.controllers).get(id).cloned();
                match cached {
                    Some(handle) => Ok(handle),
                    None => self.load_controller(id.clone()).await,
                }
            }
        }
    }

    pub fn controller_ids(&self) -> Vec<ControllerId> {
        let mut ids: Vec<_> = read(&self.controllers).keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> ServiceResult<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| {
        ServiceError::Store(assent_store::StoreError::Backend(format!("no randomness available: {e}").into()))
    })?;
    Ok(out)
}

/// A fresh subject record with a random secret.
pub(crate) fn new_subject(id: SubjectId, number: u64, now: Timestamp, secret: [u8; 32]) -> SubjectRecord {
    let pseudonym = Pseudonym(assent_core::crypto::subject_pseudonym(&secret, id.as_str()));
    SubjectRecord { number, id, secret, pseudonym, created_at: now }
}

/// `n` fresh 32-byte secrets from one call to the operating system: a batch of new customers
/// costs one system call, not one each.
pub(crate) fn random_secrets(n: usize) -> ServiceResult<Vec<[u8; 32]>> {
    let mut bytes = vec![0u8; n * 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ServiceError::Store(assent_store::StoreError::Backend(format!("no randomness available: {e}").into()))
    })?;
    Ok(bytes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect())
}
