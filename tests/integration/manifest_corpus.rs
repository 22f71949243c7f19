//! `check` is as strict as the API server: every manifest of the corpus in tests/manifests/bad
//! is refused both by the real kube-apiserver (a server-side dry-run create with strict field
//! validation, what `kubectl create --dry-run=server` sends) and by `check`'s loader, and both
//! name the field its `# field:` comment names. As a control, tests/manifests/good and the
//! examples are accepted by both.
//!
//! A case marked `# pending: <why>` waits for a change on another branch: while the two
//! disagree on it, it is listed (not failed); once they agree, the test asks to drop the mark.

use std::path::{Path, PathBuf};

use backup_warden::{api::validation::ManifestValidator, check};
use backup_warden_testing as testing;
use serde_json::Value;

struct Case {
    path: PathBuf,
    manifest: Value,
    /// The field both refusals must name.
    field: Option<String>,
    pending: Option<String>,
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            let comment = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .map(str::to_string)
            };
            let manifest =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Case {
                field: comment("field"),
                pending: comment("pending"),
                manifest,
                path,
            }
        })
        .collect()
}

/// The API server's answer to a dry-run create of `manifest` in `namespace`: the object it
/// would store, or its message.
async fn api_server(client: &kube::Client, namespace: &str, manifest: &Value) -> Result<Value, String> {
    let plural = match manifest["kind"].as_str() {
        Some("BackedUpDatabase") => "backedupdatabases",
        Some("RetainedAuditTrail") => "retainedaudittrails",
        _ => "backeduprepositories",
    };
    let mut manifest = manifest.clone();
    if let Some(meta) = manifest.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), namespace.into());
    }
    let request = http::Request::post(format!(
        "/apis/backupwarden.io/v1alpha1/namespaces/{namespace}/{plural}?dryRun=All&fieldValidation=Strict"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&manifest).expect("json"))
    .expect("request");
    match client.request::<Value>(request).await {
        Ok(stored) => Ok(stored),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(e) => panic!("the API server did not answer: {e}"),
    }
}

/// `check`'s answer on the file: Ok, or its error text (a panic is reported, not followed).
fn check_loader(path: &Path) -> Result<(), String> {
    match std::panic::catch_unwind(|| check::load(&[path.to_path_buf()])) {
        Ok(loaded) => loaded.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err("check panicked".into()),
    }
}

async fn setup() -> (kube::Client, String) {
    let client = testing::env().client().await;
    testing::install_crds(&client).await;
    // The API server's verdicts are the generated CRDs' (no test loosens them meanwhile).
    let _schema = testing::crd_schema().await;
    let ns = testing::namespace(&client, "corpus").await;
    (client, ns)
}

#[tokio::test]
async fn the_api_server_and_check_refuse_every_bad_manifest_naming_the_same_field() {
    let (client, ns) = setup().await;
    let cases = cases(&testing::repo_root().join("tests/manifests/bad"));
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let (mut failures, mut waiting) = (Vec::new(), Vec::new());
    for case in &cases {
        let name = case
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let server = api_server(&client, &ns, &case.manifest).await;
        let check = check_loader(&case.path);
        let mut problems = Vec::new();
        let Some(field) = &case.field else {
            failures.push(format!("{name}: no `# field:` comment"));
            continue;
        };
        match &server {
            Ok(_) => problems.push("the API server accepted it".to_string()),
            Err(message) if !message.contains(field.as_str()) => problems.push(format!(
                "the API server's refusal does not name {field}: {message}"
            )),
            Err(_) => {}
        }
        match &check {
            Ok(()) => problems.push("check accepted it".to_string()),
            // check prints `file: Kind object: field: message`.
            Err(message) if !message.contains(&format!(": {field}: ")) => {
                problems.push(format!("check's refusal does not name {field}: {message}"))
            }
            Err(_) => {}
        }
        match (&case.pending, problems.is_empty()) {
            (Some(why), false) => waiting.push(format!("{name} ({why}): {}", problems.join("; "))),
            (Some(why), true) => failures.push(format!(
                "{name}: both refuse it now; remove its `# pending: {why}` line"
            )),
            (None, false) => failures.push(format!("{name}: {}", problems.join("; "))),
            (None, true) => {}
        }
    }
    for line in &waiting {
        eprintln!("PENDING {line}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_api_server_and_check_accept_the_good_manifests_and_the_examples() {
    let (client, ns) = setup().await;
    let mut cases = cases(&testing::repo_root().join("tests/manifests/good"));
    assert!(cases.len() >= 10);
    for path in [
        "backedupdatabase-marketplace-db.yaml",
        "backeduprepository-marketplace.yaml",
        "retainedaudittrail-organization.yaml",
    ] {
        let path = testing::repo_root().join("examples").join(path);
        let manifest = serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
        cases.push(Case {
            path,
            manifest,
            field: None,
            pending: None,
        });
    }
    let validator = ManifestValidator::new().expect("validator");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.path.display();
        let server = api_server(&client, &ns, &case.manifest).await;
        if let Err(message) = &server {
            failures.push(format!("{name}: the API server refused it: {message}"));
        }
        if let Err(message) = check_loader(&case.path) {
            failures.push(format!("{name}: check refused it: {message}"));
        }
        // Both fill in the same defaults and prune the same nulls.
        if let (Ok(stored), Ok(validated)) = (&server, validator.validate(&case.manifest))
            && stored["spec"] != validated["spec"]
        {
            failures.push(format!(
                "{name}: the API server stores spec {} but check reads {}",
                stored["spec"], validated["spec"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
