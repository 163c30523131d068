//! One module per command.

mod admin;
mod catalog;
mod demo;
mod receipt;
mod serve;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use assent_service::error::chain;
use assent_service::{Assent, ServiceError, SystemClock};
use assent_store_postgres::{PostgresOptions, PostgresStore};
use assent_store_sqlite::SqliteStore;

use crate::backend::Backend;
use crate::cli::{CheckpointCommand, Command, ControllersCommand, KeysCommand, LinksCommand, ReceiptCommand};
use crate::config::Settings;

pub async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => serve::run(crate::config::resolve(&args.storage, args.listen.as_deref())?).await,
        Command::Demo(args) => demo::run(crate::config::resolve(&args.storage, args.listen.as_deref())?).await,
        Command::Controllers(ControllersCommand::Create { id, name, languages, profiles, storage }) => {
            admin::create_controller(crate::config::resolve(&storage, None)?, &id, &name, &languages, &profiles).await
        }
        Command::Keys(KeysCommand::Create { controller, scopes, storage }) => {
            admin::create_key(crate::config::resolve(&storage, None)?, &controller, &scopes).await
        }
        Command::Verify { storage } => verify::run(crate::config::resolve(&storage, None)?).await,
        Command::Receipt(ReceiptCommand::Verify { file, public_key }) => receipt::verify(&file, &public_key),
        Command::Links(LinksCommand::Create { controller, subject, ttl_seconds, storage }) => {
            admin::create_link(crate::config::resolve(&storage, None)?, &controller, &subject, ttl_seconds).await
        }
        Command::Checkpoint(CheckpointCommand::Verify { file, public_key }) => {
            receipt::verify_checkpoint(&file, &public_key)
        }
        Command::Apply { file, dry_run, storage } => {
            catalog::apply(crate::config::resolve(&storage, None)?, &file, dry_run).await
        }
        Command::ExportCatalog { controller, output, storage } => {
            catalog::export(crate::config::resolve(&storage, None)?, &controller, output.as_deref()).await
        }
        Command::Lint { file, min_readability } => catalog::lint(&file, min_readability),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Where the SQLite database lives for these settings.
fn sqlite_path(settings: &Settings) -> Result<PathBuf, String> {
    match settings.database_url.as_deref() {
        None => {
            create_private_dir(&settings.data_dir)?;
            Ok(settings.data_dir.join("assent.db"))
        }
        Some(url) if url.starts_with("sqlite://") => Ok(PathBuf::from(url.trim_start_matches("sqlite://"))),
        Some(url) if is_postgres(url) => Err("a PostgreSQL URL names no SQLite file".into()),
        Some(_) => Err("--database-url must start with sqlite:// or postgres://".into()),
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create data directory `{}`: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The directory holds subject secrets and will hold signing keys: owner only.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict data directory `{}`: {e}", dir.display()))?;
    }
    Ok(())
}

/// The SQLite store the settings name (the offline audit reads SQLite directly).
fn open_sqlite(settings: &Settings) -> Result<SqliteStore, String> {
    let path = sqlite_path(settings)?;
    SqliteStore::open(&path, settings.sqlite.clone())
        .map_err(|e| format!("cannot open `{}`: {}", path.display(), chain(&e)))
}

/// The store the settings name: PostgreSQL for a `postgres://` URL, otherwise SQLite.
async fn open_store(settings: &Settings) -> Result<Backend, String> {
    match settings.database_url.as_deref() {
        Some(url) if is_postgres(url) => {
            // Ledger keys still live on this machine's disk, never in the shared database.
            create_private_dir(&settings.data_dir)?;
            let options = PostgresOptions { schema: settings.database_schema.clone(), ..PostgresOptions::default() };
            PostgresStore::connect(url, options)
                .await
                .map(Backend::Postgres)
                .map_err(|e| format!("cannot use PostgreSQL at {}: {}", redact(url), chain(&e)))
        }
        _ => open_sqlite(settings).map(Backend::Sqlite),
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", url.get(..scheme + 3).unwrap_or(""), url.get(at + 1..).unwrap_or(""))
        }
        _ => url.to_owned(),
    }
}

async fn open_service(settings: &Settings) -> Result<Arc<Assent<Backend>>, String> {
    let store = open_store(settings).await?;
    let service = Assent::open(store, Arc::new(SystemClock), keyring(settings)).await.map_err(|e| describe(&e))?;
    service.set_consent_refresh_days(settings.consent_refresh_days);
    service.set_lint_options(assent_core::lint::LintOptions {
        min_readability: settings.lint_min_readability,
        ..assent_core::lint::LintOptions::default()
    });
    Ok(Arc::new(service))
}

/// Ledger keys live beside the database, one file per controller.
fn keyring(settings: &Settings) -> assent_service::signing::KeyRing {
    assent_service::signing::KeyRing::new(settings.keys_dir.clone(), settings.origin_prefix.clone())
}

/// One line for a service error.
fn describe(e: &ServiceError) -> String {
    chain(e)
}
