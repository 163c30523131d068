//! Validation errors that name the offending field, so every adapter can show them as is
//! (HTTP: RFC 9457 `errors: [{field, message}]`; CLI: one line).

use std::fmt;

/// One broken rule, tied to the field (a dotted path such as `texts.es.benefit`) that broke it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// A stable code for rules a client may want to act on, such as the notice lint's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), code: None }
    }
}

/// Every rule a value broke, collected rather than stopping at the first, so a caller can fix
/// all of them in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn push_coded(&mut self, code: &'static str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { code: Some(code), ..FieldError::new(field, message) });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was pushed, otherwise every collected error.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Prefixes every field path, so nested validators can report full paths.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for error in &mut self.0 {
            error.field = if error.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", error.field) };
        }
        self
    }

    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}`: {}", error.field, error.message)?;
        }
        Ok(())
    }
}
