//! `POST /v1/subjects/{subject}/links` (scope `collect`): a signed link into the preference center.

use assent_service::links::LinkOut;
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};

use crate::AppState;
use crate::extract::{Auth, Body};
use crate::problem::ApiError;

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkIn {
    ttl_seconds: Option<u64>,
}

pub(crate) async fn create<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LinkOut>, ApiError> {
    p.require(Scope::Collect)?;
    let input: LinkIn = body.json_or_default()?;
    // Links point at the host the API was reached on, unless a public URL is configured.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:8380");
    let scheme =
        if headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https") { "https" } else { "http" };
    let base = state.public_url().unwrap_or_else(|| format!("{scheme}://{host}"));
    Ok(Json(state.create_link(&p, &subject, input.ttl_seconds, &base)?))
}
