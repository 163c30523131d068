//! Recording choices (scope `collect`).

use assent_service::consents::{ConsentInput, RecordedConsent, WithdrawAllInput, WithdrawAllOut};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::AppState;
use crate::extract::{Auth, Body, gpc, idempotency, to_completion};
use crate::problem::ApiError;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchIn {
    events: Vec<ConsentInput>,
}

#[derive(serde::Serialize)]
pub(crate) struct BatchOut {
    results: Vec<RecordedConsent>,
}

pub(crate) async fn record<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RecordedConsent>), ApiError> {
    p.require(Scope::Collect)?;
    let input: ConsentInput = body.json()?;
    let idem = idempotency(&headers, "consents", "", &body.0)?;
    Ok((
        StatusCode::CREATED,
        Json(to_completion(&state, move |s| async move { s.record_consent(&p, input, idem).await }).await?),
    ))
}

pub(crate) async fn batch<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BatchOut>), ApiError> {
    p.require(Scope::Collect)?;
    let input: BatchIn = body.json()?;
    let idem = idempotency(&headers, "consents/batch", "", &body.0)?;
    Ok((
        StatusCode::CREATED,
        Json(BatchOut {
            results: to_completion(&state, move |s| async move { s.record_batch(&p, input.events, idem).await })
                .await?,
        }),
    ))
}

pub(crate) async fn withdraw_all<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WithdrawAllOut>, ApiError> {
    p.require(Scope::Collect)?;
    let input: WithdrawAllInput = body.json_or_default()?;
    let idem = idempotency(&headers, "withdraw-all", &subject, &body.0)?;
    let gpc = gpc(&headers);
    let withdrawn =
        to_completion(&state, move |s| async move { s.withdraw_all(&p, &subject, input, gpc, idem).await }).await?;
    Ok(Json(withdrawn))
}
