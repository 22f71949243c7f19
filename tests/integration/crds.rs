//! The generated CRDs: `crds/` matches `backup-warden crd`, and the defaults in the schema
//! are the defaults of the Rust types (so the controller and the API server agree).

use std::process::Command;

use backup_warden::api::{self, BackedUpDatabaseSpec, BackedUpRepositorySpec};
use serde_json::{Value, json};

fn crd_schema(plural: &str) -> Value {
    let crd = api::crds()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .expect("crd");
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("schema");
    serde_json::to_value(schema).expect("json")
}

/// Applies every `default` in `schema` to `value`, as the API server does.
fn apply_defaults(schema: &Value, value: &mut Value) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Some(object) = value.as_object_mut() else {
        return;
    };
    for (name, property) in properties {
        if let (false, Some(default)) = (object.contains_key(name), property.get("default")) {
            object.insert(name.clone(), default.clone());
        }
        if let Some(child) = object.get_mut(name) {
            apply_defaults(property, child);
        }
    }
}

#[test]
fn crds_directory_matches_the_generated_crds() {
    let dir = backup_warden_testing::repo_root().join("crds");
    for crd in api::crds() {
        let name = crd.metadata.name.clone().expect("name");
        let path = dir.join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = api::crds_yaml(std::slice::from_ref(&crd)).expect("yaml");
        assert!(
            committed == generated,
            "{} is out of date with src/api: run `make crds` (backup-warden crd --output-dir crds) and commit the result",
            path.display()
        );
    }
}

#[test]
fn crd_command_prints_every_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .arg("crd")
        .output()
        .expect("run crd");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML stream");
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "backedupdatabases.backupwarden.io",
            "backeduprepositories.backupwarden.io",
            "backupcoverages.backupwarden.io",
            "retainedaudittrails.backupwarden.io"
        ]
    );
}

#[test]
fn version_command_prints_the_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .arg("version")
        .output()
        .expect("run version");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("backup-warden {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn schema_defaults_equal_the_rust_defaults_for_a_database() {
    let minimal = json!({"instance": {"identifier": "orders-db", "region": "us-east-1"}});
    let mut defaulted = minimal.clone();
    apply_defaults(
        &crd_schema("backedupdatabases")["properties"]["spec"],
        &mut defaulted,
    );
    let by_schema: BackedUpDatabaseSpec = serde_json::from_value(defaulted).expect("schema-defaulted spec");
    let by_rust: BackedUpDatabaseSpec = serde_json::from_value(minimal).expect("serde-defaulted spec");
    assert_eq!(by_schema, by_rust);
    assert_eq!(by_rust.backups.retention_days, 7);
    assert_eq!(by_rust.replication.destination_region, "us-west-2");
    assert!(by_rust.replication.kms_key.create);
    assert_eq!(by_rust.freshness.max_restore_lag.as_duration().as_secs(), 3600);
    assert_eq!(
        by_rust.freshness.max_snapshot_age.as_duration().as_secs(),
        26 * 3600
    );
}

#[test]
fn schema_defaults_equal_the_rust_defaults_for_a_repository() {
    let minimal =
        json!({"repository": "narrative-io/marketplace", "storage": {"bucket": "narrative-github-backups"}});
    let mut defaulted = minimal.clone();
    apply_defaults(
        &crd_schema("backeduprepositories")["properties"]["spec"],
        &mut defaulted,
    );
    let by_schema: BackedUpRepositorySpec = serde_json::from_value(defaulted).expect("schema-defaulted spec");
    let by_rust: BackedUpRepositorySpec = serde_json::from_value(minimal).expect("serde-defaulted spec");
    assert_eq!(by_schema, by_rust);
    assert_eq!(by_rust.storage.retention_days, 90);
    assert_eq!(by_rust.workflow.schedule, "17 3 * * *");
}

#[test]
fn every_user_facing_field_is_documented() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let child = format!("{path}.{name}");
                if property.get("description").is_none() {
                    missing.push(child.clone());
                }
                walk(&child, property, missing);
                if let Some(items) = property.get("items") {
                    walk(&child, items, missing);
                }
            }
        }
    }
    let mut missing = Vec::new();
    for plural in ["backedupdatabases", "backeduprepositories", "backupcoverages"] {
        walk(plural, &crd_schema(plural)["properties"]["spec"], &mut missing);
        walk(plural, &crd_schema(plural)["properties"]["status"], &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description (kubectl explain shows nothing): {missing:?}"
    );
}
