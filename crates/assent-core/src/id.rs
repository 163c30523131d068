//! Validated identifiers. Each is built only through `parse`, so holding one proves it is valid.

use std::fmt;

use crate::error::ValidationErrors;

/// The longest subject id we accept, in bytes: long enough for any customer number, email or
/// UUID a controller uses, short enough to bound memory per customer.
pub const MAX_SUBJECT_ID_BYTES: usize = 256;
const MAX_SLUG_BYTES: usize = 64;

/// Checks `value` is a slug id (the invariant of every id type here) without allocating.
pub fn check_slug(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.len() > MAX_SLUG_BYTES {
        return Err(format!("{what} must be at most {MAX_SLUG_BYTES} characters"));
    }
    let valid_chars = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_well = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid_chars || !starts_well {
        return Err(format!(
            "{what} `{value}` must use lowercase letters, digits and `-`, starting with a letter or digit"
        ));
    }
    Ok(())
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// INVARIANT: only lowercase ASCII letters, digits and `-`, 1 to 64 bytes.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_slug(value, $what)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// The organisation that collects data; every record belongs to exactly one.
    ControllerId,
    "controller id"
);
slug_id!(
    /// One specific use of data, such as `ads-targeting`.
    PurposeId,
    "purpose id"
);
slug_id!(
    /// A kind of customer data, such as `precise-location`.
    DataCategoryId,
    "data category id"
);

/// The controller's own id for a customer. Opaque to Assent; it never enters the ledger's
/// hashed bytes (only a keyed pseudonym does), so it can be erased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SubjectId(String);

impl SubjectId {
    /// INVARIANT: 1 to 256 bytes of UTF-8 with no control characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("subject id must not be empty".into());
        }
        if value.len() > MAX_SUBJECT_ID_BYTES {
            return Err(format!("subject id must be at most {MAX_SUBJECT_ID_BYTES} bytes, got {}", value.len()));
        }
        if value.chars().any(char::is_control) {
            return Err("subject id must not contain control characters".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Subject ids are personal data: keep them out of logs and debug output.
impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectId(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for SubjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A language tag such as `en`, `es` or `es-MX` (a practical subset of BCP 47).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Language(String);

impl Language {
    /// INVARIANT: a 2–3 letter lowercase primary subtag, then optional `-` subtags of 2–8
    /// ASCII letters or digits.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut parts = value.split('-');
        let primary = parts.next().unwrap_or_default();
        let primary_ok = (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
        let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if primary_ok && rest_ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!("language `{value}` must be a language tag such as `en` or `es-MX`"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Parses a field, recording a [`crate::FieldError`] under `field` when it is invalid.
pub fn parse_field<T>(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(value) {
        Ok(v) => Some(v),
        Err(message) => {
            errors.push(field, message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_reject_empty_long_and_control_characters() {
        assert!(SubjectId::parse("").is_err());
        assert!(SubjectId::parse(&"a".repeat(257)).is_err());
        assert!(SubjectId::parse(&"a".repeat(256)).is_ok());
        assert!(SubjectId::parse("cust\n1").is_err());
        assert!(SubjectId::parse("cust\u{7f}").is_err());
        assert!(SubjectId::parse("cliente-ñ 42@example.com").is_ok());
    }

    #[test]
    fn slugs_accept_only_lowercase_digits_and_dashes() {
        assert!(PurposeId::parse("ads-targeting").is_ok());
        assert!(PurposeId::parse("Ads").is_err());
        assert!(PurposeId::parse("-ads").is_err());
        assert!(PurposeId::parse("ads_targeting").is_err());
        assert!(PurposeId::parse("").is_err());
        assert!(PurposeId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn debug_output_of_a_subject_id_hides_the_id() {
        let id = SubjectId::parse("alice@example.com").unwrap();
        assert!(!format!("{id:?}").contains("alice"));
    }

    #[test]
    fn languages_follow_a_bcp47_subset() {
        assert!(Language::parse("en").is_ok());
        assert!(Language::parse("es-MX").is_ok());
        assert!(Language::parse("EN").is_err());
        assert!(Language::parse("e").is_err());
        assert!(Language::parse("en-").is_err());
    }
}
