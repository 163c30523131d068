//! `/v1/controller` (scope `admin`).

use assent_service::admin::{ControllerPatch, ControllerView};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::extract::{Auth, Body, to_completion};
use crate::problem::ApiError;

pub(crate) async fn get<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<Json<ControllerView>, ApiError> {
    p.require(Scope::Admin)?;
    Ok(Json(state.controller_view(&p)?))
}

pub(crate) async fn patch<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    body: Body,
) -> Result<Json<ControllerView>, ApiError> {
    p.require(Scope::Admin)?;
    let patch: ControllerPatch = body.json()?;
    Ok(Json(to_completion(&state, move |s| async move { s.patch_controller(&p, patch).await }).await?))
}
