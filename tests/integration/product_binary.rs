//! The product binary contains no test support: the fakes and the environment helpers live
//! in the `backup-warden-testing` crate, a dev-dependency, so no feature can pull them into
//! `backup-warden` (a build after `cargo test` or `cargo bench` included).

/// Whether `haystack` holds `needle` (symbol names and paths are ASCII).
fn contains(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle)
}

fn read(path: impl AsRef<std::path::Path>) -> String {
    String::from_utf8_lossy(&std::fs::read(path).expect("read a binary")).into_owned()
}

#[test]
fn the_binary_has_no_fake_in_it() {
    let binary = read(env!("CARGO_BIN_EXE_backup-warden"));
    // The search finds them where they are: in this test binary, which links the crate.
    let this = read(std::env::current_exe().expect("this test"));
    let _ = backup_warden_testing::github_fake::git_blob_sha(b"");
    // The release binary too, when a `cargo build --release` or `cargo bench` left one.
    let debug = std::path::Path::new(env!("CARGO_BIN_EXE_backup-warden"));
    let release = debug
        .parent()
        .and_then(|dir| dir.parent())
        .map(|target| target.join("release/backup-warden"))
        .filter(|path| path.exists())
        .map(read);
    for name in ["backup_warden_testing", "github_fake", "slack_fake"] {
        assert!(
            contains(&this, name),
            "{name} not found even where it is: the search is broken"
        );
        assert!(!contains(&binary, name), "the product binary contains {name}");
        if let Some(release) = &release {
            assert!(!contains(release, name), "the release binary contains {name}");
        }
    }
}

/// The crate, the image and the chart say Apache-2.0: the license text ships beside them.
#[test]
fn the_license_the_crate_names_is_in_the_repository() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(contains(
        &read(format!("{root}/Cargo.toml")),
        "license = \"Apache-2.0\""
    ));
    let license = read(format!("{root}/LICENSE"));
    for text in [
        "Apache License",
        "Version 2.0, January 2004",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(contains(&license, text), "LICENSE lacks {text:?}");
    }
}
