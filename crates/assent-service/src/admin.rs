//! Controllers: creation and settings.

use assent_core::{ControllerId, Language, ValidationErrors};
use assent_store::{Controller, Store, StoreError};

use crate::memory::{read, write};
use crate::{Assent, DEFAULT_LANGUAGES, Principal, ServiceError, ServiceResult};

/// What may be set on a controller. Fields left out keep their value.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerPatch {
    pub name: Option<String>,
    pub languages: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
}

/// The controller as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ControllerView {
    pub id: String,
    pub name: String,
    pub languages: Vec<String>,
    pub profiles: Vec<String>,
    pub allowed_origins: Vec<String>,
}

impl From<&Controller> for ControllerView {
    fn from(c: &Controller) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            languages: c.languages.iter().map(ToString::to_string).collect(),
            profiles: c.profiles.clone(),
            allowed_origins: c.allowed_origins.clone(),
        }
    }
}

fn parse_languages(raw: &[String], errors: &mut ValidationErrors) -> Vec<Language> {
    if raw.is_empty() {
        errors.push("languages", "declare at least one language");
    }
    let mut out: Vec<Language> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        match Language::parse(l) {
            Ok(l) if !out.contains(&l) => out.push(l),
            Ok(_) => errors.push(format!("languages[{i}]"), format!("language `{l}` is listed twice")),
            Err(e) => errors.push(format!("languages[{i}]"), e),
        }
    }
    out
}

fn parse_profiles(raw: &[String], errors: &mut ValidationErrors) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        if let Err(e) = assent_core::lint::Profile::parse(p) {
            errors.push(format!("profiles[{i}]"), e);
        } else if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// An origin is a scheme, a host and an optional port: `https://shop.example:8443`.
pub fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else { return false };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn parse_origins(raw: &[String], errors: &mut ValidationErrors) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        if !is_origin(o) {
            errors.push(
                format!("allowed_origins[{i}]"),
                format!("`{o}` must be an origin such as `https://shop.example`"),
            );
        } else if !out.contains(o) {
            out.push(o.clone());
        }
    }
    out
}

fn check_name(name: &str, errors: &mut ValidationErrors) {
    if name.trim().is_empty() {
        errors.push("name", "must not be empty");
    } else if name.len() > 200 {
        errors.push("name", "must be at most 200 bytes");
    }
}

impl<S: Store> Assent<S> {
    /// Creates a controller. Languages default to English and Spanish.
    pub async fn create_controller(
        &self,
        id: &str,
        name: &str,
        languages: &[String],
        profiles: &[String],
    ) -> ServiceResult<ControllerView> {
        let mut errors = ValidationErrors::default();
        let id = assent_core::id::parse_field(&mut errors, "id", id, ControllerId::parse);
        check_name(name, &mut errors);
        let default_languages: Vec<String> = DEFAULT_LANGUAGES.iter().map(|s| (*s).to_owned()).collect();
        let languages = parse_languages(if languages.is_empty() { &default_languages } else { languages }, &mut errors);
        let profiles = parse_profiles(profiles, &mut errors);
        let Some(id) = id else {
            return Err(errors.into());
        };
        errors.into_result(())?;
        let controller = Controller {
            id: id.clone(),
            name: name.trim().to_owned(),
            languages,
            profiles,
            allowed_origins: Vec::new(),
            created_at: self.now(),
        };
        self.store.create_controller(controller.clone()).await.map_err(|e| match e {
            StoreError::AlreadyExists(_) => ServiceError::Conflict(format!("controller `{id}` already exists")),
            other => other.into(),
        })?;
        self.controller(&id).await?;
        // The ledger key is created with the controller, so its first checkpoint can be signed.
        self.ledger_keys.key(&id)?;
        Ok(ControllerView::from(&controller))
    }

    pub fn controller_view(&self, principal: &Principal) -> ServiceResult<ControllerView> {
        principal.require(assent_store::Scope::Admin)?;
        Ok(ControllerView::from(&*read(&principal.controller.info)))
    }

    pub async fn patch_controller(
        &self,
        principal: &Principal,
        patch: ControllerPatch,
    ) -> ServiceResult<ControllerView> {
        principal.require(assent_store::Scope::Admin)?;
        // Read-modify-write of the whole record: serialise it with other settings changes.
        let _guard = principal.controller.catalog_writes.lock().await;
        let mut updated = read(&principal.controller.info).clone();
        let mut errors = ValidationErrors::default();
        if let Some(name) = &patch.name {
            check_name(name, &mut errors);
            updated.name = name.trim().to_owned();
        }
        if let Some(languages) = &patch.languages {
            updated.languages = parse_languages(languages, &mut errors);
        }
        if let Some(profiles) = &patch.profiles {
            updated.profiles = parse_profiles(profiles, &mut errors);
        }
        if let Some(origins) = &patch.allowed_origins {
            updated.allowed_origins = parse_origins(origins, &mut errors);
        }
        errors.into_result(())?;
        self.store.update_controller(updated.clone()).await?;
        *write(&principal.controller.info) = updated.clone();
        self.refresh_terms(&principal.controller);
        Ok(ControllerView::from(&updated))
    }
}
