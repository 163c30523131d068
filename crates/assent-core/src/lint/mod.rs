//! Notice lint: stops notices that would not tell the customer the truth before anyone sees them.
//!
//! A finding is an error (publishing is refused) or a warning (published, but someone should
//! rewrite it). Some rules always apply; others come from the jurisdiction profiles the
//! controller declares. `docs/profiles.md` gives the legal source of every rule.

pub mod readability;

use std::collections::BTreeMap;

use crate::catalog::{ConsentModel, DataCategory, NoticeContent, NoticeText, NoticeVersion, Purpose};
use crate::id::{DataCategoryId, Language, PurposeId};

/// A body of law a controller declares itself bound by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    /// Maine, 35-A M.R.S. §9301: opt-in for customer personal information, no penalty or
    /// incentive for the choice.
    UsMeIsp,
    /// GDPR: consent specific per purpose, as easy to withdraw as to give, refreshed.
    EuGdpr,
    /// California CCPA/CPRA: GPC opts out of sale and sharing, which notices must disclose.
    UsCaCpra,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::UsMeIsp, Profile::EuGdpr, Profile::UsCaCpra];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsMeIsp => "us-me-isp",
            Self::EuGdpr => "eu-gdpr",
            Self::UsCaCpra => "us-ca-cpra",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown profile `{s}`; known: {}", known.join(", "))
        })
    }

    /// Parses the names a controller stores, ignoring unknown ones (they were refused when
    /// stored, so there are none).
    pub fn from_names(names: &[String]) -> Vec<Profile> {
        names.iter().filter_map(|n| Self::parse(n).ok()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a notice: a stable code, the field, and a sentence saying how to fix it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LintOptions {
    /// Warn below this readability score (Flesch for English, Fernández-Huerta for Spanish).
    pub min_readability: f64,
    /// Warn when one text field is longer than this many words.
    pub max_field_words: u32,
    /// Warn when one language's notice is longer than this many words in all.
    pub max_notice_words: u32,
}

impl Default for LintOptions {
    /// 60 is where "plain language" starts on both scales.
    fn default() -> Self {
        Self { min_readability: 60.0, max_field_words: 60, max_notice_words: 250 }
    }
}

/// Everything the lint looks at for one notice about to be published.
#[derive(Debug, Clone, Copy)]
pub struct NoticeDraft<'a> {
    pub purpose: &'a Purpose,
    pub content: &'a NoticeContent,
    pub categories: &'a BTreeMap<DataCategoryId, DataCategory>,
    /// The controller's other purposes and their current titles, to catch one notice asking
    /// for several uses at once.
    pub other_purposes: &'a [(PurposeId, Vec<String>)],
    pub languages: &'a [Language],
    pub profiles: &'a [Profile],
}

/// Words that offer money for a yes. Maine forbids any financial incentive for consent.
const INCENTIVES: &[(&str, &str)] = &[
    ("en", "discount"),
    ("en", "% off"),
    ("en", "percent off"),
    ("en", "coupon"),
    ("en", "cash back"),
    ("en", "cashback"),
    ("en", "rebate"),
    ("en", "lower price"),
    ("en", "lower bill"),
    ("en", "cheaper"),
    ("en", "free month"),
    ("en", "reward points"),
    ("en", "$"),
    ("es", "descuento"),
    ("es", "% menos"),
    ("es", "cupón"),
    ("es", "reembolso"),
    ("es", "precio más bajo"),
    ("es", "factura más baja"),
    ("es", "más barato"),
    ("es", "rebaja"),
    ("es", "mes gratis"),
    ("es", "puntos de recompensa"),
    ("es", "$"),
];

/// Jargon customers do not read past, with plainer words to use instead.
const JARGON: &[(&str, &str, &str)] = &[
    ("en", "third parties", "name who gets the data, such as \"advertising partners like Acme Ads\""),
    ("en", "third-party", "name the company"),
    ("en", "legitimate interest", "say plainly why you use the data"),
    ("en", "processing", "say what you do: \"use\", \"store\", \"share\""),
    ("en", "pursuant to", "\"under\""),
    ("en", "affiliates", "name the companies"),
    ("en", "in accordance with", "\"under\""),
    ("en", "personally identifiable", "\"about you\""),
    ("en", "aggregate", "\"combined with other customers' data\""),
    ("en", "data subject", "\"you\""),
    ("es", "terceros", "diga quién recibe los datos, por ejemplo \"socios de publicidad como Acme Ads\""),
    ("es", "interés legítimo", "diga con palabras sencillas por qué usa los datos"),
    ("es", "tratamiento", "diga qué hace: \"usar\", \"guardar\", \"compartir\""),
    ("es", "de conformidad con", "\"según\""),
    ("es", "empresas afiliadas", "nombre las empresas"),
    ("es", "titular de los datos", "\"usted\""),
    ("es", "agregados", "\"combinados con datos de otros clientes\""),
];

/// Words that tell a customer their data is sold or shared (CPRA requires saying so).
const SALE_WORDS: &[(&str, &[&str])] = &[("en", &["sell", "sold", "share", "shared"]), ("es", &["vend", "compart"])];

fn error(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding { code, severity: Severity::Error, field: field.into(), message: message.into() }
}

fn warning(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding { code, severity: Severity::Warning, field: field.into(), message: message.into() }
}

fn contains_folded(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Whether `needle` occurs in `haystack` as whole words (not inside a longer word), ignoring case.
fn contains_phrase(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.to_lowercase(), needle.to_lowercase());
    let needle = needle.trim();
    if needle.is_empty() {
        return false;
    }
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack.get(..at).and_then(|s| s.chars().next_back());
        let after = haystack.get(at + needle.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Finds everything wrong with a notice before it is published. Errors come first.
pub fn lint_notice(draft: &NoticeDraft<'_>, options: &LintOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (purpose, content) = (draft.purpose, draft.content);
    let has = |p: Profile| draft.profiles.contains(&p);

    for language in draft.languages {
        let Some(text) = content.texts.get(language) else {
            // Each field is named, as the API contract promises for any missing text.
            for field in NoticeText::FIELDS {
                findings.push(error(
                    "language-missing",
                    format!("texts.{language}.{field}"),
                    format!("write the notice in `{language}` too, `{field}` included: every customer reads it in their language"),
                ));
            }
            continue;
        };
        for field in NoticeText::FIELDS {
            if !text.field(field).trim().is_empty() {
                continue;
            }
            findings.push(if field == "benefit" {
                error(
                    "benefit-missing",
                    format!("texts.{language}.benefit"),
                    "say what the customer gets from this use of their data; if there is nothing, do not ask",
                )
            } else {
                error(
                    "language-missing",
                    format!("texts.{language}.{field}"),
                    format!(
                        "fill in `{field}` in `{language}`: every part of the notice is required in every language"
                    ),
                )
            });
        }
    }

    if purpose.model != ConsentModel::Necessary && purpose.data_categories.is_empty() {
        findings.push(error(
            "category-not-named",
            "data_categories",
            "list the data categories this purpose uses, so the notice can name them",
        ));
    }
    for (i, id) in purpose.data_categories.iter().enumerate() {
        let names = draft.categories.get(id).map(|c| &c.names);
        for language in draft.languages {
            if names.and_then(|n| n.get(language)).is_none_or(|n| n.trim().is_empty()) {
                findings.push(error(
                    "category-not-named",
                    format!("data_categories[{i}]"),
                    format!("give data category `{id}` a name in `{language}`"),
                ));
            }
        }
    }
    if content.recipients.is_empty() {
        findings.push(error(
            "recipient-not-named",
            "recipients",
            "name who receives the data (at least the company itself, with its role)",
        ));
    }
    if content.retention_days.is_none() {
        findings.push(error(
            "retention-missing",
            "retention_days",
            "say how many days the data is kept (`retention_days`), not only in words",
        ));
    }

    if purpose.model == ConsentModel::Necessary && (purpose.targeted_advertising || purpose.sale_or_sharing) {
        findings.push(error(
            "bundled-consent",
            "model",
            "advertising, sale or sharing is never necessary for the service: make it its own opt-in purpose",
        ));
    }
    for (language, text) in &content.texts {
        for (other, titles) in draft.other_purposes {
            if other == &purpose.id {
                continue;
            }
            // Ids are matched only when compound (`location-ads`): a plain id such as `ads` is
            // an ordinary word in prose. Titles are matched as whole phrases.
            let named = |t: &str| {
                (other.as_str().contains('-') && contains_phrase(t, other.as_str()))
                    || titles.iter().any(|title| title.split_whitespace().count() >= 2 && contains_phrase(t, title))
            };
            if let Some(field) = ["title", "how"].into_iter().find(|f| named(text.field(f))) {
                findings.push(error(
                    "bundled-consent",
                    format!("texts.{language}.{field}"),
                    format!("this notice also asks about purpose `{other}`: ask for each use separately"),
                ));
            }
        }
    }

    if purpose.condition_of_service {
        if has(Profile::UsMeIsp) {
            findings.push(error(
                "condition-of-service",
                "condition_of_service",
                "Maine forbids refusing service to a customer who says no: remove `condition_of_service`",
            ));
        } else if has(Profile::EuGdpr) {
            findings.push(warning(
                "condition-of-service",
                "condition_of_service",
                "GDPR consent tied to the service is rarely freely given: make the service work without it",
            ));
        }
    }
    if has(Profile::UsMeIsp) {
        for (language, text) in &content.texts {
            for field in NoticeText::FIELDS {
                let offer = INCENTIVES
                    .iter()
                    .filter(|(l, _)| *l == language.as_str())
                    .find(|(_, word)| contains_folded(text.field(field), word));
                if let Some((_, word)) = offer {
                    findings.push(error(
                        "incentive-offered",
                        format!("texts.{language}.{field}"),
                        format!(
                            "`{word}` offers money for a yes, which Maine forbids: say what the customer gets from \
                             the use itself"
                        ),
                    ));
                }
            }
        }
    }
    if has(Profile::UsCaCpra) && purpose.sale_or_sharing {
        for (language, text) in &content.texts {
            let Some((_, words)) = SALE_WORDS.iter().find(|(l, _)| *l == language.as_str()) else { continue };
            let says = words.iter().any(|w| contains_folded(&text.how, w) || contains_folded(&text.who, w));
            if !says {
                findings.push(error(
                    "sale-not-disclosed",
                    format!("texts.{language}.how"),
                    "this purpose sells or shares data: say so plainly in `how` or `who`",
                ));
            }
        }
    }

    for (language, text) in &content.texts {
        lint_language(&mut findings, language, text, options);
    }
    findings.sort_by_key(|f| f.severity);
    findings
}

/// Warnings about how a notice reads in one language.
fn lint_language(findings: &mut Vec<Finding>, language: &Language, text: &NoticeText, options: &LintOptions) {
    let body: Vec<&str> = ["what", "how", "benefit", "who", "retention"].iter().map(|f| text.field(f).trim()).collect();
    // Fields are read as sentences even when written without a final full stop.
    let joined = body
        .iter()
        .filter(|f| !f.is_empty())
        .map(|f| if f.ends_with(['.', '!', '?']) { (*f).to_owned() } else { format!("{f}.") })
        .collect::<Vec<_>>()
        .join(" ");
    let (score, scale) = match language.as_str() {
        "en" => (readability::flesch_reading_ease(&joined), "Flesch reading ease"),
        "es" => (readability::fernandez_huerta(&joined), "Fernández-Huerta"),
        _ => (None, ""),
    };
    if let Some(score) = score.filter(|s| *s < options.min_readability) {
        findings.push(warning(
            "readability",
            format!("texts.{language}"),
            format!(
                "reads at {score:.0} on the {scale} scale (plain language is {:.0} or more): use shorter \
                 sentences and everyday words",
                options.min_readability
            ),
        ));
    }
    for field in NoticeText::FIELDS {
        for (_, term, instead) in JARGON.iter().filter(|(l, _, _)| *l == language.as_str()) {
            if contains_folded(text.field(field), term) {
                findings.push(warning(
                    "jargon",
                    format!("texts.{language}.{field}"),
                    format!("`{term}` is jargon: {instead}"),
                ));
            }
        }
        let words = word_count(text.field(field));
        if words > options.max_field_words {
            findings.push(warning(
                "too-long",
                format!("texts.{language}.{field}"),
                format!("{words} words; customers read about {} at most: cut it down", options.max_field_words),
            ));
        }
    }
    let total: u32 = NoticeText::FIELDS.iter().map(|f| word_count(text.field(f))).sum();
    if total > options.max_notice_words {
        findings.push(warning(
            "too-long",
            format!("texts.{language}"),
            format!("{total} words in all; keep the whole notice under {} words", options.max_notice_words),
        ));
    }
}

fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Why publishing `content` as the next version of `purpose` after `previous` changes what the
/// customer agreed to: new data, new recipients, new uses or longer keeping. Empty when
/// nothing material changed (wording alone is not material).
pub fn material_changes(previous: &NoticeVersion, purpose: &Purpose, content: &NoticeContent) -> Vec<String> {
    let mut reasons = Vec::new();
    for category in purpose.data_categories.iter().filter(|c| !previous.data_categories.contains(c)) {
        reasons.push(format!("adds data category `{category}`"));
    }
    for recipient in content.recipients.iter().filter(|r| !previous.content.recipients.iter().any(|p| p.name == r.name))
    {
        reasons.push(format!("adds recipient `{}`", recipient.name));
    }
    if purpose.sale_or_sharing && !previous.sale_or_sharing {
        reasons.push("now sells or shares the data".to_owned());
    }
    if purpose.targeted_advertising && !previous.targeted_advertising {
        reasons.push("now uses the data for targeted advertising".to_owned());
    }
    if purpose.model == ConsentModel::Necessary && previous.model != ConsentModel::Necessary {
        reasons.push("now treats the use as necessary for the service".to_owned());
    }
    match (previous.content.retention_days, content.retention_days) {
        (Some(before), Some(after)) if after > before => {
            reasons.push(format!("keeps the data longer: {after} days instead of {before}"));
        }
        (Some(before), None) => reasons.push(format!("no longer limits how long the data is kept (was {before} days)")),
        _ => {}
    }
    reasons
}

#[cfg(test)]
mod tests;
