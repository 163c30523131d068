//! `assent demo`: seeds the demo controller from the shipped catalog file, prints a key and
//! what to try, then serves.

use assent_service::catalog_file::{CatalogFile, ChangeKind};
use assent_store::Scope;

use super::{describe, open_service, serve};
use crate::config::Settings;

/// The demo catalog, in the catalog-as-code format of `assent_service::catalog_file`.
pub const DEMO_CATALOG: &str = include_str!("../../catalog/demo.toml");

pub async fn run(settings: Settings) -> Result<(), String> {
    serve::init_logging(settings.json_logs);
    let file = CatalogFile::parse(DEMO_CATALOG).map_err(|e| format!("demo catalog is invalid: {e}"))?;
    let service = open_service(&settings).await?;
    let plan = service.apply_catalog(&file, false).await.map_err(|e| describe(&e))?;
    let created = plan.changes.iter().any(|c| c.what.starts_with("controller") && c.kind == ChangeKind::Create);
    let controller = assent_core::ControllerId::parse(&file.controller.id)?;
    let key = service.create_api_key(&controller, vec![Scope::Admin]).await.map_err(|e| describe(&e))?;
    service.set_public_url(Some(settings.public_url.clone()));
    service.set_secure_cookies(settings.secure_cookies);
    service.set_trust_proxy(settings.trust_proxy);
    service.set_allow_private_webhooks(settings.allow_private_webhooks);
    let principal = service.system_principal(&controller).await.map_err(|e| describe(&e))?;
    let link =
        service.create_link(&principal, "demo-customer", None, &settings.public_url).map_err(|e| describe(&e))?;
    serve::spawn_background(&service, &settings);
    let listen = settings.listen.clone();
    serve::serve(service, &listen, move |addr| {
        let base = format!("http://{addr}");
        let verb = if created { "created" } else { "reused" };
        println!("Assent demo: {verb} controller `demo` (Pine Tree Broadband) in {}", settings.data_dir.display());
        println!();
        println!("Admin API key (shown once): {key}");
        println!();
        println!("Preference center for customer `demo-customer` (single use, 15 minutes):");
        println!("  {}", link.url);
        println!();
        println!("Try:");
        println!("  export KEY={key}");
        println!("  curl -s {base}/v1/purposes -H \"Authorization: Bearer $KEY\"");
        println!(
            "  curl -s {base}/v1/consents -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n    -d '{{\"subject\":\"cust-1\",\"purpose\":\"ads-targeting\",\"version\":1,\"action\":\"grant\",\"method\":\"web\"}}'"
        );
        println!("  curl -s '{base}/v1/decisions?subject=cust-1&purpose=ads-targeting' -H \"Authorization: Bearer $KEY\"");
        println!("  curl -s -X POST {base}/v1/subjects/cust-1/withdraw-all -H \"Authorization: Bearer $KEY\"");
        println!("  curl -s {base}/v1/subjects/cust-1/history -H \"Authorization: Bearer $KEY\"");
        println!();
        println!("API description: {base}/openapi.json   Health: {base}/healthz");
        println!("Stop with Ctrl-C.");
    })
    .await
}
