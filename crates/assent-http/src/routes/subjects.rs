//! Subject reads (scope `read`).

use assent_service::reads::{HistoryItem, SubjectConsents};
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Path, State};

use crate::AppState;
use crate::extract::Auth;
use crate::problem::ApiError;

#[derive(serde::Serialize)]
pub(crate) struct History {
    subject: String,
    events: Vec<HistoryItem>,
}

pub(crate) async fn consents<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(subject): Path<String>,
) -> Result<Json<SubjectConsents>, ApiError> {
    p.require(Scope::Read)?;
    Ok(Json(state.subject_consents(&p, &subject)?))
}

pub(crate) async fn history<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    Path(subject): Path<String>,
) -> Result<Json<History>, ApiError> {
    p.require(Scope::Read)?;
    let events = state.history(&p, &subject).await?;
    Ok(Json(History { subject, events }))
}
