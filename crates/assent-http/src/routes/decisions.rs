//! Decisions (scope `decide`), answered from memory.

use assent_service::reads::DecisionOut;
use assent_store::{Scope, Store};
use axum::Json;
use axum::extract::{Query, State};

use crate::AppState;
use crate::extract::{Auth, Body};
use crate::problem::ApiError;

/// The most checks one batch decision may hold.
const MAX_CHECKS: usize = 10_000;

#[derive(serde::Deserialize)]
pub(crate) struct OneQuery {
    subject: Option<String>,
    purpose: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    subject: String,
    purpose: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManyIn {
    checks: Vec<Check>,
}

#[derive(serde::Serialize)]
pub(crate) struct ManyOut {
    results: Vec<DecisionOut>,
}

pub(crate) async fn one<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    query: Result<Query<OneQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DecisionOut>, ApiError> {
    p.require(Scope::Decide)?;
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let (Some(subject), Some(purpose)) = (q.subject, q.purpose) else {
        return Err(ApiError::malformed("give both `subject` and `purpose` query parameters"));
    };
    Ok(Json(state.decide(&p, &subject, &purpose)?))
}

pub(crate) async fn many<S: Store>(
    State(state): State<AppState<S>>,
    Auth(p): Auth,
    body: Body,
) -> Result<Json<ManyOut>, ApiError> {
    p.require(Scope::Decide)?;
    let input: ManyIn = body.json()?;
    if input.checks.len() > MAX_CHECKS {
        return Err(
            assent_service::ServiceError::invalid("checks", format!("at most {MAX_CHECKS} checks per call")).into()
        );
    }
    let checks: Vec<(String, String)> = input.checks.into_iter().map(|c| (c.subject, c.purpose)).collect();
    Ok(Json(ManyOut { results: state.decide_many(&p, &checks)? }))
}
