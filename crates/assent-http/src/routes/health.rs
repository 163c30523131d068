//! Liveness, readiness and the API description.

use assent_store::Store;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// The router is only built once storage is open and every controller's state is loaded, so a
/// server that answers at all is ready.
pub(crate) async fn readyz<S: Store>(State(state): State<AppState<S>>) -> String {
    format!("ready: {} controllers loaded\n", state.controller_ids().len())
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI_JSON)
}
