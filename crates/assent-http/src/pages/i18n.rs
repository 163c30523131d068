//! Translations: every word on the customer's pages comes from `i18n/<lang>.toml`.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Languages the pages speak, the first being the fallback.
pub const LANGUAGES: [&str; 2] = ["en", "es"];

const SOURCES: [(&str, &str); 2] =
    [("en", include_str!("../../i18n/en.toml")), ("es", include_str!("../../i18n/es.toml"))];

fn catalogs() -> &'static HashMap<&'static str, HashMap<String, String>> {
    static CATALOGS: OnceLock<HashMap<&'static str, HashMap<String, String>>> = OnceLock::new();
    CATALOGS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(lang, text)| (*lang, toml::from_str::<HashMap<String, String>>(text).unwrap_or_default()))
            .collect()
    })
}

/// The words of one language.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: &'static str,
}

impl Tr {
    pub fn new(lang: &str) -> Self {
        Self { lang: LANGUAGES.into_iter().find(|l| *l == lang).unwrap_or("en") }
    }

    /// The text for `key`; a missing key shows as itself, and a test fails on it.
    pub fn get(&self, key: &str) -> String {
        catalogs().get(self.lang).and_then(|c| c.get(key)).cloned().unwrap_or_else(|| key.to_owned())
    }
}

/// Every language's keys, for the completeness test.
pub fn keys(lang: &str) -> Vec<String> {
    let mut keys: Vec<String> = catalogs().get(lang).map(|c| c.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

/// Picks the language: an explicit choice, then the remembered one, then the browser's.
pub fn negotiate(query: Option<&str>, cookie: Option<&str>, accept_language: Option<&str>) -> &'static str {
    let supported = |l: &str| LANGUAGES.into_iter().find(|s| l.eq_ignore_ascii_case(s));
    if let Some(l) = query.and_then(supported).or_else(|| cookie.and_then(supported)) {
        return l;
    }
    accept_language
        .into_iter()
        .flat_map(|h| h.split(','))
        .filter_map(|part| part.split(';').next())
        .filter_map(|tag| supported(tag.trim().split('-').next().unwrap_or_default()))
        .next()
        .unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_key_and_no_empty_text() {
        let en = keys("en");
        assert!(en.len() > 20);
        for lang in LANGUAGES {
            assert_eq!(keys(lang), en, "keys of `{lang}` differ from English");
            for key in &en {
                assert!(!Tr::new(lang).get(key).trim().is_empty(), "`{lang}.{key}` is empty");
            }
        }
    }

    #[test]
    fn language_comes_from_choice_then_memory_then_browser() {
        assert_eq!(negotiate(Some("es"), Some("en"), Some("en")), "es");
        assert_eq!(negotiate(None, Some("es"), Some("en")), "es");
        assert_eq!(negotiate(None, None, Some("es-MX,es;q=0.9,en;q=0.5")), "es");
        assert_eq!(negotiate(None, None, Some("fr-FR, de")), "en");
        assert_eq!(negotiate(Some("xx"), None, None), "en");
    }
}
