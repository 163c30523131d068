//! Catalog as code: one reviewed file describing a controller's categories, purposes and
//! current notices. `plan` compares it with what is stored and lints every notice it would
//! publish; `apply` carries the plan out through the same service calls as the API; `export`
//! writes the stored catalog back in the same form, so the file and the server can round-trip.

use std::collections::BTreeMap;

use assent_core::catalog::{NoticeContent, NoticeVersion};
use assent_core::lint::{Finding, LintOptions, Profile, Severity, material_changes};
use assent_core::{ControllerId, DataCategory, DataCategoryId, Language, Purpose, PurposeId, ValidationErrors};
use assent_store::Store;

use crate::admin::ControllerPatch;
use crate::catalog::{DataCategoryInput, NoticeInput, PurposeInput, lint_with};
use crate::memory::{CatalogView, PurposeView, read};
use crate::{Assent, DEFAULT_LANGUAGES, ServiceError, ServiceResult};

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub controller: ControllerSection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_categories: Vec<CategorySection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeSection>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSection {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySection {
    pub id: String,
    pub personal: bool,
    pub names: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
}

impl CategorySection {
    fn body(&self) -> DataCategoryInput {
        DataCategoryInput {
            personal: self.personal,
            names: self.names.clone(),
            descriptions: self.descriptions.clone(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeSection {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub data_categories: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sale_or_sharing: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub targeted_advertising: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub condition_of_service: bool,
    pub notice: NoticeInput,
}

impl PurposeSection {
    fn body(&self) -> PurposeInput {
        PurposeInput {
            model: self.model.clone(),
            data_categories: self.data_categories.clone(),
            sale_or_sharing: self.sale_or_sharing,
            targeted_advertising: self.targeted_advertising,
            max_age_days: self.max_age_days,
            condition_of_service: self.condition_of_service,
        }
    }
}

impl CatalogFile {
    /// Reads a catalog file; the error names the line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().replace('\n', " ").trim().to_owned())
    }

    /// The file's text, in the same form `parse` reads.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    fn languages(&self, errors: &mut ValidationErrors) -> Vec<Language> {
        let raw: Vec<String> = if self.controller.languages.is_empty() {
            DEFAULT_LANGUAGES.iter().map(|l| (*l).to_owned()).collect()
        } else {
            self.controller.languages.clone()
        };
        raw.iter()
            .enumerate()
            .filter_map(|(i, l)| {
                assent_core::id::parse_field(errors, &format!("controller.languages[{i}]"), l, Language::parse)
            })
            .collect()
    }

    fn profiles(&self, errors: &mut ValidationErrors) -> Vec<Profile> {
        self.controller
            .profiles
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                assent_core::id::parse_field(errors, &format!("controller.profiles[{i}]"), p, Profile::parse)
            })
            .collect()
    }
}

/// The file as core types: what the controller's catalog would be once it is applied.
struct Desired {
    categories: Vec<DataCategory>,
    purposes: Vec<(Purpose, NoticeContent)>,
    languages: Vec<Language>,
    profiles: Vec<Profile>,
}

fn language_map<T: Clone>(
    raw: &BTreeMap<String, T>,
    field: &str,
    errors: &mut ValidationErrors,
) -> BTreeMap<Language, T> {
    raw.iter()
        .filter_map(|(l, v)| {
            assent_core::id::parse_field(errors, &format!("{field}.{l}"), l, Language::parse).map(|l| (l, v.clone()))
        })
        .collect()
}

fn desired(file: &CatalogFile) -> Result<Desired, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    assent_core::id::parse_field(&mut errors, "controller.id", &file.controller.id, ControllerId::parse);
    let languages = file.languages(&mut errors);
    let profiles = file.profiles(&mut errors);
    let mut categories = Vec::new();
    for (i, c) in file.data_categories.iter().enumerate() {
        let at = format!("data_categories[{i}]");
        let id = assent_core::id::parse_field(&mut errors, &format!("{at}.id"), &c.id, DataCategoryId::parse);
        let names = language_map(&c.names, &format!("{at}.names"), &mut errors);
        let descriptions = language_map(&c.descriptions, &format!("{at}.descriptions"), &mut errors);
        if let Some(id) = id {
            categories.push(DataCategory { id, personal: c.personal, names, descriptions });
        }
    }
    let known: BTreeMap<_, _> = categories.iter().map(|c| (c.id.clone(), c.clone())).collect();
    let mut purposes = Vec::new();
    for (i, p) in file.purposes.iter().enumerate() {
        let at = format!("purposes[{i}]");
        let id = assent_core::id::parse_field(&mut errors, &format!("{at}.id"), &p.id, PurposeId::parse);
        let model = assent_core::id::parse_field(
            &mut errors,
            &format!("{at}.model"),
            p.model.as_deref().unwrap_or("opt-in"),
            |m| crate::catalog::parse_model(Some(m)),
        );
        let data_categories: Vec<DataCategoryId> = p
            .data_categories
            .iter()
            .enumerate()
            .filter_map(|(j, c)| {
                assent_core::id::parse_field(
                    &mut errors,
                    &format!("{at}.data_categories[{j}]"),
                    c,
                    DataCategoryId::parse,
                )
            })
            .collect();
        let texts = language_map(&p.notice.texts, &format!("{at}.notice.texts"), &mut errors);
        let (Some(id), Some(model)) = (id, model) else { continue };
        let purpose = Purpose {
            id,
            model,
            data_categories,
            sale_or_sharing: p.sale_or_sharing,
            targeted_advertising: p.targeted_advertising,
            max_age_days: p.max_age_days,
            condition_of_service: p.condition_of_service,
        };
        if let Err(e) = purpose.validate(&known) {
            errors.extend(e.prefixed(&at));
        }
        let content = NoticeContent {
            texts,
            recipients: p.notice.recipients.clone(),
            retention_days: p.notice.retention_days,
            material: p.notice.material,
        };
        if let Err(e) = content.validate() {
            errors.extend(e.prefixed(&format!("{at}.notice")));
        }
        purposes.push((purpose, content));
    }
    errors.into_result(Desired { categories, purposes, languages, profiles })
}

/// Whether `current` already says what `content` says about `purpose`. The material flag is
/// left out: it may have been set by detection rather than written in the file.
fn notice_matches(current: &NoticeVersion, purpose: &Purpose, content: &NoticeContent) -> bool {
    current.content.texts == content.texts
        && current.content.recipients == content.recipients
        && current.content.retention_days == content.retention_days
        && current.model == purpose.model
        && current.data_categories == purpose.data_categories
        && current.sale_or_sharing == purpose.sale_or_sharing
        && current.targeted_advertising == purpose.targeted_advertising
}

/// Lints every notice in `desired` against the catalog it would produce. `base` is what is
/// stored now (other purposes' current titles count when looking for bundled consent).
fn lint_desired(desired: &Desired, base: &CatalogView, options: &LintOptions) -> Vec<(String, Finding)> {
    let mut prospective = base.clone();
    for c in &desired.categories {
        prospective.data_categories.insert(c.id.clone(), c.clone());
    }
    for (p, _) in &desired.purposes {
        let versions = prospective.purposes.remove(&p.id).map(|v| v.versions).unwrap_or_default();
        prospective.purposes.insert(p.id.clone(), PurposeView { purpose: p.clone(), versions });
    }
    // Titles as the file will make them, for purposes the file describes.
    let mut titles: BTreeMap<PurposeId, Vec<String>> = prospective
        .purposes
        .values()
        .map(|v| {
            let t = v.current_version().map(|n| n.content.texts.values().map(|t| t.title.clone()).collect());
            (v.purpose.id.clone(), t.unwrap_or_default())
        })
        .collect();
    for (p, content) in &desired.purposes {
        titles.insert(p.id.clone(), content.texts.values().map(|t| t.title.clone()).collect());
    }
    let mut findings = Vec::new();
    for (i, (purpose, content)) in desired.purposes.iter().enumerate() {
        let Some(view) = prospective.purposes.get(&purpose.id) else { continue };
        let others: Vec<(PurposeId, Vec<String>)> =
            titles.iter().filter(|(id, _)| **id != purpose.id).map(|(id, t)| (id.clone(), t.clone())).collect();
        for finding in lint_with(&prospective, view, content, &others, &desired.languages, &desired.profiles, options) {
            let field = match finding.field.as_str() {
                f if f.starts_with("texts") || f.starts_with("recipients") || f.starts_with("retention") => {
                    format!("purposes[{i}].notice.{f}")
                }
                f => format!("purposes[{i}].{f}"),
            };
            findings.push((purpose.id.to_string(), Finding { field, ..finding }));
        }
    }
    findings
}

/// Lints every notice of a catalog file on its own, as `assent lint` does: no stored state.
pub fn lint_file(file: &CatalogFile, options: &LintOptions) -> Result<Vec<(String, Finding)>, ValidationErrors> {
    let desired = desired(file)?;
    Ok(lint_desired(&desired, &CatalogView::default(), options))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
}

/// One thing applying the file would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedChange {
    pub kind: ChangeKind,
    /// Such as "purpose `ads`" or "notice `ads` version 2".
    pub what: String,
    /// What differs, or why a new notice version is material.
    pub details: Vec<String>,
    /// A new notice version that makes earlier grants ask again.
    pub material: bool,
}

/// What applying a catalog file would change, and what its lint found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    pub controller: String,
    pub changes: Vec<PlannedChange>,
    pub unchanged: usize,
    /// Lint findings for the notices the plan would publish, by purpose.
    pub findings: Vec<(String, Finding)>,
}

impl Plan {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|(_, f)| f.severity == Severity::Error)
    }

    /// The plan as people read it, one change per line, then the findings and a summary.
    pub fn render(&self) -> String {
        let mut out = format!("Plan for controller `{}`:\n", self.controller);
        for c in &self.changes {
            let mark = match c.kind {
                ChangeKind::Create => '+',
                ChangeKind::Update => '~',
            };
            let details = if c.details.is_empty() { String::new() } else { format!(" ({})", c.details.join("; ")) };
            let material = if c.material { " [material: earlier grants will be asked again]" } else { "" };
            out.push_str(&format!("  {mark} {}{details}{material}\n", c.what));
        }
        if self.unchanged > 0 {
            out.push_str(&format!("  = {} unchanged\n", self.unchanged));
        }
        for (_, f) in &self.findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{severity}[{}] {}: {}\n", f.code, f.field, f.message));
        }
        let count = |k: ChangeKind| self.changes.iter().filter(|c| c.kind == k).count();
        let material = self.changes.iter().filter(|c| c.material).count();
        out.push_str(&format!(
            "{} to create, {} to change, {} material.\n",
            count(ChangeKind::Create),
            count(ChangeKind::Update),
            material
        ));
        out
    }
}

fn differences<T: PartialEq + std::fmt::Debug>(out: &mut Vec<String>, name: &str, before: &T, after: &T) {
    if before != after {
        out.push(format!("{name}: {before:?} → {after:?}"));
    }
}

impl<S: Store> Assent<S> {
    /// What applying `file` would change. Writes nothing.
    pub async fn plan_catalog(&self, file: &CatalogFile) -> ServiceResult<Plan> {
        let desired = desired(file)?;
        let id = ControllerId::parse(&file.controller.id).map_err(|e| ServiceError::invalid("controller.id", e))?;
        let mut plan = Plan { controller: id.to_string(), ..Plan::default() };
        let existing = match self.store().controller(id.clone()).await? {
            Some(_) => Some(self.controller(&id).await?),
            None => None,
        };
        let base = existing.as_ref().map(|h| (*h.catalog()).clone()).unwrap_or_default();
        match &existing {
            None => plan.changes.push(PlannedChange {
                kind: ChangeKind::Create,
                what: format!("controller `{id}`"),
                details: vec![],
                material: false,
            }),
            Some(handle) => {
                let info = read(&handle.info).clone();
                let mut details = Vec::new();
                differences(&mut details, "name", &info.name, &file.controller.name);
                let languages: Vec<String> = desired.languages.iter().map(|l| l.to_string()).collect();
                let stored_languages: Vec<String> = info.languages.iter().map(|l| l.to_string()).collect();
                differences(&mut details, "languages", &stored_languages, &languages);
                differences(&mut details, "profiles", &info.profiles, &file.controller.profiles);
                push_change(&mut plan, format!("controller `{id}`"), details);
            }
        }
        for c in &desired.categories {
            match base.data_categories.get(&c.id) {
                None => plan.changes.push(created(format!("data category `{}`", c.id))),
                Some(stored) => {
                    let mut details = Vec::new();
                    differences(&mut details, "personal", &stored.personal, &c.personal);
                    if stored.names != c.names {
                        details.push("names".into());
                    }
                    if stored.descriptions != c.descriptions {
                        details.push("descriptions".into());
                    }
                    push_change(&mut plan, format!("data category `{}`", c.id), details);
                }
            }
        }
        for (purpose, content) in &desired.purposes {
            let stored = base.purposes.get(&purpose.id);
            match stored {
                None => plan.changes.push(created(format!("purpose `{}`", purpose.id))),
                Some(view) => {
                    let (s, mut details) = (&view.purpose, Vec::new());
                    differences(&mut details, "model", &s.model.as_str(), &purpose.model.as_str());
                    differences(&mut details, "data_categories", &s.data_categories, &purpose.data_categories);
                    differences(&mut details, "sale_or_sharing", &s.sale_or_sharing, &purpose.sale_or_sharing);
                    differences(
                        &mut details,
                        "targeted_advertising",
                        &s.targeted_advertising,
                        &purpose.targeted_advertising,
                    );
                    differences(&mut details, "max_age_days", &s.max_age_days, &purpose.max_age_days);
                    differences(
                        &mut details,
                        "condition_of_service",
                        &s.condition_of_service,
                        &purpose.condition_of_service,
                    );
                    push_change(&mut plan, format!("purpose `{}`", purpose.id), details);
                }
            }
            match stored.and_then(PurposeView::current_version) {
                Some(current) if notice_matches(current, purpose, content) => plan.unchanged += 1,
                Some(current) => {
                    let reasons = material_changes(current, purpose, content);
                    let material = content.material || !reasons.is_empty();
                    let mut details = reasons;
                    if content.material && details.is_empty() {
                        details.push("marked material in the file".into());
                    }
                    plan.changes.push(PlannedChange {
                        kind: ChangeKind::Create,
                        what: format!("notice `{}` version {}", purpose.id, current.version + 1),
                        details,
                        material,
                    });
                }
                None => plan.changes.push(created(format!("notice `{}` version 1", purpose.id))),
            }
        }
        let published: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.what.starts_with("notice `"))
            .filter_map(|c| c.what.split('`').nth(1).map(str::to_owned))
            .collect();
        plan.findings = lint_desired(&desired, &base, &self.lint_options())
            .into_iter()
            .filter(|(purpose, _)| published.contains(purpose))
            .collect();
        Ok(plan)
    }

    /// Applies `file` as planned: creates or updates the controller, categories and purposes,
    /// and publishes a notice version only where the notice changed, so applying the same file
    /// twice changes nothing. Refused, with nothing written, when the lint finds an error in a
    /// notice it would publish. With `dry_run`, only plans.
    pub async fn apply_catalog(&self, file: &CatalogFile, dry_run: bool) -> ServiceResult<Plan> {
        let plan = self.plan_catalog(file).await?;
        if plan.has_errors() {
            let mut errors = ValidationErrors::default();
            for (_, f) in plan.findings.iter().filter(|(_, f)| f.severity == Severity::Error) {
                errors.push_coded(f.code, f.field.clone(), f.message.clone());
            }
            return Err(errors.into());
        }
        if dry_run || plan.changes.is_empty() {
            return Ok(plan);
        }
        let id = ControllerId::parse(&file.controller.id).map_err(|e| ServiceError::invalid("controller.id", e))?;
        let desired = desired(file)?;
        let c = &file.controller;
        if self.store().controller(id.clone()).await?.is_none() {
            self.create_controller(&c.id, &c.name, &c.languages, &c.profiles).await?;
        } else {
            let principal = self.system_principal(&id).await?;
            // The file is the source of truth; left-out languages mean the defaults, as on create.
            let languages = desired.languages.iter().map(ToString::to_string).collect();
            let patch = ControllerPatch {
                name: Some(c.name.clone()),
                languages: Some(languages),
                profiles: Some(c.profiles.clone()),
                allowed_origins: None,
            };
            self.patch_controller(&principal, patch).await.map_err(|e| prefix(e, "controller"))?;
        }
        let principal = self.system_principal(&id).await?;
        for (i, c) in file.data_categories.iter().enumerate() {
            self.put_data_category(&principal, &c.id, c.body())
                .await
                .map_err(|e| prefix(e, &format!("data_categories[{i}]")))?;
        }
        for (i, (p, (purpose, content))) in file.purposes.iter().zip(&desired.purposes).enumerate() {
            self.put_purpose(&principal, &p.id, p.body()).await.map_err(|e| prefix(e, &format!("purposes[{i}]")))?;
            let catalog = principal.controller.catalog();
            let current = catalog.purposes.get(&purpose.id).and_then(PurposeView::current_version);
            if current.is_none_or(|v| !notice_matches(v, purpose, content)) {
                self.publish_notice(&principal, &p.id, p.notice.clone())
                    .await
                    .map_err(|e| prefix(e, &format!("purposes[{i}].notice")))?;
            }
        }
        Ok(plan)
    }

    /// The stored catalog of `controller` as a catalog file: each purpose with its current
    /// notice. Applying the result changes nothing.
    pub async fn export_catalog(&self, controller: &ControllerId) -> ServiceResult<CatalogFile> {
        let handle = self.controller(controller).await?;
        let info = read(&handle.info).clone();
        let catalog = handle.catalog();
        let data_categories = catalog
            .data_categories
            .values()
            .map(|c| CategorySection {
                id: c.id.to_string(),
                personal: c.personal,
                names: c.names.iter().map(|(l, n)| (l.to_string(), n.clone())).collect(),
                descriptions: c.descriptions.iter().map(|(l, n)| (l.to_string(), n.clone())).collect(),
            })
            .collect();
        let purposes = catalog
            .purposes
            .values()
            .filter_map(|view| {
                let p = &view.purpose;
                let current = view.current_version()?;
                Some(PurposeSection {
                    id: p.id.to_string(),
                    model: Some(p.model.as_str().to_owned()),
                    data_categories: p.data_categories.iter().map(ToString::to_string).collect(),
                    sale_or_sharing: p.sale_or_sharing,
                    targeted_advertising: p.targeted_advertising,
                    max_age_days: p.max_age_days,
                    condition_of_service: p.condition_of_service,
                    notice: NoticeInput {
                        texts: current.content.texts.iter().map(|(l, t)| (l.to_string(), t.clone())).collect(),
                        recipients: current.content.recipients.clone(),
                        retention_days: current.content.retention_days,
                        material: false,
                    },
                })
            })
            .collect();
        Ok(CatalogFile {
            controller: ControllerSection {
                id: info.id.to_string(),
                name: info.name.clone(),
                languages: info.languages.iter().map(ToString::to_string).collect(),
                profiles: info.profiles.clone(),
            },
            data_categories,
            purposes,
        })
    }
}

fn created(what: String) -> PlannedChange {
    PlannedChange { kind: ChangeKind::Create, what, details: vec![], material: false }
}

fn push_change(plan: &mut Plan, what: String, details: Vec<String>) {
    if details.is_empty() {
        plan.unchanged += 1;
    } else {
        plan.changes.push(PlannedChange { kind: ChangeKind::Update, what, details, material: false });
    }
}

fn prefix(e: ServiceError, at: &str) -> ServiceError {
    match e {
        ServiceError::Invalid(errors) => ServiceError::Invalid(errors.prefixed(at)),
        other => other,
    }
}
