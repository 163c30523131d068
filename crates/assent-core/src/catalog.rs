//! The catalog: what data is collected, for which purposes, and what the customer is told.

use std::collections::BTreeMap;
use std::fmt;

use crate::crypto::{Hash32, from_hex32, sha256, to_hex};
use crate::encoding::canonical_json;
use crate::error::ValidationErrors;
use crate::id::{DataCategoryId, Language, PurposeId};
use crate::time::Timestamp;

/// A kind of customer data. `personal` marks Maine's "customer personal information"
/// (sensitive data elsewhere): such data may only be used on an opt-in basis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataCategory {
    pub id: DataCategoryId,
    pub personal: bool,
    pub names: BTreeMap<Language, String>,
    #[serde(default)]
    pub descriptions: BTreeMap<Language, String>,
}

/// How consent works for a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentModel {
    /// Used only after a specific "yes". The default, and the only model for personal data.
    #[default]
    OptIn,
    /// Used unless the customer objects; only for non-personal data.
    OptOut,
    /// The service itself: listed for transparency, needs no consent.
    Necessary,
}

impl ConsentModel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt-in",
            Self::OptOut => "opt-out",
            Self::Necessary => "necessary",
        }
    }
}

/// One specific use of data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Purpose {
    pub id: PurposeId,
    pub model: ConsentModel,
    pub data_categories: Vec<DataCategoryId>,
    pub sale_or_sharing: bool,
    pub targeted_advertising: bool,
    /// A grant lapses this many days after it was given; `None` means it does not lapse
    /// (unless a profile sets a refresh period).
    pub max_age_days: Option<u32>,
    /// Marked when the controller would refuse service to a customer who says no. Maine
    /// forbids it; the lint says so.
    #[serde(default)]
    pub condition_of_service: bool,
}

impl Purpose {
    /// Checks the purpose against the controller's data categories. An opt-out purpose may not
    /// touch personal data: consent for personal data is always opt-in.
    pub fn validate(&self, categories: &BTreeMap<DataCategoryId, DataCategory>) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        for (i, id) in self.data_categories.iter().enumerate() {
            match categories.get(id) {
                None => errors.push(format!("data_categories[{i}]"), format!("unknown data category `{id}`")),
                Some(category) if category.personal && self.model == ConsentModel::OptOut => errors.push(
                    "model",
                    format!("an opt-out purpose may not use personal data category `{id}`; make it opt-in"),
                ),
                Some(_) => {}
            }
        }
        if self.max_age_days == Some(0) {
            errors.push("max_age_days", "must be at least 1 day, or left out");
        }
        errors.into_result(())
    }
}

/// What the customer is told about one purpose, in one language.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeText {
    #[serde(default)]
    pub title: String,
    /// What data is collected.
    #[serde(default)]
    pub what: String,
    /// How it is used.
    #[serde(default)]
    pub how: String,
    /// What the customer gets in return (never a price or discount).
    #[serde(default)]
    pub benefit: String,
    /// Who receives it.
    #[serde(default)]
    pub who: String,
    /// How long it is kept.
    #[serde(default)]
    pub retention: String,
}

impl NoticeText {
    pub const FIELDS: [&'static str; 6] = ["title", "what", "how", "benefit", "who", "retention"];

    pub fn field(&self, name: &str) -> &str {
        match name {
            "title" => &self.title,
            "what" => &self.what,
            "how" => &self.how,
            "benefit" => &self.benefit,
            "who" => &self.who,
            "retention" => &self.retention,
            _ => "",
        }
    }
}

/// Someone who receives the data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub name: String,
    pub role: String,
}

/// The content of a notice version as submitted for publication.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeContent {
    pub texts: BTreeMap<Language, NoticeText>,
    pub recipients: Vec<Recipient>,
    pub retention_days: Option<u32>,
    pub material: bool,
}

impl NoticeContent {
    /// Checks what the lint does not: every recipient has a name and a role. Whether the
    /// notice says enough, in every language, is the lint's job (`lint::lint_notice`).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        for (i, r) in self.recipients.iter().enumerate() {
            if r.name.trim().is_empty() {
                errors.push(format!("recipients[{i}].name"), "is required and must not be empty");
            }
            if r.role.trim().is_empty() {
                errors.push(format!("recipients[{i}].role"), "is required and must not be empty");
            }
        }
        errors.into_result(())
    }
}

/// `sha256:<hex>` of a notice version's canonical content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub Hash32);

impl ContentHash {
    pub fn parse(s: &str) -> Result<Self, String> {
        s.strip_prefix("sha256:")
            .and_then(from_hex32)
            .map(Self)
            .ok_or_else(|| format!("`{s}` is not a `sha256:<64 hex digits>` hash"))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", to_hex(&self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A published, immutable notice version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeVersion {
    pub purpose: PurposeId,
    pub version: u32,
    pub hash: ContentHash,
    pub published_at: Timestamp,
    /// The purpose's terms when this version was published: the notice describes them, so
    /// they are part of what the hash covers.
    pub model: ConsentModel,
    pub data_categories: Vec<DataCategoryId>,
    pub sale_or_sharing: bool,
    pub targeted_advertising: bool,
    pub content: NoticeContent,
}

impl NoticeVersion {
    /// Builds version `version` of `purpose` from `content`, hashing what the customer is shown.
    pub fn publish(purpose: &Purpose, version: u32, content: NoticeContent, published_at: Timestamp) -> Self {
        let hash = Self::content_hash(purpose, version, &content);
        Self {
            purpose: purpose.id.clone(),
            version,
            hash,
            published_at,
            model: purpose.model,
            data_categories: purpose.data_categories.clone(),
            sale_or_sharing: purpose.sale_or_sharing,
            targeted_advertising: purpose.targeted_advertising,
            content,
        }
    }

    /// PROTOCOL CONTRACT: the hash is SHA-256 over the RFC 8785 (JCS) form of
    /// `{purpose, version, model, data_categories, sale_or_sharing, targeted_advertising,
    /// texts, recipients, retention_days, material}`. Changing it breaks every stored hash.
    pub fn content_hash(purpose: &Purpose, version: u32, content: &NoticeContent) -> ContentHash {
        let value = serde_json::json!({
            "purpose": purpose.id,
            "version": version,
            "model": purpose.model,
            "data_categories": purpose.data_categories,
            "sale_or_sharing": purpose.sale_or_sharing,
            "targeted_advertising": purpose.targeted_advertising,
            "texts": content.texts,
            "recipients": content.recipients,
            "retention_days": content.retention_days,
            "material": content.material,
        });
        ContentHash(sha256(&canonical_json(&value)))
    }

    /// Whether this notice still describes `purpose`: it names every data category the purpose
    /// now uses, the same consent model, and any sale/sharing or targeted advertising. A grant
    /// of a notice that no longer covers its purpose no longer counts.
    pub fn covers(&self, purpose: &Purpose) -> bool {
        purpose.data_categories.iter().all(|c| self.data_categories.contains(c))
            && purpose.model == self.model
            && (!purpose.sale_or_sharing || self.sale_or_sharing)
            && (!purpose.targeted_advertising || self.targeted_advertising)
    }

    /// Recomputes the hash from the stored content; false means the stored notice was altered.
    pub fn hash_is_intact(&self) -> bool {
        let purpose = Purpose {
            id: self.purpose.clone(),
            model: self.model,
            data_categories: self.data_categories.clone(),
            sale_or_sharing: self.sale_or_sharing,
            targeted_advertising: self.targeted_advertising,
            max_age_days: None,
            condition_of_service: false,
        };
        Self::content_hash(&purpose, self.version, &self.content) == self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> NoticeText {
        NoticeText {
            title: s.into(),
            what: s.into(),
            how: s.into(),
            benefit: s.into(),
            who: s.into(),
            retention: s.into(),
        }
    }

    #[test]
    fn opt_out_purposes_may_not_use_personal_data() {
        let cat = DataCategory {
            id: DataCategoryId::parse("precise-location").unwrap(),
            personal: true,
            names: BTreeMap::new(),
            descriptions: BTreeMap::new(),
        };
        let categories = BTreeMap::from([(cat.id.clone(), cat)]);
        let purpose = Purpose {
            id: PurposeId::parse("analytics").unwrap(),
            model: ConsentModel::OptOut,
            data_categories: vec![DataCategoryId::parse("precise-location").unwrap()],
            sale_or_sharing: false,
            targeted_advertising: false,
            max_age_days: None,
            condition_of_service: false,
        };
        let errors = purpose.validate(&categories).unwrap_err();
        assert_eq!(errors.0[0].field, "model");
        let opt_in = Purpose { model: ConsentModel::OptIn, ..purpose };
        assert!(opt_in.validate(&categories).is_ok());
    }

    #[test]
    fn the_content_hash_changes_with_any_text() {
        let purpose = Purpose {
            id: PurposeId::parse("ads").unwrap(),
            model: ConsentModel::OptIn,
            data_categories: vec![],
            sale_or_sharing: false,
            targeted_advertising: true,
            max_age_days: None,
            condition_of_service: false,
        };
        let content = NoticeContent {
            texts: BTreeMap::from([(Language::parse("en").unwrap(), text("a"))]),
            recipients: vec![],
            retention_days: None,
            material: false,
        };
        let mut other = content.clone();
        other.texts.values_mut().for_each(|t| t.benefit = "b".into());
        let v1 = NoticeVersion::publish(&purpose, 1, content, Timestamp::from_unix_millis(0));
        let v1b = NoticeVersion::publish(&purpose, 1, other, Timestamp::from_unix_millis(0));
        assert_ne!(v1.hash, v1b.hash);
        assert!(v1.hash_is_intact());
    }
}
