//! Catalog as code from the command line: `assent lint`, `assent apply [--dry-run]` and
//! `assent export-catalog`, against the demo catalog and deliberately bad ones.

use std::path::{Path, PathBuf};

use crate::support::{assent, assent_plain, stderr, stdout};

fn demo_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/demo.toml")
}

fn demo_text() -> String {
    std::fs::read_to_string(demo_catalog()).unwrap()
}

#[test]
fn the_demo_catalog_lints_without_errors() {
    let o = assent_plain(&["lint", demo_catalog().to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("5 notices, 0 errors"), "{}", stdout(&o));
}

#[test]
fn a_bad_catalog_fails_the_lint_with_codes_fields_and_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let bad = demo_text()
        .replacen(
            "benefit = \"Ads on our pages about things you care about",
            "benefit = \"A $5 discount every month. Ads on our pages about things you care about",
            1,
        )
        .replacen("retention_days = 180\n", "", 1)
        .replacen("max_age_days = 365\n", "max_age_days = 365\ncondition_of_service = true\n", 1);
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let o = assent_plain(&["lint", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = stdout(&o);
    for expected in [
        "error[incentive-offered] purposes[0].notice.texts.en.benefit: ",
        "error[retention-missing] purposes[0].notice.retention_days: ",
        "error[condition-of-service] purposes[0].condition_of_service: ",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: 3 lint errors"), "{}", stderr(&o));
    // A stricter readability threshold turns plain texts into warnings, not errors.
    let o = assent_plain(&["lint", demo_catalog().to_str().unwrap(), "--min-readability", "101"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("warning[readability]"), "{}", stdout(&o));
}

#[test]
fn apply_plans_first_changes_nothing_on_a_dry_run_and_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = demo_catalog();
    let dry = assent(&["apply", "-f", file.to_str().unwrap(), "--dry-run"], &data);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let plan = stdout(&dry);
    assert!(plan.contains("+ controller `demo`"), "{plan}");
    assert!(plan.contains("+ purpose `ads-targeting`"), "{plan}");
    assert!(plan.contains("+ notice `ads-targeting` version 1"), "{plan}");
    assert!(plan.contains("Dry run: nothing was changed."), "{plan}");
    // Nothing was written: the controller does not exist yet.
    let o = assent(&["export-catalog", "--controller", "demo"], &data);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("demo"), "{}", stderr(&o));

    let first = assent(&["apply", "-f", file.to_str().unwrap()], &data);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("Applied."), "{}", stdout(&first));
    let again = assent(&["apply", "-f", file.to_str().unwrap()], &data);
    assert!(again.status.success(), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(out.contains("0 to create, 0 to change, 0 material."), "{out}");
    assert!(!out.contains("\n  + ") && !out.contains("\n  ~ "), "{out}");

    // A wider notice is planned as a material new version, with the reason.
    let wider = demo_text().replacen(
        "recipients = [{ name = \"Pine Tree Broadband\", role = \"shows the ads on its own pages\" }]",
        "recipients = [{ name = \"Pine Tree Broadband\", role = \"shows the ads on its own pages\" }, { name = \"Acme Ads\", role = \"ad network\" }]",
        1,
    );
    let path = dir.path().join("wider.toml");
    std::fs::write(&path, wider).unwrap();
    let o = assent(&["apply", "-f", path.to_str().unwrap(), "--dry-run"], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("+ notice `ads-targeting` version 2 (adds recipient `Acme Ads`) [material"), "{out}");
    assert!(out.contains("1 to create, 0 to change, 1 material."), "{out}");
}

#[test]
fn an_exported_catalog_applies_back_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = assent(&["apply", "-f", demo_catalog().to_str().unwrap()], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = dir.path().join("exported.toml");
    let o = assent(&["export-catalog", "--controller", "demo", "-o", exported.to_str().unwrap()], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.contains("id = \"ads-targeting\""), "{text}");
    let o = assent(&["apply", "-f", exported.to_str().unwrap()], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 to create, 0 to change, 0 material."), "{}", stdout(&o));
    // And into a fresh data directory it recreates the same catalog.
    let fresh = dir.path().join("fresh");
    let o = assent(&["apply", "-f", exported.to_str().unwrap()], &fresh);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = assent(&["apply", "-f", demo_catalog().to_str().unwrap()], &fresh);
    assert!(stdout(&o).contains("0 to create, 0 to change, 0 material."), "{}", stdout(&o));
}

#[test]
fn a_refused_apply_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = demo_text().replacen("retention_days = 180\n", "", 1);
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let o = assent(&["apply", "-f", path.to_str().unwrap()], &data);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("error[retention-missing]"), "{}", stdout(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let o = assent(&["export-catalog", "--controller", "demo"], &data);
    assert!(!o.status.success(), "nothing was created: {}", stdout(&o));
}
