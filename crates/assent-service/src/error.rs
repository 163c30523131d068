//! Everything a service call can refuse. The HTTP layer maps these to status codes in one place.

use assent_core::ValidationErrors;
use assent_store::{Scope, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("missing or invalid API key")]
    Unauthenticated,
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the request breaks a rule: {0}")]
    Invalid(ValidationErrors),
    #[error("idempotency key `{0}` was already used with a different request")]
    IdempotencyMismatch(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(ValidationErrors::single(field, message))
    }

    pub fn forbidden(scope: Scope) -> Self {
        Self::Forbidden(scope.as_str())
    }
}

impl From<ValidationErrors> for ServiceError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e)
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// An error and every `source()` below it, on one line: for logs and the CLI, never for clients.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
