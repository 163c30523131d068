//! `assent apply`, `assent export-catalog` and `assent lint`: the catalog as a reviewed file.

use std::path::Path;

use assent_core::lint::{LintOptions, Severity};
use assent_service::catalog_file::{CatalogFile, lint_file};

use super::{describe, open_service};
use crate::config::Settings;

fn read_file(path: &Path) -> Result<CatalogFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    CatalogFile::parse(&text).map_err(|e| format!("`{}` is not a valid catalog file: {e}", path.display()))
}

pub async fn apply(settings: Settings, path: &Path, dry_run: bool) -> Result<(), String> {
    let file = read_file(path)?;
    let service = open_service(&settings).await?;
    // The plan is printed before anything is written, and printed even when the lint refuses.
    let plan = service.plan_catalog(&file).await.map_err(|e| describe(&e))?;
    print!("{}", plan.render());
    if dry_run {
        println!("Dry run: nothing was changed.");
        return if plan.has_errors() { Err("the lint found errors; fix them before applying".into()) } else { Ok(()) };
    }
    service.apply_catalog(&file, false).await.map_err(|e| describe(&e))?;
    println!("Applied.");
    Ok(())
}

pub async fn export(settings: Settings, controller: &str, output: Option<&Path>) -> Result<(), String> {
    let id = assent_core::ControllerId::parse(controller)?;
    let service = open_service(&settings).await?;
    let file = service.export_catalog(&id).await.map_err(|e| describe(&e))?;
    let text = format!(
        "# Catalog of controller `{controller}`, exported by `assent export-catalog`.\n# Apply with `assent apply -f FILE`.\n\n{}",
        file.to_toml()?
    );
    match output {
        None => print!("{text}"),
        Some(path) => std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?,
    }
    Ok(())
}

pub fn lint(path: &Path, min_readability: Option<f64>) -> Result<(), String> {
    let file = read_file(path)?;
    let mut options = LintOptions::default();
    if let Some(min) = min_readability {
        options.min_readability = min;
    }
    let findings = lint_file(&file, &options).map_err(|e| format!("`{}`: {e}", path.display()))?;
    for (_, f) in &findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        println!("{severity}[{}] {}: {}", f.code, f.field, f.message);
    }
    let errors = findings.iter().filter(|(_, f)| f.severity == Severity::Error).count();
    let warnings = findings.len() - errors;
    println!("{}: {} notices, {errors} errors, {warnings} warnings", path.display(), file.purposes.len());
    if errors > 0 { Err(format!("{errors} lint errors in `{}`", path.display())) } else { Ok(()) }
}
