//! The ledger: public checkpoint and key, proofs and entries (scope `audit`), receipts
//! (scope `read`) and erasure (scope `admin`).

use assent_service::ServiceError;
use assent_service::ledger::{ConsistencyOut, EntryOut, ErasureOut, InclusionOut};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;

use crate::AppState;
use crate::extract::{Auth, to_completion};
use crate::problem::ApiError;

/// An API key when one is sent: the public endpoints take one to name the controller.
pub(crate) struct MaybeAuth(Option<assent_service::Principal>);

impl<S: Store> FromRequestParts<AppState<S>> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S>) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            Ok(Self(Some(Auth::from_request_parts(parts, state).await?.0)))
        } else {
            Ok(Self(None))
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct ControllerQuery {
    controller: Option<String>,
}

fn controller_of(query: ControllerQuery, auth: MaybeAuth) -> Result<String, ApiError> {
    match (query.controller, auth.0) {
        (Some(id), _) => Ok(id),
        (None, Some(p)) => {
            p.require(Scope::Audit)?;
            Ok(p.controller.id().to_string())
        }
        (None, None) => Err(ApiError::malformed("name the log with `?controller=ID`, or send an `audit` key")),
    }
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::malformed(e.body_text()))
}

pub(crate) async fn checkpoint<S: Store>(
    State(state): State<AppState<S>>,
    auth: MaybeAuth,
    q: Result<Query<ControllerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let controller = controller_of(query(q)?, auth)?;
    let note = to_completion(&state, move |s| async move { s.checkpoint_note(&controller).await }).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note))
}

/// Signs a checkpoint now, rather than at the next tick.
pub(crate) async fn sign_now<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    p.require(Scope::Audit)?;
    let id = p.controller.id();
    let signed = to_completion(&state, move |s| async move { s.sign_checkpoint(&id).await }).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], signed.note))
}

pub(crate) async fn public_key<S: Store>(
    State(state): State<AppState<S>>,
    auth: MaybeAuth,
    q: Result<Query<ControllerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let controller = controller_of(query(q)?, auth)?;
    let key = state.public_key(&controller).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{key}\n")))
}

#[derive(serde::Deserialize)]
pub(crate) struct InclusionQuery {
    index: u64,
    tree_size: u64,
}

pub(crate) async fn inclusion<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InclusionOut>, ApiError> {
    p.require(Scope::Audit)?;
    let q = query(q)?;
    Ok(Json(state.inclusion_proof(&p, q.index, q.tree_size).await?))
}

#[derive(serde::Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: u64,
}

pub(crate) async fn consistency<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsistencyOut>, ApiError> {
    p.require(Scope::Audit)?;
    let q = query(q)?;
    Ok(Json(state.consistency_proof(&p, q.from, q.to).await?))
}

#[derive(serde::Deserialize)]
pub(crate) struct EntriesQuery {
    start: u64,
    end: u64,
}

#[derive(serde::Serialize)]
pub(crate) struct EntriesOut {
    entries: Vec<EntryOut>,
}

pub(crate) async fn entries<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    q: Result<Query<EntriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EntriesOut>, ApiError> {
    p.require(Scope::Audit)?;
    let q = query(q)?;
    Ok(Json(EntriesOut { entries: state.ledger_entries(&p, q.start, q.end).await? }))
}

#[derive(serde::Serialize)]
pub(crate) struct ReceiptOut {
    receipt: String,
}

pub(crate) async fn receipt<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path((subject, seq)): Path<(String, String)>,
) -> Result<Json<ReceiptOut>, ApiError> {
    p.require(Scope::Read)?;
    let seq: u64 = seq.parse().map_err(|_| ApiError::from(ServiceError::NotFound(format!("receipt `{seq}`"))))?;
    let receipt = to_completion(&state, move |s| async move { s.receipt(&p, &subject, seq).await }).await?;
    Ok(Json(ReceiptOut { receipt }))
}

pub(crate) async fn erase<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(subject): Path<String>,
) -> Result<Json<ErasureOut>, ApiError> {
    p.require(Scope::Admin)?;
    Ok(Json(to_completion(&state, move |s| async move { s.erase_subject(&p, &subject).await }).await?))
}
