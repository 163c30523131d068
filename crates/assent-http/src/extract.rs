//! Request extraction: the API key, raw bodies with their fingerprint, JSON parsing.

use assent_core::crypto::sha256;
use assent_service::{Principal, ServiceError};
use assent_store::Store;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use crate::AppState;
use crate::problem::ApiError;

/// The caller, authenticated from `Authorization: Bearer <key>`.
#[derive(Debug)]
pub struct Auth(pub Principal);

impl<S: Store> FromRequestParts<AppState<S>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or(ServiceError::Unauthenticated)?;
        Ok(Self(state.authenticate(token.trim()).await?))
    }
}

/// A request body, at most [`crate::MAX_BODY_BYTES`] long.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large()),
            Err(rejection) => Err(ApiError::malformed(rejection.body_text())),
        }
    }
}

impl Body {
    /// Parses the body as `T`; any syntax error, unknown field or wrong type is a 400.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.0.is_empty() {
            return Err(ApiError::malformed("the request needs a JSON body"));
        }
        serde_json::from_slice(&self.0).map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))
    }

    /// Like [`Body::json`], but an empty body means `T::default()`.
    pub fn json_or_default<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { self.json() }
    }
}

/// The `Idempotency-Key` of a request, bound to a fingerprint of what the request asks for.
pub fn idempotency(
    headers: &HeaderMap,
    route: &str,
    target: &str,
    body: &Bytes,
) -> Result<Option<assent_service::consents::Idempotency>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().map_err(|_| ServiceError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    let mut fingerprint = Vec::with_capacity(route.len() + target.len() + body.len() + 4);
    fingerprint.extend_from_slice(route.as_bytes());
    fingerprint.push(0);
    fingerprint.extend_from_slice(target.as_bytes());
    fingerprint.push(0);
    fingerprint.push(u8::from(gpc(headers)));
    fingerprint.extend_from_slice(body);
    Ok(Some(assent_service::consents::Idempotency::new(key, sha256(&fingerprint))?))
}

/// Whether the request carries the Global Privacy Control signal (`Sec-GPC: 1`, exactly).
pub fn gpc(headers: &HeaderMap) -> bool {
    headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1")
}

/// Runs a state change to completion even if the client disconnects. Once a write may have
/// reached the ledger, this node's memory must learn of it, or its decisions would disagree with
/// the ledger; a dropped request future would stop between the two.
pub async fn to_completion<S, T, F>(state: &AppState<S>, change: impl FnOnce(AppState<S>) -> F) -> Result<T, ApiError>
where
    S: Store,
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
{
    match tokio::spawn(change(std::sync::Arc::clone(state))).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "a state change panicked");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request failed; it may or may not have been recorded, retry with the same Idempotency-Key",
            ))
        }
    }
}
