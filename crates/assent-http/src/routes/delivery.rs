//! Downstream delivery: webhooks (scope `admin`), every destination's progress and dead
//! letters (scope `admin`), confirmations from downstream systems (scope `collect`), and
//! `/metrics` (scope `audit`: Prometheus text for the key's controller; names destinations,
//! never a customer).

use assent_service::delivery::{DeliveryOut, DestinationOut, WebhookCreated, WebhookInput};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;
use crate::extract::{Auth, Body};
use crate::problem::ApiError;

pub(crate) async fn create_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    body: Body,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    p.require(Scope::Admin)?;
    let input: WebhookInput = body.json()?;
    Ok((StatusCode::CREATED, Json(state.create_webhook(&p, input).await?)))
}

#[derive(serde::Serialize)]
pub(crate) struct Webhooks {
    webhooks: Vec<DestinationOut>,
}

pub(crate) async fn list_webhooks<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<Json<Webhooks>, ApiError> {
    Ok(Json(Webhooks { webhooks: state.list_destinations(&p, true).await? }))
}

pub(crate) async fn delete_webhook<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.delete_webhook(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
pub(crate) struct Destinations {
    destinations: Vec<DestinationOut>,
}

pub(crate) async fn list_destinations<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<Json<Destinations>, ApiError> {
    Ok(Json(Destinations { destinations: state.list_destinations(&p, false).await? }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusQuery {
    status: Option<String>,
}

#[derive(serde::Serialize)]
pub(crate) struct Deliveries {
    deliveries: Vec<DeliveryOut>,
}

pub(crate) async fn list_deliveries<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Json<Deliveries>, ApiError> {
    Ok(Json(Deliveries { deliveries: state.list_deliveries(&p, &id, query.status.as_deref()).await? }))
}

pub(crate) async fn ack<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    Ok(Json(state.ack_delivery(&p, &id).await?))
}

/// Scope `audit`: the key's controller's series only (Prometheus sends it as a bearer token).
pub(crate) async fn metrics<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    p.require(Scope::Audit)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render(&p.controller.id())))
}
