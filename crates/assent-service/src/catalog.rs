//! The catalog: data categories, purposes and notice versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use assent_core::catalog::{ConsentModel, NoticeContent, NoticeText, NoticeVersion, Recipient};
use assent_core::event::NoticePublication;
use assent_core::{DataCategory, DataCategoryId, Language, LedgerEntry, Purpose, PurposeId, ValidationErrors};
use assent_store::{AppendBatch, NewEntry, Scope, Store, StoreError};

use assent_core::lint::{Finding, LintOptions, NoticeDraft, Profile, Severity, lint_notice, material_changes};

use crate::memory::{CatalogView, PurposeView, read, write};
use crate::{Assent, Principal, ServiceError, ServiceResult};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCategoryInput {
    pub personal: bool,
    pub names: BTreeMap<String, String>,
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeInput {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub data_categories: Vec<String>,
    #[serde(default)]
    pub sale_or_sharing: bool,
    #[serde(default)]
    pub targeted_advertising: bool,
    #[serde(default)]
    pub max_age_days: Option<u32>,
    #[serde(default)]
    pub condition_of_service: bool,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeInput {
    pub texts: BTreeMap<String, NoticeText>,
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub material: bool,
}

/// A purpose as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PurposeOut {
    pub id: PurposeId,
    pub model: ConsentModel,
    pub data_categories: Vec<DataCategoryId>,
    pub sale_or_sharing: bool,
    pub targeted_advertising: bool,
    pub max_age_days: Option<u32>,
    pub condition_of_service: bool,
    pub current_version: Option<u32>,
    pub versions: Vec<u32>,
}

impl From<&PurposeView> for PurposeOut {
    fn from(v: &PurposeView) -> Self {
        let p = &v.purpose;
        Self {
            id: p.id.clone(),
            model: p.model,
            data_categories: p.data_categories.clone(),
            sale_or_sharing: p.sale_or_sharing,
            targeted_advertising: p.targeted_advertising,
            max_age_days: p.max_age_days,
            condition_of_service: p.condition_of_service,
            current_version: v.current_version().map(|n| n.version),
            versions: v.versions.iter().map(|n| n.version).collect(),
        }
    }
}

/// A published notice version as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoticeVersionOut {
    pub purpose: PurposeId,
    pub version: u32,
    pub hash: String,
    pub published_at: assent_core::Timestamp,
    pub material: bool,
    pub model: ConsentModel,
    pub data_categories: Vec<DataCategoryId>,
    pub sale_or_sharing: bool,
    pub targeted_advertising: bool,
    pub texts: BTreeMap<Language, NoticeText>,
    pub recipients: Vec<Recipient>,
    pub retention_days: Option<u32>,
    /// On publication: why the version was found to be material, when it was.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub material_reasons: Vec<String>,
    /// On publication: what the lint would have the notice's authors improve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Finding>,
}

impl From<&NoticeVersion> for NoticeVersionOut {
    fn from(v: &NoticeVersion) -> Self {
        Self {
            purpose: v.purpose.clone(),
            version: v.version,
            hash: v.hash.to_string(),
            published_at: v.published_at,
            material: v.content.material,
            model: v.model,
            data_categories: v.data_categories.clone(),
            sale_or_sharing: v.sale_or_sharing,
            targeted_advertising: v.targeted_advertising,
            texts: v.content.texts.clone(),
            recipients: v.content.recipients.clone(),
            retention_days: v.content.retention_days,
            material_reasons: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

fn parse_language_map<T: Clone>(
    raw: &BTreeMap<String, T>,
    field: &str,
    errors: &mut ValidationErrors,
) -> BTreeMap<Language, T> {
    let mut out = BTreeMap::new();
    for (lang, value) in raw {
        match Language::parse(lang) {
            Ok(l) => {
                out.insert(l, value.clone());
            }
            Err(e) => errors.push(format!("{field}.{lang}"), e),
        }
    }
    out
}

pub(crate) fn parse_model(raw: Option<&str>) -> Result<ConsentModel, String> {
    match raw {
        None | Some("opt-in") => Ok(ConsentModel::OptIn),
        Some("opt-out") => Ok(ConsentModel::OptOut),
        Some("necessary") => Ok(ConsentModel::Necessary),
        Some(other) => Err(format!("model `{other}` must be `opt-in`, `opt-out` or `necessary`")),
    }
}

impl<S: Store> Assent<S> {
    pub fn data_categories(&self, principal: &Principal) -> ServiceResult<Vec<DataCategory>> {
        principal.require(Scope::Catalog)?;
        Ok(principal.controller.catalog().data_categories.values().cloned().collect())
    }

    pub async fn put_data_category(
        &self,
        principal: &Principal,
        id: &str,
        input: DataCategoryInput,
    ) -> ServiceResult<DataCategory> {
        principal.require(Scope::Catalog)?;
        let handle = &principal.controller;
        let _guard = handle.catalog_writes.lock().await;
        let mut errors = ValidationErrors::default();
        let id = assent_core::id::parse_field(&mut errors, "id", id, DataCategoryId::parse);
        let names = parse_language_map(&input.names, "names", &mut errors);
        let descriptions = parse_language_map(&input.descriptions, "descriptions", &mut errors);
        for language in &read(&handle.info).languages {
            if names.get(language).is_none_or(|n| n.trim().is_empty()) {
                errors.push(format!("names.{language}"), "is required and must not be empty");
            }
        }
        let catalog = handle.catalog();
        if let Some(id) = &id
            && input.personal
        {
            for view in catalog.purposes.values() {
                if view.purpose.model == ConsentModel::OptOut && view.purpose.data_categories.contains(id) {
                    errors.push(
                        "personal",
                        format!(
                            "opt-out purpose `{}` uses this category; personal data must be opt-in",
                            view.purpose.id
                        ),
                    );
                }
            }
        }
        let Some(id) = id else {
            return Err(errors.into());
        };
        errors.into_result(())?;
        let category = DataCategory { id: id.clone(), personal: input.personal, names, descriptions };
        self.store.put_data_category(handle.id(), category.clone()).await?;
        let mut next = (*catalog).clone();
        next.data_categories.insert(id, category.clone());
        *write(&handle.catalog) = Arc::new(next);
        Ok(category)
    }

    pub fn purposes(&self, principal: &Principal) -> ServiceResult<Vec<PurposeOut>> {
        principal.require(Scope::Catalog)?;
        Ok(principal.controller.catalog().purposes.values().map(PurposeOut::from).collect())
    }

    pub fn purpose(&self, principal: &Principal, id: &str) -> ServiceResult<PurposeOut> {
        principal.require(Scope::Catalog)?;
        let catalog = principal.controller.catalog();
        PurposeId::parse(id)
            .ok()
            .and_then(|id| catalog.purposes.get(&id).map(PurposeOut::from))
            .ok_or_else(|| ServiceError::NotFound(format!("purpose `{id}`")))
    }

    pub fn notice_version(&self, principal: &Principal, id: &str, version: u32) -> ServiceResult<NoticeVersionOut> {
        principal.require(Scope::Catalog)?;
        let catalog = principal.controller.catalog();
        PurposeId::parse(id)
            .ok()
            .and_then(|id| catalog.purposes.get(&id).and_then(|p| p.version(version)).map(NoticeVersionOut::from))
            .ok_or_else(|| ServiceError::NotFound(format!("version {version} of purpose `{id}`")))
    }

    pub async fn put_purpose(&self, principal: &Principal, id: &str, input: PurposeInput) -> ServiceResult<PurposeOut> {
        principal.require(Scope::Catalog)?;
        let handle = &principal.controller;
        let _guard = handle.catalog_writes.lock().await;
        let mut errors = ValidationErrors::default();
        let id = assent_core::id::parse_field(&mut errors, "id", id, PurposeId::parse);
        let model =
            assent_core::id::parse_field(&mut errors, "model", input.model.as_deref().unwrap_or("opt-in"), |m| {
                parse_model(Some(m))
            });
        let mut categories = Vec::new();
        for (i, raw) in input.data_categories.iter().enumerate() {
            if let Some(c) =
                assent_core::id::parse_field(&mut errors, &format!("data_categories[{i}]"), raw, DataCategoryId::parse)
                && !categories.contains(&c)
            {
                categories.push(c);
            }
        }
        let (Some(id), Some(model)) = (id, model) else {
            return Err(errors.into());
        };
        errors.into_result(())?;
        let purpose = Purpose {
            id: id.clone(),
            model,
            data_categories: categories,
            sale_or_sharing: input.sale_or_sharing,
            targeted_advertising: input.targeted_advertising,
            max_age_days: input.max_age_days,
            condition_of_service: input.condition_of_service,
        };
        let catalog = handle.catalog();
        purpose.validate(&catalog.data_categories)?;
        self.store.put_purpose(handle.id(), purpose.clone()).await?;
        let mut next: CatalogView = (*catalog).clone();
        let versions = next.purposes.remove(&id).map(|v| v.versions).unwrap_or_default();
        let view = PurposeView { purpose, versions };
        let out = PurposeOut::from(&view);
        next.purposes.insert(id, view);
        *write(&handle.catalog) = Arc::new(next);
        Ok(out)
    }

    /// Publishes the next notice version of a purpose. The publication is a ledger entry, so
    /// the text a customer agreed to is anchored in the same log as their choice.
    pub async fn publish_notice(
        &self,
        principal: &Principal,
        id: &str,
        input: NoticeInput,
    ) -> ServiceResult<NoticeVersionOut> {
        principal.require(Scope::Catalog)?;
        let handle = &principal.controller;
        let _guard = handle.catalog_writes.lock().await;
        let catalog = handle.catalog();
        let view = PurposeId::parse(id)
            .ok()
            .and_then(|id| catalog.purposes.get(&id))
            .ok_or_else(|| ServiceError::NotFound(format!("purpose `{id}`")))?;
        let mut errors = ValidationErrors::default();
        let texts = parse_language_map(&input.texts, "texts", &mut errors);
        let mut content = NoticeContent {
            texts,
            recipients: input.recipients,
            retention_days: input.retention_days,
            material: input.material,
        };
        if let Err(e) = content.validate() {
            errors.extend(e);
        }
        let (languages, profiles) = {
            let info = read(&handle.info);
            (info.languages.clone(), Profile::from_names(&info.profiles))
        };
        let others = other_titles(&catalog, &view.purpose.id);
        let report = lint_with(&catalog, view, &content, &others, &languages, &profiles, &self.lint_options());
        for finding in report.iter().filter(|f| f.severity == Severity::Error) {
            errors.push_coded(finding.code, finding.field.clone(), finding.message.clone());
        }
        errors.into_result(())?;
        // A change that matters to the customer is material whether or not its author said so.
        let material_reasons =
            view.current_version().map(|prev| material_changes(prev, &view.purpose, &content)).unwrap_or_default();
        content.material |= !material_reasons.is_empty();
        let number = view.current_version().map_or(1, |v| v.version + 1);
        let published = NoticeVersion::publish(&view.purpose, number, content, self.now());
        let controller = handle.id();
        let entry = NewEntry::new(
            LedgerEntry::Notice(NoticePublication {
                controller: controller.clone(),
                purpose: published.purpose.clone(),
                version: number,
                hash: published.hash,
                published_at: published.published_at,
            }),
            None,
        );
        self.store
            .append_owned(AppendBatch {
                controller,
                new_subjects: vec![],
                entries: vec![entry],
                notice_versions: vec![published.clone()],
                idempotency: None,
                erase_subject: None,
            })
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists(what) => {
                    ServiceError::Conflict(format!("{what} was published concurrently; retry"))
                }
                other => other.into(),
            })?;
        let mut next: CatalogView = (*catalog).clone();
        if let Some(v) = next.purposes.get_mut(&published.purpose) {
            v.versions.push(published.clone());
        }
        *write(&handle.catalog) = Arc::new(next);
        let warnings = report.into_iter().filter(|f| f.severity == Severity::Warning).collect();
        Ok(NoticeVersionOut { material_reasons, warnings, ..NoticeVersionOut::from(&published) })
    }
}

/// The controller's other purposes with their current titles, for the bundling rule.
fn other_titles(catalog: &CatalogView, except: &PurposeId) -> Vec<(PurposeId, Vec<String>)> {
    catalog
        .purposes
        .values()
        .filter(|other| &other.purpose.id != except)
        .map(|other| {
            let titles = other.current_version().map(|v| v.content.texts.values().map(|t| t.title.clone()).collect());
            (other.purpose.id.clone(), titles.unwrap_or_default())
        })
        .collect()
}

/// Lints `content` as the next notice of `view`'s purpose, in the context of `catalog`.
pub(crate) fn lint_with(
    catalog: &CatalogView,
    view: &PurposeView,
    content: &NoticeContent,
    other_purposes: &[(PurposeId, Vec<String>)],
    languages: &[Language],
    profiles: &[Profile],
    options: &LintOptions,
) -> Vec<Finding> {
    lint_notice(
        &NoticeDraft {
            purpose: &view.purpose,
            content,
            categories: &catalog.data_categories,
            other_purposes,
            languages,
            profiles,
        },
        options,
    )
}
