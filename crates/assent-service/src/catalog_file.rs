//! Catalog as code: one reviewed file describing a controller's categories, purposes and
//! current notices, applied through the same service calls as the API.

use std::collections::BTreeMap;

use assent_core::catalog::{NoticeContent, NoticeVersion};
use assent_core::{Language, Purpose};
use assent_store::Store;

use crate::catalog::{DataCategoryInput, NoticeInput, PurposeInput};
use crate::{Assent, Principal, ServiceError, ServiceResult};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub controller: ControllerSection,
    #[serde(default)]
    pub data_categories: Vec<CategorySection>,
    #[serde(default)]
    pub purposes: Vec<PurposeSection>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSection {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySection {
    pub id: String,
    pub personal: bool,
    pub names: BTreeMap<String, String>,
    #[serde(default)]
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

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeSection {
    pub id: String,
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
        }
    }
}

/// What applying a catalog changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub controller_created: bool,
    pub published: Vec<(String, u32)>,
}

impl<S: Store> Assent<S> {
    /// Applies `file`: creates the controller if needed, upserts categories and purposes, and
    /// publishes a new notice version only where the text differs from the current one, so
    /// applying the same file twice changes nothing.
    pub async fn apply_catalog(&self, file: &CatalogFile) -> ServiceResult<ApplyReport> {
        let mut report = ApplyReport::default();
        let id = assent_core::ControllerId::parse(&file.controller.id)
            .map_err(|e| ServiceError::invalid("controller.id", e))?;
        if self.store().controller(id.clone()).await?.is_none() {
            self.create_controller(
                &file.controller.id,
                &file.controller.name,
                &file.controller.languages,
                &file.controller.profiles,
            )
            .await?;
            report.controller_created = true;
        }
        let principal = self.system_principal(&id).await?;
        for (i, c) in file.data_categories.iter().enumerate() {
            self.put_data_category(&principal, &c.id, c.body())
                .await
                .map_err(|e| prefix(e, &format!("data_categories[{i}]")))?;
        }
        for (i, p) in file.purposes.iter().enumerate() {
            self.put_purpose(&principal, &p.id, p.body()).await.map_err(|e| prefix(e, &format!("purposes[{i}]")))?;
            if !self.notice_is_current(&principal, &p.id, &p.notice) {
                let published = self
                    .publish_notice(&principal, &p.id, p.notice.clone())
                    .await
                    .map_err(|e| prefix(e, &format!("purposes[{i}].notice")))?;
                report.published.push((p.id.clone(), published.version));
            }
        }
        Ok(report)
    }

    fn notice_is_current(&self, principal: &Principal, purpose: &str, notice: &NoticeInput) -> bool {
        let catalog = principal.controller.catalog();
        let Some(view) = assent_core::PurposeId::parse(purpose).ok().and_then(|id| catalog.purposes.get(&id).cloned())
        else {
            return false;
        };
        let Some(current) = view.current_version() else {
            return false;
        };
        let texts: Option<BTreeMap<Language, _>> =
            notice.texts.iter().map(|(l, t)| Language::parse(l).ok().map(|l| (l, t.clone()))).collect();
        let Some(texts) = texts else { return false };
        let content = NoticeContent {
            texts,
            recipients: notice.recipients.clone(),
            retention_days: notice.retention_days,
            material: notice.material,
        };
        let purpose: &Purpose = &view.purpose;
        NoticeVersion::content_hash(purpose, current.version, &content) == current.hash
    }
}

fn prefix(e: ServiceError, at: &str) -> ServiceError {
    match e {
        ServiceError::Invalid(errors) => ServiceError::Invalid(errors.prefixed(at)),
        other => other,
    }
}
