//! `controllers create` and `keys create`: they work on the data directory directly and may run
//! beside a running server (SQLite serialises the writers).

use std::sync::Arc;

use assent_service::{Assent, SystemClock};
use assent_store::Scope;

use super::{describe, open_store};
use crate::config::Settings;

pub async fn create_controller(
    settings: Settings,
    id: &str,
    name: &str,
    languages: &[String],
    profiles: &[String],
) -> Result<(), String> {
    let service = Assent::open_lazy(open_store(&settings).await?, Arc::new(SystemClock), super::keyring(&settings));
    let view = service.create_controller(id, name, languages, profiles).await.map_err(|e| describe(&e))?;
    println!("created controller `{}` ({}), languages: {}", view.id, view.name, view.languages.join(", "));
    Ok(())
}

pub async fn create_key(settings: Settings, controller: &str, scopes: &[String]) -> Result<(), String> {
    let scopes = scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let controller = assent_core::ControllerId::parse(controller)?;
    let service = Assent::open_lazy(open_store(&settings).await?, Arc::new(SystemClock), super::keyring(&settings));
    let key = service.create_api_key(&controller, scopes).await.map_err(|e| describe(&e))?;
    // The key alone on stdout, so scripts can capture it.
    println!("{key}");
    Ok(())
}

pub async fn create_link(settings: Settings, controller: &str, subject: &str, ttl: Option<u64>) -> Result<(), String> {
    let controller = assent_core::ControllerId::parse(controller)?;
    let service = Assent::open_lazy(open_store(&settings).await?, Arc::new(SystemClock), super::keyring(&settings));
    let principal = service.system_principal(&controller).await.map_err(|e| describe(&e))?;
    let link = service.create_link(&principal, subject, ttl, &settings.public_url).map_err(|e| describe(&e))?;
    println!("{}", link.url);
    Ok(())
}
