//! The GitOps contract of docs/gitops.md, held true: live objects in each state, read back
//! from the real API server, go through kstatus (what Flux's health checks use) and through
//! the Argo CD health script the docs ship, run by gopher-lua as Argo CD runs it
//! (tests/gitops, built by hack/gitops-health.sh). Each must show what the docs' table says.
//!
//! States the controller reaches on its own (compliant, audit drift, a missing instance,
//! suspended) are made by the controller; short-lived ones (a fix under way, an outage, a
//! pull request to review) are written by the controller's own status code, in a namespace
//! no controller watches so that they stay put.

use std::process::Command;

use crate::support::{CONVERGE, is, world};
use backup_warden::{
    api::{
        BackedUpDatabase, BackedUpRepository, ConditionType, DatabaseCheck, Reason, RepositoryCheck,
        conditions::Condition,
    },
    policy::{Finding, Verdict, database::Policy},
    report::status::{Progress, apply_findings, apply_unobserved, patch_status},
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Lua of `argocd-cm` in docs/gitops.md: one script, the same under every kind's key.
fn shipped_lua() -> String {
    let docs = std::fs::read_to_string(format!("{ROOT}/docs/gitops.md")).expect("docs/gitops.md");
    let script = |kind: &str| {
        let key = format!("  resource.customizations.health.backupwarden.io_{kind}: |\n");
        let start = docs.find(&key).unwrap_or_else(|| panic!("no {key:?}")) + key.len();
        docs[start..]
            .lines()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .take_while(|l| !l.is_empty())
            .map(|l| format!("{}\n", &l[4..]))
            .collect::<String>()
    };
    let (db, repo) = (script("BackedUpDatabase"), script("BackedUpRepository"));
    assert!(db.contains("hs.status = \"Healthy\""), "{db}");
    assert_eq!(db, repo, "one script for every kind");
    assert_eq!(db, script("RetainedAuditTrail"), "one script for every kind");
    db
}

/// `(kstatus, Argo CD)` of a state, as the docs' contract table says.
fn documented(state: &str) -> (String, String) {
    let docs = std::fs::read_to_string(format!("{ROOT}/docs/gitops.md")).expect("docs/gitops.md");
    let row = docs
        .lines()
        .find(|l| l.starts_with(&format!("| {state} |")))
        .unwrap_or_else(|| panic!("no row {state:?} in the contract table"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    (cells[5].to_string(), cells[6].to_string())
}

/// What kstatus and the Argo CD script say of each object, in order.
fn health_of(objects: &[Value]) -> Vec<(String, String)> {
    let tool = Command::new(format!("{ROOT}/hack/gitops-health.sh"))
        .output()
        .expect("hack/gitops-health.sh");
    assert!(tool.status.success(), "{}", String::from_utf8_lossy(&tool.stderr));
    let tool = String::from_utf8(tool.stdout).expect("path");
    let lua = tempfile_with(&shipped_lua());
    let mut child = Command::new(tool.trim())
        .arg("--lua")
        .arg(&lua)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitops-health");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(objects).expect("json"))
        .expect("write");
    let out = child.wait_with_output().expect("gitops-health");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("results");
    results
        .iter()
        .map(|r| {
            let text = |p: &str| {
                r.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (text("/kstatus/status"), text("/argocd/status"))
        })
        .collect()
}

fn tempfile_with(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(testing::unique_name("argocd-health") + ".lua");
    std::fs::write(&path, text).expect("write the script");
    path
}

/// The object as `kubectl get -o json` shows it.
fn live(ns: &str, kind: &str, name: &str) -> Value {
    let out = testing::env().kubectl(&["get", kind, name, "-n", ns, "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("object")
}

fn database(name: &str, identifier: &str, extra: Value) -> BackedUpDatabase {
    let mut spec = json!({"instance": {"identifier": identifier, "region": "us-east-1"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("object")
}

/// Conditions as the controller's status code writes them.
fn conditions(
    set: impl FnOnce(&mut Vec<Condition>, Option<i64>, Timestamp),
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut c = Vec::new();
    set(&mut c, generation, Timestamp::now());
    c
}

#[tokio::test]
async fn kstatus_and_argo_cd_show_each_state_as_the_docs_say() {
    // The controller's states, in a namespace it watches.
    let w = world("gitops").await;
    testing::create_instance(&w.rds_source, "fine-db", 1).await;
    testing::create_instance(&w.rds_source, "audited-db", 1).await;
    w.apply("compliant", "fine-db", json!({})).await;
    w.apply("audit-drift", "audited-db", json!({"mode": "Audit"}))
        .await;
    w.apply("missing", "no-such-db", json!({})).await;
    w.apply("suspended-new", "other-db", json!({"suspend": true}))
        .await;
    let ctx = testing::env()
        .context(Policy::default(), testing::fast_timing())
        .await;
    let controller = RunningController::start(ctx, &w.namespace);
    wait_for(&w.dbs, "compliant", CONVERGE, is("True", ConditionType::Ready)).await;
    let stalled = |reason: &'static str| {
        move |db: &BackedUpDatabase| {
            condition(db, ConditionType::Stalled).is_some_and(|c| c.0 == "True" && c.1 == reason)
        }
    };
    wait_for(&w.dbs, "audit-drift", CONVERGE, stalled("AuditOnly")).await;
    wait_for(&w.dbs, "missing", CONVERGE, stalled("InstanceNotFound")).await;
    let suspended = |db: &BackedUpDatabase| {
        condition(db, ConditionType::Reconciling).is_some_and(|c| c.1 == "Suspended")
            && db.status.as_ref().and_then(|s| s.observed_generation) == db.metadata.generation
    };
    wait_for(&w.dbs, "suspended-new", CONVERGE, suspended).await;
    let ns = w.namespace.clone();
    let mut states: Vec<(&str, Value)> = vec![
        ("compliant", live(&ns, "bdb", "compliant")),
        ("audit drift", live(&ns, "bdb", "audit-drift")),
        ("a person must act", live(&ns, "bdb", "missing")),
        ("suspended before any look", live(&ns, "bdb", "suspended-new")),
    ];
    // Suspended after a look: kstatus keeps showing that look.
    w.dbs
        .patch(
            "compliant",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend");
    wait_for(&w.dbs, "compliant", CONVERGE, suspended).await;
    states.push(("suspended after a compliant look", live(&ns, "bdb", "compliant")));
    drop(controller);

    // Short-lived states, written by the controller's status code where no controller runs.
    let client = testing::env().client().await;
    let quiet = testing::namespace(&client, "gitops-quiet").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &quiet);
    let create = |name: &'static str, identifier: &'static str| {
        let dbs = dbs.clone();
        async move {
            dbs.create(&PostParams::default(), &database(name, identifier, json!({})))
                .await
                .expect("create")
        }
    };
    let write = |object: BackedUpDatabase, conditions: Vec<Condition>| {
        let client = client.clone();
        async move {
            let status = json!({"observedGeneration": object.metadata.generation, "conditions": conditions});
            patch_status(&client, &object, &status).await.expect("status");
        }
    };
    let drift = Finding::new(
        DatabaseCheck::RetentionCompliant,
        Verdict::Drift,
        Reason::DriftDetected,
        "retention is 1 day",
    );

    create("no-status", "a-db").await;
    states.push(("no status yet", live(&quiet, "bdb", "no-status")));

    let fixing = create("fixing", "b-db").await;
    let progress = Progress {
        working: vec!["raised backup retention from 1 day to 7 days".into()],
        ..Progress::default()
    };
    let g = fixing.metadata.generation;
    write(
        fixing,
        conditions(
            |c, g, t| apply_findings(c, std::slice::from_ref(&drift), &progress, g, t),
            g,
        ),
    )
    .await;
    states.push(("being fixed", live(&quiet, "bdb", "fixing")));

    let outage = create("outage", "c-db").await;
    let g = outage.metadata.generation;
    let unobserved = |c: &mut Vec<Condition>, g, t| {
        apply_unobserved(
            c,
            &ConditionType::DATABASE_CHECKS,
            Reason::ObservationFailed,
            "cannot read AWS: DescribeDBInstances: timeout; retrying",
            false,
            g,
            t,
        )
    };
    write(outage, conditions(unobserved, g)).await;
    states.push(("cannot read AWS or GitHub", live(&quiet, "bdb", "outage")));

    let changed = create("changed", "d-db").await;
    let g = changed.metadata.generation;
    let pass = Finding::pass(DatabaseCheck::RetentionCompliant, "retention is 7 days");
    write(
        changed,
        conditions(
            |c, g, t| apply_findings(c, &[pass], &Progress::default(), g, t),
            g,
        ),
    )
    .await;
    dbs.patch(
        "changed",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"backups": {"retentionDays": 14}}})),
    )
    .await
    .expect("a spec change");
    states.push(("spec changed, not yet looked at", live(&quiet, "bdb", "changed")));

    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &quiet);
    let repo: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "review"},
        "spec": {"repository": "narrative-io/docs", "storage": {"bucket": "backups"}},
    }))
    .expect("repository");
    let repo = repos.create(&PostParams::default(), &repo).await.expect("create");
    let review = Finding::new(
        RepositoryCheck::WorkflowPresent,
        Verdict::Blocked,
        Reason::PullRequestOpen,
        "pull request https://github.com/narrative-io/docs/pull/3 waits for review",
    );
    let g = repo.metadata.generation;
    let status = json!({
        "observedGeneration": g,
        "conditions": conditions(|c, g, t| apply_findings(c, &[review], &Progress::default(), g, t), g),
    });
    patch_status(&client, &repo, &status).await.expect("status");
    states.push(("awaiting review", live(&quiet, "brepo", "review")));

    let mut held = database("deleting", "e-db", json!({}));
    held.metadata.finalizers = Some(vec!["backupwarden.io/test-hold".into()]);
    dbs.create(&PostParams::default(), &held).await.expect("create");
    dbs.delete("deleting", &DeleteParams::default())
        .await
        .expect("delete");
    states.push(("being deleted", live(&quiet, "bdb", "deleting")));
    dbs.patch(
        "deleting",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");

    let objects: Vec<Value> = states.iter().map(|(_, o)| o.clone()).collect();
    let shown = health_of(&objects);
    let mut wrong = Vec::new();
    for ((state, object), shown) in states.iter().zip(&shown) {
        let expected = documented(state);
        if *shown != expected {
            wrong.push(format!(
                "{state}: documented {expected:?}, shown {shown:?}; status {}",
                object.get("status").cloned().unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every row of the table was looked at.
    let docs = std::fs::read_to_string(format!("{ROOT}/docs/gitops.md")).expect("docs");
    let table = docs
        .split("| state | Ready | Reconciling | Stalled | kstatus (Flux) | Argo CD |")
        .nth(1)
        .expect("the contract table");
    let rows: Vec<&str> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap_or_default().trim())
        .collect();
    let tested: Vec<&str> = states.iter().map(|(s, _)| *s).collect();
    for row in rows {
        assert!(tested.contains(&row), "the row {row:?} is not tested");
    }
}
