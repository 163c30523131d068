//! API keys: creation, lookup and scope checks.
//!
//! A key is 256 random bits shown once; only its SHA-256 is stored. A key belongs to exactly one
//! controller, and every service call takes the controller from the key, never from the
//! request, so one controller's key cannot name another's data.

use std::sync::Arc;

use assent_core::ControllerId;
use assent_core::crypto::{sha256, to_hex};
use assent_store::{ApiKeyRecord, Scope, Store};

use crate::memory::{ControllerHandle, read, write};
use crate::{Assent, CachedKey, ServiceError, ServiceResult, random_bytes};

const KEY_PREFIX: &str = "ak_";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub controller: Arc<ControllerHandle>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Passes when the key has `scope` (or `admin`, which implies every scope).
    pub fn require(&self, scope: Scope) -> ServiceResult<()> {
        if self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ServiceError::forbidden(scope))
        }
    }
}

impl<S: Store> Assent<S> {
    /// Creates a key for `controller` with `scopes` and returns its secret, which is never
    /// stored and cannot be shown again.
    pub async fn create_api_key(&self, controller: &ControllerId, scopes: Vec<Scope>) -> ServiceResult<String> {
        if scopes.is_empty() {
            return Err(ServiceError::invalid("scope", "give at least one scope"));
        }
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        let secret = format!("{KEY_PREFIX}{}", to_hex(&random_bytes::<32>()?));
        let record = ApiKeyRecord {
            hash: sha256(secret.as_bytes()),
            prefix: secret.chars().take(KEY_PREFIX.len() + 8).collect(),
            controller: controller.clone(),
            scopes,
            created_at: self.now(),
        };
        self.store.create_api_key(record).await.map_err(|e| match e {
            assent_store::StoreError::NotFound(_) => ServiceError::NotFound(format!("controller `{controller}`")),
            other => other.into(),
        })?;
        Ok(secret)
    }

    /// Resolves a bearer token to a principal.
    pub async fn authenticate(&self, token: &str) -> ServiceResult<Principal> {
        if !token.starts_with(KEY_PREFIX) || token.len() > 128 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = sha256(token.as_bytes());
        let cached = read(&self.api_keys).get(&hash).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                let record = self.store.find_api_key(hash).await?.ok_or(ServiceError::Unauthenticated)?;
                let key = CachedKey { controller: record.controller, scopes: record.scopes };
                write(&self.api_keys).insert(hash, key.clone());
                key
            }
        };
        let controller = self.controller(&key.controller).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::Unauthenticated,
            other => other,
        })?;
        Ok(Principal { controller, scopes: key.scopes })
    }
}
