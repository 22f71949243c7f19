//! The API against a real kube-apiserver + etcd: CRDs install, examples apply, bad
//! manifests are refused with a message naming the field, status goes through the status
//! subresource, and kubectl shows the printer columns.

use backup_warden::api::{
    BackedUpDatabase, BackedUpRepository, ConditionStatus, ConditionType, DatabaseCheck, Reason,
    database::ObservedInstance, set_condition,
};
use backup_warden_testing as testing;
use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition, jiff::Timestamp,
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
    core::Resource,
};
use serde_json::{Value, json};

async fn setup(prefix: &str) -> (kube::Client, String) {
    let client = testing::env().client().await;
    testing::install_crds(&client).await;
    // The API server's verdicts are the generated CRDs' (no test loosens them meanwhile).
    let _schema = testing::crd_schema().await;
    let ns = testing::namespace(&client, prefix).await;
    (client, ns)
}

fn dynamic_api<K: Resource<DynamicType = ()>>(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

fn database(spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": "db"}, "spec": spec,
    }))
    .expect("object")
}

fn repository(spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "repo"}, "spec": spec,
    }))
    .expect("object")
}

fn valid_database_spec() -> Value {
    json!({"instance": {"identifier": "orders-db", "region": "us-east-1"}})
}

fn valid_repository_spec() -> Value {
    json!({"repository": "narrative-io/marketplace", "storage": {"bucket": "narrative-github-backups"}})
}

/// Merges `patch` into `base` (objects recursively, other values replaced).
fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }
    merge(&mut base, patch);
    base
}

#[tokio::test]
async fn crds_become_established() {
    let client = testing::env().client().await;
    testing::install_crds(&client).await;
    // The API server's verdicts are the generated CRDs' (no test loosens them meanwhile).
    let _schema = testing::crd_schema().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for name in [
        "backedupdatabases.backupwarden.io",
        "backeduprepositories.backupwarden.io",
    ] {
        let crd = crds.get(name).await.expect("CRD exists");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is not Established");
        assert_eq!(crd.spec.scope, "Namespaced");
    }
}

#[tokio::test]
async fn examples_apply_and_get_schema_defaults() {
    let (client, ns) = setup("examples").await;
    let dir = testing::repo_root().join("examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue; // the demo program lives here too
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        let object: DynamicObject =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let api = match object.types.as_ref().map(|t| t.kind.as_str()) {
            Some("BackedUpDatabase") => dynamic_api::<BackedUpDatabase>(&client, &ns),
            Some("BackedUpRepository") => dynamic_api::<BackedUpRepository>(&client, &ns),
            _ => continue, // the namespace manifest
        };
        let name = object.metadata.name.clone().expect("example has a name");
        let mut object = object;
        object.metadata.namespace = Some(ns.clone());
        api.patch(&name, &PatchParams::apply("tests"), &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
        applied += 1;
    }
    assert_eq!(applied, 3, "the examples of both kinds");

    // The typed client reads them back, so the Rust types and the schema agree.
    let db = Api::<BackedUpDatabase>::namespaced(client.clone(), &ns)
        .get("marketplace-db")
        .await
        .expect("db example");
    assert_eq!(db.spec.replication.destination_region, "us-west-2");
    let repo = Api::<BackedUpRepository>::namespaced(client, &ns)
        .get("marketplace")
        .await
        .expect("repo example");
    assert_eq!(repo.spec.storage.retention_days, 90);
}

#[tokio::test]
async fn the_api_server_fills_in_the_documented_defaults() {
    let (client, ns) = setup("defaults").await;
    dynamic_api::<BackedUpDatabase>(&client, &ns)
        .create(&PostParams::default(), &database(valid_database_spec()))
        .await
        .expect("minimal database");
    dynamic_api::<BackedUpRepository>(&client, &ns)
        .create(&PostParams::default(), &repository(valid_repository_spec()))
        .await
        .expect("minimal repository");

    let db = Api::<BackedUpDatabase>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .expect("get");
    assert_eq!(db.spec.mode, backup_warden::api::Mode::Enforce);
    assert_eq!(db.spec.backups.retention_days, 7);
    assert!(!db.spec.backups.apply_immediately);
    assert_eq!(db.spec.replication.destination_region, "us-west-2");
    assert_eq!(db.spec.replication.retention_days, 7);
    assert!(db.spec.replication.kms_key.create);
    assert!(!db.spec.replication.allow_replication_restart);
    assert_eq!(db.spec.freshness.max_restore_lag.to_string(), "1h");
    assert_eq!(db.spec.freshness.max_snapshot_age.to_string(), "26h");
    assert_eq!(db.spec.freshness.max_replica_lag.to_string(), "2h");

    let repo = Api::<BackedUpRepository>::namespaced(client, &ns)
        .get("repo")
        .await
        .expect("get");
    assert_eq!(repo.spec.workflow.path, ".github/workflows/backup-daily.yml");
    assert_eq!(repo.spec.workflow.allowed_refs, vec!["main"]);
    assert_eq!(repo.spec.workflow.schedule, "17 3 * * *");
    assert_eq!(
        repo.spec.workflow.delivery,
        backup_warden::api::repository::Delivery::PullRequest
    );
    assert_eq!(repo.spec.storage.region, "us-east-1");
    assert_eq!(repo.spec.storage.retention_days, 90);
    assert_eq!(repo.spec.freshness.max_backup_age.to_string(), "26h");
    assert_eq!(repo.spec_defaults_for_test(), ());
}

trait SpecDefaults {
    fn spec_defaults_for_test(&self);
}
impl SpecDefaults for BackedUpRepository {
    fn spec_defaults_for_test(&self) {
        assert_eq!(
            self.spec.reusable_workflow(),
            "narrative-io/github-common/.github/workflows/backup.yml"
        );
        assert_eq!(self.spec.storage_prefix(), "narrative-io/marketplace/");
    }
}

/// (description, the manifest's spec, text the refusal must contain)
fn bad_manifests() -> Vec<(&'static str, DynamicObject, &'static str)> {
    let db = |patch: Value| database(merged(valid_database_spec(), patch));
    let repo = |patch: Value| repository(merged(valid_repository_spec(), patch));
    vec![
        (
            "retention 0",
            db(json!({"backups": {"retentionDays": 0}})),
            "spec.backups.retentionDays",
        ),
        (
            "retention 40",
            db(json!({"backups": {"retentionDays": 40}})),
            "spec.backups.retentionDays",
        ),
        (
            "replica retention 0",
            db(json!({"replication": {"retentionDays": 0}})),
            "spec.replication.retentionDays",
        ),
        (
            "destination equals source",
            db(json!({"replication": {"destinationRegion": "us-east-1"}})),
            "spec.replication.destinationRegion must differ from spec.instance.region",
        ),
        (
            "key ARN in another region",
            db(
                json!({"replication": {"kmsKey": {"arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}}),
            ),
            "spec.replication.kmsKey.arn must be a key in spec.replication.destinationRegion",
        ),
        (
            "key both created and given",
            db(
                json!({"replication": {"kmsKey": {"create": true, "arn": "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}}),
            ),
            "spec.replication.kmsKey",
        ),
        (
            "malformed region",
            db(json!({"instance": {"region": "US East"}})),
            "spec.instance.region",
        ),
        (
            "malformed identifier",
            db(json!({"instance": {"identifier": "1-bad--name-"}})),
            "spec.instance.identifier",
        ),
        ("unknown mode", db(json!({"mode": "Sometimes"})), "spec.mode"),
        (
            "negative threshold",
            db(json!({"freshness": {"maxRestoreLag": "-1h"}})),
            "spec.freshness.maxRestoreLag",
        ),
        (
            "threshold without unit",
            db(json!({"freshness": {"maxSnapshotAge": "26"}})),
            "spec.freshness.maxSnapshotAge",
        ),
        (
            "missing instance",
            database(json!({"backups": {"retentionDays": 7}})),
            "spec.instance",
        ),
        (
            "malformed repository",
            repo(json!({"repository": "not a repository"})),
            "spec.repository",
        ),
        (
            "repository without owner",
            repo(json!({"repository": "marketplace"})),
            "spec.repository",
        ),
        (
            "missing storage",
            repository(json!({"repository": "narrative-io/marketplace"})),
            "spec.storage",
        ),
        (
            "unknown delivery",
            repo(json!({"workflow": {"delivery": "Email"}})),
            "spec.workflow.delivery",
        ),
        (
            "schedule not daily",
            repo(json!({"workflow": {"schedule": "0 3 * * 1"}})),
            "spec.workflow.schedule",
        ),
        (
            "no allowed ref",
            repo(json!({"workflow": {"allowedRefs": []}})),
            "spec.workflow.allowedRefs",
        ),
        (
            "storage retention 0",
            repo(json!({"storage": {"retentionDays": 0}})),
            "spec.storage.retentionDays",
        ),
        (
            "negative backup age",
            repo(json!({"freshness": {"maxBackupAge": "-26h"}})),
            "spec.freshness.maxBackupAge",
        ),
    ]
}

#[tokio::test]
async fn bad_manifests_are_refused_with_a_message_naming_the_field() {
    let (client, ns) = setup("refusals").await;
    let cases = bad_manifests();
    assert!(cases.len() >= 8);
    for (what, object, expected) in cases {
        let api = match object.types.as_ref().map(|t| t.kind.as_str()) {
            Some("BackedUpDatabase") => dynamic_api::<BackedUpDatabase>(&client, &ns),
            _ => dynamic_api::<BackedUpRepository>(&client, &ns),
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => panic!("{what}: the API server accepted it"),
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{what}: {status:?}");
                assert!(
                    status.message.contains(expected),
                    "{what}: {:?} does not mention {expected:?}",
                    status.message
                );
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
        }
    }
}

#[tokio::test]
async fn status_is_written_through_the_status_subresource_and_shown_by_kubectl() {
    let (client, ns) = setup("status").await;
    let api = Api::<BackedUpDatabase>::namespaced(client.clone(), &ns);
    dynamic_api::<BackedUpDatabase>(&client, &ns)
        .create(&PostParams::default(), &database(valid_database_spec()))
        .await
        .expect("create");
    let created = api.get("db").await.expect("get");
    let generation = created.metadata.generation;

    let mut status = created.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let now = backup_warden::api::conditions::whole_seconds(Timestamp::now());
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ConditionStatus::False,
        Reason::DriftDetected,
        "retention is 1 day (policy 7)",
        generation,
        now,
    );
    set_condition(
        &mut status.conditions,
        DatabaseCheck::RetentionCompliant,
        ConditionStatus::False,
        Reason::DriftDetected,
        "retention is 1 day (policy 7)",
        generation,
        now,
    );
    status.instance = Some(ObservedInstance {
        arn: Some("arn:aws:rds:us-east-1:123456789012:db:orders-db".into()),
        status: Some("available".into()),
        retention_days: Some(1),
        latest_snapshot_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        ..Default::default()
    });
    status.replica = Some(backup_warden::api::database::ObservedReplica {
        region: Some("us-west-2".into()),
        ..Default::default()
    });
    let patch =
        json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "status": status});
    api.patch_status(
        "db",
        &PatchParams::apply("backup-warden-tests").force(),
        &Patch::Apply(&patch),
    )
    .await
    .expect("status patch");

    let read = api.get("db").await.expect("get");
    assert_eq!(
        read.metadata.generation, generation,
        "a status write does not bump the generation"
    );
    let read_status = read.status.expect("status stored");
    assert_eq!(read_status, status);

    // A status written through the main resource is ignored (the subresource owns it).
    let mut spec_write = read_status.clone();
    spec_write.instance = None;
    let main = json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "spec": valid_database_spec(), "status": spec_write});
    api.patch(
        "db",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(&main),
    )
    .await
    .expect("main patch");
    assert!(
        api.get("db")
            .await
            .expect("get")
            .status
            .and_then(|s| s.instance)
            .is_some()
    );

    let out = testing::env().kubectl(&["get", "bdb", "-n", &ns]);
    assert!(
        out.status.success(),
        "kubectl get bdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "MODE",
            "SUSPENDED",
            "RETENTION",
            "REPLICA",
            "REGION",
            "LAST",
            "SNAPSHOT",
            "AGE"
        ],
        "{text}"
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["db", "False", "Enforce", "false", "1", "us-west-2"],
        "{text}"
    );

    let out = testing::env().kubectl(&["get", "brepo", "-n", &ns]);
    assert!(out.status.success());
    let out = testing::env().kubectl(&["get", "brepo", "-n", &ns, "-o", "name"]);
    assert!(out.status.success());
}

#[tokio::test]
async fn repository_printer_columns() {
    let (client, ns) = setup("repo-columns").await;
    dynamic_api::<BackedUpRepository>(&client, &ns)
        .create(&PostParams::default(), &repository(valid_repository_spec()))
        .await
        .expect("create");
    let status = json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "AllChecksPassed", "message": "", "lastTransitionTime": "2026-11-26T06:00:00Z"}],
        "workflow": {"present": true, "state": "active", "lastRun": {"conclusion": "success", "url": "https://github.com/narrative-io/marketplace/actions/runs/1"}},
        "latestBackup": {"key": "narrative-io/marketplace/2026-11-26.tar.gz", "lastModified": "2026-11-26T03:20:00Z"},
    });
    let patch =
        json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository", "status": status});
    Api::<BackedUpRepository>::namespaced(client, &ns)
        .patch_status(
            "repo",
            &PatchParams::apply("backup-warden-tests"),
            &Patch::Apply(&patch),
        )
        .await
        .expect("status patch");
    let out = testing::env().kubectl(&["get", "brepo", "-n", &ns]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "MODE",
            "SUSPENDED",
            "WORKFLOW",
            "LAST",
            "RUN",
            "LAST",
            "BACKUP",
            "AGE"
        ],
        "{text}"
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["repo", "True", "Enforce", "false", "active", "success"],
        "{text}"
    );
}
