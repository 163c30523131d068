//! `assent serve`.

use std::sync::Arc;

use assent_service::Assent;
use assent_store::Store;

use super::open_service;
use crate::backend::Backend;
use crate::config::Settings;

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    // Ignore a second initialisation (tests may call this more than once).
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

pub async fn run(settings: Settings) -> Result<(), String> {
    init_logging(settings.json_logs);
    let service = open_service(&settings).await?;
    service.set_public_url(Some(settings.public_url.clone()));
    service.set_secure_cookies(settings.secure_cookies);
    service.set_trust_proxy(settings.trust_proxy);
    service.set_allow_private_webhooks(settings.allow_private_webhooks);
    spawn_background(&service, &settings);
    serve(service, &settings.listen, |addr| eprintln!("assent listening on http://{addr}")).await
}

/// The work a server does besides answering requests: the expiry sweep and the dispatcher.
/// On a database shared by several nodes, each runs on the one node holding its lease.
pub fn spawn_background(service: &Arc<Assent<Backend>>, settings: &Settings) {
    spawn_expiry_sweeper(Arc::clone(service), settings.expiry_sweep_seconds);
    let dispatcher = Arc::clone(service);
    let options = settings.dispatch.clone();
    tokio::spawn(async move { dispatcher.dispatch(options).await });
}

/// Records lapsed grants as `expire` events every `seconds`. Decisions do not wait for it:
/// they say `expired` from the moment of expiry; the sweep makes the ledger say so too.
fn spawn_expiry_sweeper(service: Arc<Assent<Backend>>, seconds: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(seconds.max(1)));
        loop {
            tick.tick().await;
            // Two nodes sweeping at once would each expire the same grant.
            match service.store().try_lead("expiry-sweep").await {
                Ok(true) => {
                    // On a shared database, sweep what every node has recorded, not an older
                    // view: a grant given again on another node must not be expired.
                    if matches!(service.store(), Backend::Postgres(_)) {
                        for id in service.controller_ids() {
                            if let Err(e) = service.catch_up(&id).await {
                                tracing::warn!(controller = %id, error = %e, "could not catch up before sweeping");
                            }
                        }
                    }
                }
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the expiry-sweep lease; will retry");
                    continue;
                }
            }
            match service.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "recorded lapsed grants as expired"),
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed; will retry"),
            }
        }
    });
}

pub async fn serve(
    service: Arc<Assent<Backend>>,
    listen: &str,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on `{listen}`: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    on_listening(addr);
    tracing::info!(%addr, controllers = service.controller_ids().len(), "serving");
    // On a database shared with other nodes, their writes reach this node's memory through the
    // change feed.
    if let Backend::Postgres(store) = service.store() {
        let changes = store.changes();
        let follower = Arc::clone(&service);
        tokio::spawn(async move { follower.follow(changes).await });
    }
    // A new checkpoint is signed at least every second while events arrive.
    let signer = Arc::clone(&service);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = signer.sign_checkpoints().await {
                tracing::warn!(error = %e, "could not sign checkpoints; will retry");
            }
        }
    });
    let router = assent_http::router(Arc::clone(&service));
    assent_http::serve(listener, router, shutdown_signal()).await.map_err(|e| format!("server failed: {e}"))?;
    // Leave one file behind: a backup or an audit of a stopped server then reads no WAL.
    if let Err(e) = service.store().before_exit().await {
        tracing::warn!(error = %e, "could not fold the WAL into the database at shutdown");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
