//! RFC 9457 problem details, and the single mapping from service errors to HTTP statuses.

use assent_core::FieldError;
use assent_service::ServiceError;
use assent_store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error on its way to becoming a problem+json response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, slug, title, detail: detail.into(), errors: Vec::new() }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body must be at most {} bytes", crate::MAX_BODY_BYTES),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Missing or invalid API key",
                "send `Authorization: Bearer <key>` with a valid key",
            ),
            ServiceError::Forbidden(scope) => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Key lacks a scope",
                format!("this key lacks the `{scope}` scope"),
            ),
            ServiceError::NotFound(what) => Self::not_found(format!("{what} not found")),
            ServiceError::Invalid(errors) => {
                let mut problem = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "The request breaks a rule",
                    errors.to_string(),
                );
                problem.errors = errors.0;
                problem
            }
            ServiceError::IdempotencyMismatch(key) => Self::new(
                StatusCode::CONFLICT,
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                format!("idempotency key `{key}` was first used with a different request; use a new key"),
            ),
            ServiceError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            ServiceError::Store(e) => {
                // Internals stay in the log; the client learns only that it failed and that
                // nothing was acknowledged.
                let chain = assent_service::error::chain(&e);
                tracing::error!(error = %chain, "storage failure");
                let busy = matches!(e, StoreError::Backend(_));
                Self::new(
                    if busy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR },
                    "storage",
                    "Storage failed",
                    "the request may not have been recorded; retry it with the same Idempotency-Key",
                )
            }
        }
    }
}

#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:assent:problem:{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
