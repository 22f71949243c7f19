//! AWS failures: access denied stalls with what to grant; throttling backs off and
//! recovers. Faults are injected by wrapping the real RDS adapter (the emulator behind it).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    aws::{
        AwsError, AwsErrorKind, Scope,
        rds::{Rds, SdkRds},
    },
    policy::database::{InstanceChange, InstanceFacts, Policy, ReplicaFacts},
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::PostParams};
use serde_json::json;

/// Fails the named operation with `code` the next `times` calls, then lets it through.
struct Faulty {
    inner: SdkRds,
    faults: Mutex<HashMap<&'static str, (AwsErrorKind, &'static str, u32)>>,
    failed: Mutex<u32>,
}

impl Faulty {
    fn check(&self, operation: &'static str) -> Result<(), AwsError> {
        let mut faults = self.faults.lock().expect("lock");
        if let Some((kind, code, times)) = faults.get_mut(operation)
            && *times > 0
        {
            *times -= 1;
            *self.failed.lock().expect("lock") += 1;
            return Err(AwsError {
                operation,
                kind: *kind,
                code: code.to_string(),
                message: "injected".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Rds for Faulty {
    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceFacts>, AwsError> {
        self.check("DescribeDBInstances")?;
        self.inner.instances(scope).await
    }
    async fn instance(&self, scope: &Scope, id: &str) -> Result<Option<InstanceFacts>, AwsError> {
        self.check("DescribeDBInstances")?;
        self.inner.instance(scope, id).await
    }
    async fn automated_backups(&self, scope: &Scope) -> Result<Vec<ReplicaFacts>, AwsError> {
        self.inner.automated_backups(scope).await
    }
    async fn automated_backups_of(&self, scope: &Scope, src: &str) -> Result<Vec<ReplicaFacts>, AwsError> {
        self.inner.automated_backups_of(scope, src).await
    }
    async fn newest_automated_snapshot(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<Timestamp>, AwsError> {
        self.inner.newest_automated_snapshot(scope, id).await
    }
    async fn newest_automated_snapshots(
        &self,
        scope: &Scope,
    ) -> Result<HashMap<String, Timestamp>, AwsError> {
        self.inner.newest_automated_snapshots(scope).await
    }
    async fn replication_source_regions(&self, scope: &Scope) -> Result<Vec<String>, AwsError> {
        self.inner.replication_source_regions(scope).await
    }
    async fn modify_instance(
        &self,
        scope: &Scope,
        id: &str,
        change: &InstanceChange,
    ) -> Result<InstanceFacts, AwsError> {
        self.check("ModifyDBInstance")?;
        self.inner.modify_instance(scope, id, change).await
    }
    async fn start_replication(
        &self,
        d: &Scope,
        src: &str,
        key: &str,
        days: i32,
    ) -> Result<ReplicaFacts, AwsError> {
        self.check("StartDBInstanceAutomatedBackupsReplication")?;
        self.inner.start_replication(d, src, key, days).await
    }
    async fn stop_replication(&self, d: &Scope, src: &str) -> Result<(), AwsError> {
        self.inner.stop_replication(d, src).await
    }
}

async fn setup(
    prefix: &str,
    faults: &[(&'static str, AwsErrorKind, &'static str, u32)],
) -> (Api<BackedUpDatabase>, RunningController, Arc<Faulty>) {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, prefix).await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "flaky-db", 1).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client, &namespace);
    let object: BackedUpDatabase = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "metadata": {"name": "flaky"},
        "spec": {"instance": {"identifier": "flaky-db", "region": "us-east-1", "roleArn": testing::role_arn(&account)}},
    }))
    .expect("object");
    dbs.create(&PostParams::default(), &object).await.expect("create");

    let aws = env.aws_clients().await;
    let faulty = Arc::new(Faulty {
        inner: SdkRds { clients: aws.clone() },
        faults: Mutex::new(
            faults
                .iter()
                .map(|(op, kind, code, n)| (*op, (*kind, *code, *n)))
                .collect(),
        ),
        failed: Mutex::new(0),
    });
    let ctx = env
        .context_with(
            faulty.clone(),
            aws,
            Policy::default(),
            testing::fast_timing(),
            None,
        )
        .await;
    (dbs, RunningController::start(ctx, &namespace), faulty)
}

#[tokio::test]
async fn access_denied_stalls_naming_what_to_grant_and_recovers_once_granted() {
    let (dbs, _c, faulty) = setup(
        "bdb-denied",
        &[(
            "DescribeDBInstances",
            AwsErrorKind::AccessDenied,
            "AccessDenied",
            1,
        )],
    )
    .await;
    let db = wait_for(&dbs, "flaky", Duration::from_secs(30), |db| {
        condition(db, ConditionType::Stalled).is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, reason, message) = condition(&db, ConditionType::Stalled).expect("stalled");
    assert_eq!(reason, "AccessDenied");
    assert!(
        message.contains("DescribeDBInstances") && message.contains("grant"),
        "{message}"
    );
    assert_eq!(*faulty.failed.lock().expect("lock"), 1);

    // The permission is granted (the fault is spent): the next resync proceeds.
    wait_for(&dbs, "flaky", Duration::from_secs(60), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
}

#[tokio::test]
async fn throttling_backs_off_and_then_succeeds() {
    let (dbs, c, faulty) = setup(
        "bdb-throttled",
        &[
            ("ModifyDBInstance", AwsErrorKind::Transient, "Throttling", 2),
            (
                "StartDBInstanceAutomatedBackupsReplication",
                AwsErrorKind::Transient,
                "ThrottlingException",
                2,
            ),
        ],
    )
    .await;
    let db = wait_for(&dbs, "flaky", Duration::from_secs(60), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        *faulty.failed.lock().expect("lock"),
        4,
        "every injected failure was met and retried"
    );
    assert_eq!(
        db.status.and_then(|s| s.instance).and_then(|i| i.retention_days),
        Some(7)
    );
    assert_eq!(
        c.ctx.calls.calls("StartDBInstanceAutomatedBackupsReplication"),
        1,
        "one real start after the retries"
    );
}

/// A fix that keeps failing on throttling is retried with backoff: the object shows work
/// under way (`Reconciling`), never a person to call (`Stalled`), which GitOps tools read
/// as Failed.
#[tokio::test]
async fn a_fix_retried_after_throttling_is_in_progress_not_stalled() {
    let (dbs, _c, faulty) = setup(
        "bdb-throttled-long",
        &[("ModifyDBInstance", AwsErrorKind::Transient, "Throttling", 1000)],
    )
    .await;
    let db = wait_for(&dbs, "flaky", Duration::from_secs(60), |db| {
        condition(db, ConditionType::Reconciling).is_some_and(|c| c.0 == "True" && c.2.contains("retrying"))
    })
    .await;
    let (_, _, message) = condition(&db, ConditionType::Reconciling).expect("reconciling");
    assert!(message.contains("Throttling"), "{message}");
    // Across several retries, never stalled.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let db = dbs.get("flaky").await.expect("get");
        assert_eq!(
            condition(&db, ConditionType::Stalled).map(|c| c.0).as_deref(),
            Some("False"),
            "{:?}",
            condition(&db, ConditionType::Stalled)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(*faulty.failed.lock().expect("lock") >= 2, "retried");
}
