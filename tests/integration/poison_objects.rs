//! One object cannot hurt another: objects the controller cannot read (stored before the
//! CRD refused their values, as after an upgrade that tightened it), objects that point at
//! nothing, and a reconcile that panics. Each is reported on itself while 20 healthy
//! databases beside them converge, /healthz stays truthful, sweeps keep ending, and a
//! controller (re)started among them comes up.

use std::{net::SocketAddr, time::Duration};

use backup_warden::{
    api::{BackedUpDatabase, ConditionType, DatabaseCheck},
    controller::{
        Decoded,
        context::Backoff,
        guard::{self, Guard},
        sweep::Sweep,
    },
};
use backup_warden_testing::{self as testing, free_port, http_get, http_status};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
    runtime::controller::Action,
};
use serde_json::{Value, json};

const SOURCE: &str = "us-east-1";

const HEALTHY: usize = 20;
const RESYNC_SECONDS: u64 = 20;

fn database(name: &str, account: &str, spec: Value) -> Value {
    let mut spec_with_instance = json!({
        "instance": {"identifier": name, "region": SOURCE, "roleArn": testing::role_arn(account)},
        "backups": {"applyImmediately": true}
    });
    merge(&mut spec_with_instance, spec);
    json!({
        "apiVersion": "backupwarden.io/v1alpha1",
        "kind": "BackedUpDatabase",
        "metadata": {"name": name},
        "spec": spec_with_instance,
    })
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// The database CRD with the duration schema of an older release: any number of digits,
/// no CEL rule.
async fn loosen_durations(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "backedupdatabases.backupwarden.io";
    let mut crd = serde_json::to_value(crds.get(name).await.expect("get CRD")).expect("json");
    let freshness = crd
        .pointer_mut(
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/freshness/properties",
        )
        .and_then(Value::as_object_mut)
        .expect("freshness schema");
    for field in freshness.values_mut() {
        let field = field.as_object_mut().expect("field");
        field.remove("x-kubernetes-validations");
        field.insert("pattern".into(), json!(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"));
    }
    let crd = json!({"apiVersion": crd["apiVersion"], "kind": crd["kind"], "metadata": {"name": name}, "spec": crd["spec"]});
    crds.patch(
        name,
        &PatchParams::apply("backup-warden-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("loosen the CRD");
}

/// Creates `object`, retrying while the API server still refuses it (a CRD change takes
/// a moment to apply).
async fn create_when_admitted(api: &Api<DynamicObject>, object: &Value) {
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("object");
    let mut refusal = None;
    for _ in 0..100 {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => return,
            Err(e) => refusal = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} was never admitted: {refusal:?}", object.name_any());
}

/// The real CRD is back once it refuses a zero duration again.
async fn restore_crds(client: &Client, api: &Api<DynamicObject>, account: &str) {
    testing::apply_crds(client).await;
    let probe: DynamicObject = serde_json::from_value(database(
        "probe",
        account,
        json!({"freshness": {"maxReplicaLag": "0s"}}),
    ))
    .expect("probe");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for _ in 0..100 {
        if api.create(&dry_run, &probe).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the CRD's duration rules did not come back");
}

fn condition_of(object: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    let conditions = object.data.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

#[tokio::test]
async fn poison_objects_are_reported_on_themselves_while_healthy_ones_converge() {
    let env = testing::env();
    let client = env.client().await;
    let _heavy = testing::heavy().await;
    testing::install_crds(&client).await;
    let crd_change = testing::crd_schema_change().await;
    let namespace = testing::namespace(&client, "poison").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    let resource = ApiResource::erase::<BackedUpDatabase>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);

    // Values an older schema admitted and the Rust types cannot read.
    let undecodable = [
        (
            "overflowing-duration",
            "spec.freshness.maxRestoreLag",
            json!({"freshness": {"maxRestoreLag": "99999999999999999999h"}}),
        ),
        (
            "zero-duration",
            "spec.freshness.maxSnapshotAge",
            json!({"freshness": {"maxSnapshotAge": "0s"}}),
        ),
        (
            "zero-millis",
            "spec.freshness.maxReplicaLag",
            json!({"freshness": {"maxReplicaLag": "0ms"}}),
        ),
    ];
    loosen_durations(&client).await;
    for (name, _, spec) in &undecodable {
        create_when_admitted(&api, &database(name, &account, spec.clone())).await;
    }
    restore_crds(&client, &api, &account).await;
    drop(crd_change);

    // Values the schema admits that point at nothing.
    let nonsense = [
        ("no-such-instance", json!({})),
        ("unknown-region", json!({"instance": {"region": "zz-nowhere-9"}})),
        (
            "no-such-key",
            json!({"replication": {"kmsKey": {"create": false,
            "arn": format!("arn:aws:kms:us-west-2:{account}:key/00000000-0000-0000-0000-000000000000")}}}),
        ),
    ];
    testing::create_instance(&rds, "no-such-key", 7).await;
    for (name, spec) in &nonsense {
        create_when_admitted(&api, &database(name, &account, spec.clone())).await;
    }
    let healthy: Vec<String> = (0..HEALTHY).map(|i| format!("healthy-{i}")).collect();
    for name in &healthy {
        testing::create_instance(&rds, name, 1).await;
        create_when_admitted(&api, &database(name, &account, json!({}))).await;
    }

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let resync = format!("{RESYNC_SECONDS}s");
    let flags = [
        "--aws-endpoint-url",
        &env.aws_endpoint,
        "--resync-interval",
        &resync,
        "--settle-interval",
        "1s",
        "--request-timeout",
        "5s",
    ];
    let binary = env!("CARGO_BIN_EXE_backup-warden");
    let mut child = testing::spawn_controller(binary, &env.kubeconfig, addr, &namespace, &flags);

    // The healthy ones converge within two resyncs, with /healthz truthful throughout.
    let deadline = std::time::Instant::now() + Duration::from_secs(2 * RESYNC_SECONDS + 10);
    loop {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the controller exited: {}",
            testing::output_of(child)
        );
        if let Some(code) = http_status(addr, "/healthz") {
            assert_eq!(code, 200, "healthz while poison objects exist");
        }
        let objects = api.list(&Default::default()).await.expect("list");
        let ready = objects
            .items
            .iter()
            .filter(|o| healthy.contains(&o.name_any()))
            .filter(|o| condition_of(o, "Ready").is_some_and(|c| c.0 == "True"))
            .count();
        let reported = objects
            .items
            .iter()
            .filter(|o| condition_of(o, "Ready").is_some())
            .count();
        if ready == HEALTHY && reported == objects.items.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ready}/{HEALTHY} healthy Ready, {reported}/{} with a status",
            objects.items.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for (name, field, _) in &undecodable {
        let object = api.get(name).await.expect("get");
        let (status, reason, message) = condition_of(&object, "Stalled").expect("Stalled");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "InvalidSpec"),
            "{name}: {message}"
        );
        assert!(
            message.starts_with(field),
            "{name}: the message names {field}: {message}"
        );
        assert_eq!(condition_of(&object, "Ready").expect("Ready").0, "False");
    }
    let objects = api.list(&Default::default()).await.expect("list").items;
    let reason = |name: &str, type_: &str| {
        let object = objects.iter().find(|o| o.name_any() == name).expect("object");
        condition_of(object, type_).unwrap_or_default()
    };
    assert_eq!(reason("no-such-instance", "Stalled").1, "InstanceNotFound");
    let unknown = reason("unknown-region", "BackupsEnabled");
    assert_eq!(
        (unknown.0.as_str(), unknown.1.as_str()),
        ("Unknown", "ObservationFailed"),
        "{unknown:?}"
    );
    assert!(
        !unknown.2.ends_with(": "),
        "the message says what AWS answered: {}",
        unknown.2
    );
    assert_eq!(reason("no-such-key", "ReplicaKeyCompliant").1, "KeyNotFound");

    // Sweeps end although the poison objects never become Ready.
    let (code, body) = http_get(addr, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(body.contains("last full sweep of BackedUpDatabase: "), "{body}");
    let (_, scrape) = http_get(addr, "/metrics").expect("metrics");
    assert!(
        scrape.contains("backup_warden_last_sweep_timestamp_seconds{kind=\"BackedUpDatabase\"}"),
        "{scrape}"
    );

    // A controller started while they exist comes up and serves.
    child.kill().expect("kill -9");
    let _ = child.wait();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = testing::spawn_controller(binary, &env.kubeconfig, addr, &namespace, &flags);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while http_status(addr, "/readyz") != Some(200) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "restart failed: {}",
            testing::output_of(child)
        );
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz not 200 after a restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(http_status(addr, "/healthz"), Some(200));
    child.kill().expect("kill");
    let _ = child.wait();
}

#[tokio::test]
async fn a_panic_is_contained_to_its_object_and_reported_on_it() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "panic").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpDatabase =
        serde_json::from_value(database("db", &testing::unique_account(), json!({}))).expect("object");
    let created = dbs.create(&PostParams::default(), &object).await.expect("create");

    let metrics = std::sync::Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
    let guard = Guard {
        kind: "BackedUpDatabase",
        client: client.clone(),
        metrics: metrics.clone(),
        recorder: backup_warden::report::recorder::Recorder::new(
            client.clone(),
            "backup-warden-tests".into(),
        ),
        sweep: std::sync::Arc::new(Sweep::new("BackedUpDatabase", metrics.clone())),
        store: kube::runtime::reflector::store().0,
        claims: Default::default(),
        tenancy: testing::open_tenancy(),
        resync: Duration::from_secs(60),
    };
    let backoff = Backoff::new(testing::fast_timing());
    let decoded = Decoded::Valid(std::sync::Arc::new(created));
    let outcome: Result<Action, std::convert::Infallible> =
        guard::reconcile(&guard, &backoff, &decoded, |_| async {
            panic!("index out of bounds: the len is 0")
        })
        .await;
    assert!(outcome.is_ok(), "the panic is caught and turned into a retry");

    let stored = dbs.get("db").await.expect("get");
    let (status, reason, message) = testing::condition(&stored, ConditionType::Stalled).expect("Stalled");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InternalError"));
    assert!(message.contains("index out of bounds"), "{message}");
    assert_eq!(
        metrics
            .reconcile_errors
            .with_label_values(&["BackedUpDatabase", "panic"])
            .get(),
        1
    );
}

/// A context whose AWS calls go to `endpoint` and give up after a second.
/// A context whose AWS endpoint is `endpoint`, with short timeouts: one attempt may take 1 s,
/// the whole operation (the SDK's retries and their backoff included) `operation`.
async fn context_at(
    endpoint: &str,
    operation: Duration,
) -> std::sync::Arc<backup_warden::controller::Context> {
    let env = testing::env();
    let timeouts = backup_warden::timeouts::Timeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(1),
        operation,
    };
    let aws = env.aws_clients_at(endpoint, timeouts).await;
    let rds = std::sync::Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
    let policy = backup_warden::policy::database::Policy {
        min_retention_days: 7,
        audit_only: false,
    };
    env.context_with(rds, aws, policy, testing::fast_timing(), None)
        .await
}

#[tokio::test]
async fn a_frozen_endpoint_turns_checks_unknown_never_a_stale_true() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "frozen").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    testing::create_instance(&rds, "db", 7).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpDatabase =
        serde_json::from_value(database("db", &account, json!({}))).expect("object");
    dbs.create(&PostParams::default(), &object).await.expect("create");

    let target = env.aws_endpoint.trim_start_matches("http://");
    let proxy = testing::proxy::FreezableProxy::start(target).await;
    let _controller =
        testing::RunningController::start(context_at(&proxy.url, Duration::from_secs(2)).await, &namespace);
    let ready =
        |db: &BackedUpDatabase| testing::condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True");
    testing::wait_for(&dbs, "db", Duration::from_secs(60), ready).await;

    // The endpoint stops answering and the retention drifts meanwhile.
    proxy.freeze(true);
    rds.modify_db_instance()
        .db_instance_identifier("db")
        .backup_retention_period(1)
        .apply_immediately(true)
        .send()
        .await
        .expect("lower the retention");
    let unknown = testing::wait_for(&dbs, "db", Duration::from_secs(30), |db| {
        testing::condition(db, DatabaseCheck::RetentionCompliant).is_some_and(|c| c.0 == "Unknown")
    })
    .await;
    let (status, reason, message) = testing::condition(&unknown, ConditionType::Ready).expect("Ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("Unknown", "ObservationFailed")
    );
    assert!(
        message.contains("timed out") || message.contains("Timeout"),
        "{message}"
    );

    // Back: the drift is found and healed.
    proxy.freeze(false);
    testing::wait_for(&dbs, "db", Duration::from_secs(60), ready).await;
    let out = rds
        .describe_db_instances()
        .db_instance_identifier("db")
        .send()
        .await
        .expect("describe");
    assert_eq!(out.db_instances()[0].backup_retention_period(), Some(7));
}

#[tokio::test]
async fn a_region_without_an_endpoint_stalls_the_object_saying_so() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "noregion").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpDatabase = serde_json::from_value(database(
        "db",
        &testing::unique_account(),
        json!({"instance": {"region": "zz-nowhere-9"}}),
    ))
    .expect("object");
    dbs.create(&PostParams::default(), &object).await.expect("create");
    // As AWS's endpoint for a region that does not exist, this name never resolves.
    // The SDK retries a failed lookup twice with up to 3 s of backoff: the operation's
    // timeout leaves room for them, or the lookup's error is lost to a timeout (as in
    // production, where an operation has 60 s).
    let context = context_at("http://rds.zz-nowhere-9.invalid", Duration::from_secs(10)).await;
    let _controller = testing::RunningController::start(context, &namespace);
    let stalled = testing::wait_for(&dbs, "db", Duration::from_secs(30), |db| {
        testing::condition(db, ConditionType::Stalled).is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, reason, message) = testing::condition(&stalled, ConditionType::Stalled).expect("Stalled");
    assert_eq!(reason, "RegionUnreachable", "{message}");
    assert!(message.contains("zz-nowhere-9"), "{message}");
    assert_eq!(
        testing::condition(&stalled, DatabaseCheck::BackupsEnabled)
            .expect("check")
            .0,
        "Unknown"
    );
}
