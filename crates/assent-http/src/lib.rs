//! Assent's HTTP API.
//!
//! Only this crate knows HTTP. Handlers are thin: authenticate, check the scope, parse the body,
//! call one [`assent_service::Assent`] method, serialize its answer. Every error becomes an
//! RFC 9457 problem in [`problem`], the one place that maps errors to status codes.

mod extract;
pub mod pages;
mod problem;
mod routes;

use std::sync::Arc;

use assent_service::Assent;
use assent_store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use crate::problem::ApiError;

/// The largest request body accepted; larger ones get 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3.1 description of this API, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

pub type AppState<S> = Arc<Assent<S>>;

/// Builds the router over a loaded service.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    routes::routes::<S>()
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address reaches handlers (consent evidence records a truncated IP).
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
