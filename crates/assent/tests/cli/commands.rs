//! Admin commands: one line on stderr and a non-zero exit for bad input, keys alone on stdout.

use crate::support::*;

#[test]
fn keys_create_prints_only_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = controller_with_admin_key(dir.path(), "acme");
    assert!(key.starts_with("ak_"));
    assert_eq!(key.lines().count(), 1);
    assert!(key.len() >= 3 + 32);
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    controller_with_admin_key(dir.path(), "acme");
    let cases: Vec<Vec<&str>> = vec![
        vec!["controllers", "create", "Bad Id", "--name", "X"],
        vec!["controllers", "create", "acme", "--name", "Again"],
        vec!["controllers", "create", "new-one", "--name", "X", "--profile", "us-xx"],
        vec!["controllers", "create", "new-two", "--name", "X", "--language", "english"],
        vec!["controllers", "create", "new-three", "--name", " "],
        vec!["keys", "create", "--controller", "acme", "--scope", "superuser"],
        vec!["keys", "create", "--controller", "nobody", "--scope", "read"],
        vec!["keys", "create", "--controller", "Bad!", "--scope", "read"],
    ];
    for args in cases {
        let o = assent(&args, dir.path());
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?} printed to stdout");
    }
    // Nothing was created by the failures.
    let o = assent(&["controllers", "create", "new-one", "--name", "X"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_unreachable_postgres_is_one_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://assent:s3cret@127.0.0.1:1/test?connect_timeout=2";
    let o = assent(&["controllers", "create", "acme", "--name", "X", "--database-url", url], dir.path());
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot use PostgreSQL at postgres://127.0.0.1:1/test"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let o = assent(&["verify", "--database-url", url], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).starts_with("error: cannot use PostgreSQL"), "{}", stderr(&o));
}

#[test]
fn links_create_prints_only_a_signed_link() {
    let dir = tempfile::tempdir().unwrap();
    controller_with_admin_key(dir.path(), "acme");
    let o = assent(&["links", "create", "--controller", "acme", "--subject", "cust-1"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let url = stdout(&o);
    assert_eq!(url.lines().count(), 1);
    assert!(url.starts_with("http://127.0.0.1:8380/p/acme/open?token=v1."), "{url}");
    let o = assent(&["links", "create", "--controller", "acme", "--subject", "cust\u{7}1"], dir.path());
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1);
}
