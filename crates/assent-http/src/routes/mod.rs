//! Route table. One module per area of the contract in `shared/docs/api.md`.

mod catalog;
mod consents;
mod controller;
mod decisions;
mod delivery;
mod health;
mod ledger;
mod links;
mod subjects;

use assent_store::Store;
use axum::Router;
use axum::http::Uri;
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::problem::ApiError;

pub(crate) fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<S>))
        .route("/openapi.json", get(health::openapi))
        .route("/v1/controller", get(controller::get::<S>).patch(controller::patch::<S>))
        .route("/v1/data-categories", get(catalog::list_categories::<S>))
        .route("/v1/data-categories/{id}", put(catalog::put_category::<S>))
        .route("/v1/purposes", get(catalog::list_purposes::<S>))
        .route("/v1/purposes/{id}", get(catalog::get_purpose::<S>).put(catalog::put_purpose::<S>))
        .route("/v1/purposes/{id}/versions", post(catalog::publish::<S>))
        .route("/v1/purposes/{id}/versions/{n}", get(catalog::get_version::<S>))
        .route("/v1/consents", post(consents::record::<S>))
        .route("/v1/consents/batch", post(consents::batch::<S>))
        .route("/v1/subjects/{subject}/withdraw-all", post(consents::withdraw_all::<S>))
        .route("/v1/subjects/{subject}/consents", get(subjects::consents::<S>))
        .route("/v1/subjects/{subject}/history", get(subjects::history::<S>))
        .route("/v1/decisions", get(decisions::one::<S>).post(decisions::many::<S>))
        .route("/v1/subjects/{subject}", delete(ledger::erase::<S>))
        .route("/v1/subjects/{subject}/receipts/{seq}", get(ledger::receipt::<S>))
        .route("/v1/ledger/checkpoint", get(ledger::checkpoint::<S>).post(ledger::sign_now::<S>))
        .route("/v1/ledger/public-key", get(ledger::public_key::<S>))
        .route("/v1/ledger/proofs/inclusion", get(ledger::inclusion::<S>))
        .route("/v1/ledger/proofs/consistency", get(ledger::consistency::<S>))
        .route("/v1/ledger/entries", get(ledger::entries::<S>))
        .route("/v1/subjects/{subject}/links", post(links::create::<S>))
        .route("/p/{controller}", get(crate::pages::center::<S>))
        .route("/p/{controller}/open", get(crate::pages::open::<S>).post(crate::pages::open_post::<S>))
        .route("/p/{controller}/choice", post(crate::pages::choice::<S>))
        .route("/p/{controller}/withdraw-all", post(crate::pages::withdraw_all::<S>))
        .route("/p/{controller}/history", get(crate::pages::history::<S>))
        .route("/p/{controller}/receipts/{seq}", get(crate::pages::receipt::<S>))
        .route("/p/{controller}/ask/{purpose}", get(crate::pages::ask::<S>).post(crate::pages::answer::<S>))
        .route("/.well-known/gpc.json", get(crate::pages::gpc_json))
        .route("/metrics", get(delivery::metrics::<S>))
        .route("/v1/webhooks", get(delivery::list_webhooks::<S>).post(delivery::create_webhook::<S>))
        .route("/v1/webhooks/{id}", delete(delivery::delete_webhook::<S>))
        .route("/v1/destinations", get(delivery::list_destinations::<S>))
        .route("/v1/destinations/{id}/deliveries", get(delivery::list_deliveries::<S>))
        .route("/v1/deliveries/{id}/ack", post(delivery::ack::<S>))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no resource at `{}`", uri.path()))
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this resource does not support that method",
    )
}
