//! Catalog routes (scope `catalog`).

use assent_core::DataCategory;
use assent_service::catalog::{DataCategoryInput, NoticeInput, NoticeVersionOut, PurposeInput, PurposeOut};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::extract::{Auth, Body, to_completion};
use crate::problem::ApiError;

#[derive(serde::Serialize)]
pub(crate) struct Categories {
    data_categories: Vec<DataCategory>,
}

#[derive(serde::Serialize)]
pub(crate) struct Purposes {
    purposes: Vec<PurposeOut>,
}

pub(crate) async fn list_categories<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<Json<Categories>, ApiError> {
    Ok(Json(Categories { data_categories: state.data_categories(&p)? }))
}

pub(crate) async fn put_category<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<DataCategory>, ApiError> {
    p.require(Scope::Catalog)?;
    let input: DataCategoryInput = body.json()?;
    Ok(Json(to_completion(&state, move |s| async move { s.put_data_category(&p, &id, input).await }).await?))
}

pub(crate) async fn list_purposes<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<Json<Purposes>, ApiError> {
    Ok(Json(Purposes { purposes: state.purposes(&p)? }))
}

pub(crate) async fn get_purpose<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<PurposeOut>, ApiError> {
    Ok(Json(state.purpose(&p, &id)?))
}

pub(crate) async fn put_purpose<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<PurposeOut>, ApiError> {
    p.require(Scope::Catalog)?;
    let input: PurposeInput = body.json()?;
    Ok(Json(to_completion(&state, move |s| async move { s.put_purpose(&p, &id, input).await }).await?))
}

pub(crate) async fn publish<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<NoticeVersionOut>), ApiError> {
    p.require(Scope::Catalog)?;
    let input: NoticeInput = body.json()?;
    Ok((
        StatusCode::CREATED,
        Json(to_completion(&state, move |s| async move { s.publish_notice(&p, &id, input).await }).await?),
    ))
}

pub(crate) async fn get_version<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path((id, n)): Path<(String, String)>,
) -> Result<Json<NoticeVersionOut>, ApiError> {
    p.require(Scope::Catalog)?;
    let n: u32 = n.parse().map_err(|_| ApiError::not_found(format!("version `{n}` of purpose `{id}` not found")))?;
    Ok(Json(state.notice_version(&p, &id, n)?))
}
