//! Replica keys under faults, against the real API server and the emulator: every case
//! counts the keys in the destination region. A key made before a crash, or left by a
//! failed alias step, is adopted rather than doubled; no key is made while the quota is
//! known to be exhausted; two controllers without leader election end with one aliased
//! key per instance once the cleanup has run; the cleanup schedules only the controller's
//! own orphans; a spec-given key must be customer managed and the replica's own.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use crate::support::{CONVERGE, DESTINATION, Key, SOURCE, SOURCE_TAG, World, is, world};
use async_trait::async_trait;
use backup_warden::{
    api::{ConditionType, DatabaseCheck},
    aws::{
        AwsError, AwsErrorKind, Scope,
        kms::{AliasOutcome, Kms, ReplicaKeyRequest, SdkKms},
    },
    controller::{Context, key_cleanup::KeyCleanupSettings},
    policy::{
        database::{KeyFacts, Policy, replica_key_alias},
        keys::TaggedKey,
    },
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use serde_json::json;

const A_DAY_AND_MORE: u64 = 25 * 3600;

impl World {
    fn destination(&self) -> Scope {
        Scope::new(Some(&testing::role_arn(&self.account)), DESTINATION)
    }

    fn request(&self, identifier: &str) -> ReplicaKeyRequest {
        ReplicaKeyRequest {
            alias: replica_key_alias(SOURCE, identifier),
            account_id: self.account.clone(),
            partition: "aws".into(),
            source_arn: self.source_arn(identifier),
        }
    }

    /// A key made exactly as the controller's KMS adapter makes it (tags, policy), no alias.
    async fn key_made_by_the_adapter(&self, identifier: &str) -> KeyFacts {
        let kms = SdkKms {
            clients: testing::env().aws_clients().await,
        };
        kms.create_key(&self.destination(), &self.request(identifier))
            .await
            .expect("CreateKey through the adapter")
    }

    /// A key made by hand, as a team would: no tags.
    async fn untagged_key(&self) -> aws_sdk_kms::types::KeyMetadata {
        let out = self.kms_destination.create_key().send().await.expect("key");
        out.key_metadata.expect("metadata")
    }

    fn quota(&self, replications: u32) {
        let (code, body) = self.env.emulator_post(
            "/moto-api/backup-warden/quota",
            &json!({"account_id": self.account, "region": DESTINATION, "replications": replications}),
        );
        assert_eq!(code, 200, "{body}");
    }

    async fn replicate(&self, identifier: &str, key_arn: &str) {
        self.rds_destination
            .start_db_instance_automated_backups_replication()
            .source_db_instance_arn(self.source_arn(identifier))
            .kms_key_id(key_arn)
            .send()
            .await
            .expect("start replication");
    }
}

/// A controller whose KMS adapter is `wrap` of the real one (both count calls in one place).
async fn controller_with(w: &World, wrap: impl FnOnce(SdkKms) -> Arc<dyn Kms>) -> RunningController {
    let env = testing::env();
    let aws = env.aws_clients().await;
    let kms = wrap(SdkKms { clients: aws.clone() });
    let ctx = env
        .context_with_kms(
            kms,
            aws,
            Policy::default(),
            testing::fast_timing(),
            KeyCleanupSettings::default(),
        )
        .await;
    RunningController::start(ctx, &w.namespace)
}

async fn controller(w: &World) -> RunningController {
    controller_with(w, |kms| Arc::new(kms)).await
}

/// Waits until `done` holds, or panics naming `what` after CONVERGE.
async fn within_converge(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn scheduled(ctx: &Context) -> u64 {
    ctx.metrics
        .orphan_keys_scheduled
        .with_label_values(&[DESTINATION])
        .get()
}

#[tokio::test]
async fn a_key_made_before_a_crash_is_adopted_not_doubled() {
    let w = world("keys-crash").await;
    testing::create_instance(&w.rds_source, "crashed-db", 7).await;
    // The controller died between CreateKey and CreateAlias.
    let made = w.key_made_by_the_adapter("crashed-db").await;
    w.apply("crashed", "crashed-db", json!({})).await;
    let c = controller(&w).await;
    wait_for(&w.dbs, "crashed", CONVERGE, is("True", ConditionType::Ready)).await;

    let keys = w.keys_made_for("crashed-db").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].arn, made.arn, "the key made before the crash");
    assert_eq!(keys[0].aliases, [replica_key_alias(SOURCE, "crashed-db")]);
    assert_eq!(keys[0].state, "Enabled");
    let replicas = w.replicas("crashed-db").await;
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert_eq!(replicas[0].1, made.arn, "the replica uses the adopted key");
    assert_eq!(c.ctx.calls.calls("CreateKey"), 0);
}

/// The real adapter, with faults: CreateAlias fails (as a network error would) while
/// `alias_failures` lasts; with `alias_before_deletion`, another controller creates that
/// alias to the key right before ScheduleKeyDeletion reaches it.
struct Faults {
    inner: SdkKms,
    alias_failures: Arc<AtomicU32>,
    alias_before_deletion: Option<String>,
}

impl Faults {
    fn new(inner: SdkKms) -> Self {
        Self {
            inner,
            alias_failures: Arc::new(AtomicU32::new(0)),
            alias_before_deletion: None,
        }
    }
}

#[async_trait]
impl Kms for Faults {
    async fn describe_key(&self, scope: &Scope, key: &str) -> Result<Option<KeyFacts>, AwsError> {
        self.inner.describe_key(scope, key).await
    }
    async fn aliases(&self, scope: &Scope) -> Result<HashMap<String, String>, AwsError> {
        self.inner.aliases(scope).await
    }
    async fn tagged_keys(&self, scope: &Scope, tags: &[(&str, &str)]) -> Result<Vec<TaggedKey>, AwsError> {
        self.inner.tagged_keys(scope, tags).await
    }
    async fn create_key(&self, scope: &Scope, request: &ReplicaKeyRequest) -> Result<KeyFacts, AwsError> {
        self.inner.create_key(scope, request).await
    }
    async fn create_alias(&self, scope: &Scope, alias: &str, key_id: &str) -> Result<AliasOutcome, AwsError> {
        let left = self.alias_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.alias_failures.store(left - 1, Ordering::SeqCst);
            return Err(AwsError {
                operation: "CreateAlias",
                kind: AwsErrorKind::Transient,
                code: "DispatchFailure".into(),
                message: "injected: could not reach the AWS endpoint".into(),
            });
        }
        self.inner.create_alias(scope, alias, key_id).await
    }
    async fn schedule_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        if let Some(alias) = &self.alias_before_deletion {
            self.inner.create_alias(scope, alias, key).await?;
        }
        self.inner.schedule_deletion(scope, key).await
    }
    async fn cancel_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        self.inner.cancel_deletion(scope, key).await
    }
}

#[tokio::test]
async fn a_failed_alias_step_is_retried_on_the_same_key() {
    let w = world("keys-alias").await;
    testing::create_instance(&w.rds_source, "flaky-db", 7).await;
    w.apply("flaky", "flaky-db", json!({})).await;
    let failures = Arc::new(AtomicU32::new(2));
    let left = failures.clone();
    let c = controller_with(&w, move |inner| {
        Arc::new(Faults {
            alias_failures: left,
            ..Faults::new(inner)
        })
    })
    .await;
    wait_for(&w.dbs, "flaky", CONVERGE, is("True", ConditionType::Ready)).await;

    assert_eq!(failures.load(Ordering::SeqCst), 0, "both failures were met");
    let keys = w.keys_made_for("flaky-db").await;
    assert_eq!(keys.len(), 1, "one key across the failed alias steps: {keys:?}");
    assert_eq!(keys[0].aliases, [replica_key_alias(SOURCE, "flaky-db")]);
    assert_eq!(c.ctx.calls.calls("CreateKey"), 1);
    assert_eq!(w.replicas("flaky-db").await[0].1, keys[0].arn);
}

#[tokio::test]
async fn no_key_is_made_for_a_replication_the_quota_refuses() {
    let w = world("keys-quota").await;
    w.quota(0);
    testing::create_instance(&w.rds_source, "first-db", 7).await;
    testing::create_instance(&w.rds_source, "second-db", 7).await;
    w.apply("first", "first-db", json!({})).await;
    let c = controller(&w).await;
    let db = wait_for(&w.dbs, "first", CONVERGE, is("True", ConditionType::Stalled)).await;
    assert_eq!(
        condition(&db, ConditionType::Stalled).map(|c| c.1).as_deref(),
        Some("QuotaExceeded")
    );
    // Nothing told the controller the quota was exhausted before this first refusal; its
    // key is aliased to the instance and tried again, never doubled.
    tokio::time::sleep(testing::fast_timing().resync * 3).await;
    assert_eq!(w.keys_made_for("first-db").await.len(), 1);
    assert!(
        c.ctx.calls.calls("StartDBInstanceAutomatedBackupsReplication") >= 2,
        "the database with a key tries again"
    );

    // Now the quota is known to be exhausted: a new database gets no key.
    w.apply("second", "second-db", json!({})).await;
    let db = wait_for(&w.dbs, "second", CONVERGE, |db| {
        condition(db, DatabaseCheck::ReplicationActive).is_some_and(|c| c.1 == "QuotaExceeded")
    })
    .await;
    let (_, _, message) = condition(&db, DatabaseCheck::ReplicationActive).expect("condition");
    assert!(message.contains("Service Quotas"), "{message}");
    tokio::time::sleep(testing::fast_timing().resync * 3).await;
    assert!(w.keys_made_for("second-db").await.is_empty());
    assert_eq!(c.ctx.calls.calls("CreateKey"), 1, "one key in all");

    // The quota is raised: both replicate, with one key each.
    w.quota(20);
    wait_for(&w.dbs, "first", CONVERGE, is("True", ConditionType::Ready)).await;
    wait_for(&w.dbs, "second", CONVERGE, is("True", ConditionType::Ready)).await;
    for id in ["first-db", "second-db"] {
        assert_eq!(w.keys_made_for(id).await.len(), 1, "{id}");
    }
}

#[tokio::test]
async fn two_controllers_without_leader_election_end_with_one_key_per_instance() {
    const INSTANCES: usize = 6;
    let w = world("keys-race").await;
    let ids: Vec<String> = (0..INSTANCES).map(|i| format!("race-{i}-db")).collect();
    for id in &ids {
        testing::create_instance(&w.rds_source, id, 7).await;
        w.apply(id, id, json!({})).await;
    }
    let first = controller(&w).await;
    let second = controller(&w).await;
    for id in &ids {
        wait_for(&w.dbs, id, CONVERGE, is("True", ConditionType::Ready)).await;
    }
    let made = first.ctx.calls.calls("CreateKey") + second.ctx.calls.calls("CreateKey");
    first.kill();
    second.kill();

    // A day passes: a controller's cleanup then schedules the deletion of the race's losers.
    let orphans: Vec<Key> = w
        .keys()
        .await
        .into_iter()
        .filter(|k| k.tags.contains_key(SOURCE_TAG) && k.aliases.is_empty())
        .collect();
    println!(
        "{made} keys made for {INSTANCES} instances; {} left unaliased by the race",
        orphans.len()
    );
    for key in w.keys().await {
        w.age(&key.id, A_DAY_AND_MORE);
    }
    let after = controller(&w).await;
    within_converge(&format!("orphans not scheduled: {orphans:?}"), || {
        scheduled(&after.ctx) >= orphans.len() as u64
    })
    .await;
    tokio::time::sleep(testing::fast_timing().resync).await;
    assert_eq!(scheduled(&after.ctx), orphans.len() as u64);

    for id in &ids {
        let keys = w.keys_made_for(id).await;
        let enabled: Vec<&Key> = keys.iter().filter(|k| k.state == "Enabled").collect();
        assert_eq!(enabled.len(), 1, "{id}: one enabled key: {keys:?}");
        assert_eq!(enabled[0].aliases, [replica_key_alias(SOURCE, id)], "{id}");
        let replicas = w.replicas(id).await;
        assert_eq!(replicas.len(), 1, "{id}: one replication: {replicas:?}");
        assert_eq!(
            replicas[0].1, enabled[0].arn,
            "{id}: the replica's key is untouched"
        );
        for other in keys.iter().filter(|k| k.state != "Enabled") {
            assert_eq!(other.state, "PendingDeletion", "{id}: {other:?}");
            assert!(other.aliases.is_empty(), "{id}: {other:?}");
        }
    }
}

/// A world with one managed database, "keep": the object that makes the controller clean
/// its (role, destination region).
async fn world_with_keep_db(prefix: &str) -> World {
    let w = world(prefix).await;
    testing::create_instance(&w.rds_source, "keep-db", 7).await;
    w.apply("keep", "keep-db", json!({})).await;
    w
}

#[tokio::test]
async fn the_cleanup_schedules_only_the_controllers_own_orphans() {
    let w = world_with_keep_db("keys-cleanup").await;

    let orphan = w.key_made_by_the_adapter("gone-db").await;
    let aliased = w.key_made_by_the_adapter("aliased-db").await;
    w.kms_destination
        .create_alias()
        .alias_name(replica_key_alias(SOURCE, "aliased-db"))
        .target_key_id(&aliased.key_id)
        .send()
        .await
        .expect("alias");
    // A replica that was stopped (retained) is still encrypted with its key.
    testing::create_instance(&w.rds_source, "retained-db", 7).await;
    let protecting = w.key_made_by_the_adapter("retained-db").await;
    w.replicate("retained-db", &protecting.arn).await;
    w.rds_destination
        .stop_db_instance_automated_backups_replication()
        .source_db_instance_arn(w.source_arn("retained-db"))
        .send()
        .await
        .expect("stop");
    assert_eq!(w.replicas("retained-db").await[0].0, "retained");
    let untagged = w.untagged_key().await;
    let foreign = w
        .kms_destination
        .create_key()
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("managed-by")
                .tag_value("terraform")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("key")
        .key_metadata
        .expect("metadata");
    let disabled = w.key_made_by_the_adapter("disabled-db").await;
    w.kms_destination
        .disable_key()
        .key_id(&disabled.key_id)
        .send()
        .await
        .expect("disable");
    for key in w.keys().await {
        w.age(&key.id, A_DAY_AND_MORE);
    }
    let young = w.key_made_by_the_adapter("young-db").await;

    let started = tokio::time::Instant::now();
    let c = controller(&w).await;
    wait_for(&w.dbs, "keep", CONVERGE, is("True", ConditionType::Ready)).await;
    within_converge("the orphan was not scheduled", || scheduled(&c.ctx) > 0).await;
    // More resyncs: nothing else is scheduled, and the cleanup runs once per resync.
    tokio::time::sleep(testing::fast_timing().resync * 3).await;

    let keys: HashMap<String, Key> = w.keys().await.into_iter().map(|k| (k.id.clone(), k)).collect();
    let state = |id: &str| keys.get(id).map(|k| k.state.as_str()).unwrap_or("missing");
    assert_eq!(state(&orphan.key_id), "PendingDeletion", "the orphan");
    for (what, id) in [
        ("aliased", aliased.key_id.as_str()),
        ("protecting a retained replica", &protecting.key_id),
        ("untagged", untagged.key_id()),
        ("tagged by someone else", foreign.key_id()),
        ("younger than the grace", &young.key_id),
    ] {
        assert_eq!(state(id), "Enabled", "{what}");
    }
    assert_eq!(
        state(&disabled.key_id),
        "Disabled",
        "a disabled key is left as it is"
    );
    let keep = w.keys_made_for("keep-db").await;
    assert_eq!(keep.len(), 1);
    assert_eq!(
        keep[0].state, "Enabled",
        "the replica key of the managed database"
    );
    assert_eq!(c.ctx.calls.calls("ScheduleKeyDeletion"), 1);
    assert_eq!(scheduled(&c.ctx), 1);
    // One lookup before creating keep-db's key, then at most one cleanup per resync.
    let resyncs = started.elapsed().as_secs() / testing::fast_timing().resync.as_secs();
    let sweeps = c.ctx.calls.calls("GetResources");
    assert!(
        sweeps >= 2 && sweeps <= resyncs + 2,
        "{sweeps} GetResources calls in {resyncs} resyncs"
    );
}

#[tokio::test]
async fn a_key_adopted_while_its_deletion_is_scheduled_gets_it_cancelled() {
    let w = world_with_keep_db("keys-undo").await;
    let orphan = w.key_made_by_the_adapter("late-db").await;
    w.age(&orphan.key_id, A_DAY_AND_MORE);
    let alias = replica_key_alias(SOURCE, "late-db");
    let racing = alias.clone();
    let c = controller_with(&w, move |inner| {
        Arc::new(Faults {
            alias_before_deletion: Some(racing),
            ..Faults::new(inner)
        })
    })
    .await;
    within_converge("the deletion was not cancelled", || {
        c.ctx.calls.calls("EnableKey") > 0
    })
    .await;
    let key = w
        .keys()
        .await
        .into_iter()
        .find(|k| k.id == orphan.key_id)
        .expect("the key");
    assert_eq!(key.state, "Enabled", "{key:?}");
    assert_eq!(key.aliases, [alias]);
    assert_eq!(c.ctx.calls.calls("CancelKeyDeletion"), 1);
    // Aliased now: later cleanups leave it alone.
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    assert_eq!(c.ctx.calls.calls("ScheduleKeyDeletion"), 1);
}

#[tokio::test]
async fn a_given_key_must_be_customer_managed_and_the_replicas_own() {
    let w = world("keys-dedicated").await;
    for id in ["owner-db", "borrower-db", "managed-db"] {
        testing::create_instance(&w.rds_source, id, 7).await;
    }
    let team_key = w.untagged_key().await;
    let team_arn = team_key.arn().expect("arn").to_string();
    w.replicate("owner-db", &team_arn).await;
    let aws_managed = w
        .kms_destination
        .describe_key()
        .key_id("alias/aws/rds")
        .send()
        .await
        .expect("alias/aws/rds")
        .key_metadata
        .expect("metadata");
    assert_eq!(
        aws_managed.key_manager().map(|m| m.as_str()),
        Some("AWS"),
        "alias/aws/rds is AWS managed (an emulator started before that fix needs a restart)"
    );
    let aws_managed = aws_managed.arn.expect("arn");
    w.apply(
        "borrower",
        "borrower-db",
        json!({"replication": {"kmsKey": {"arn": team_arn}}}),
    )
    .await;
    w.apply(
        "managed",
        "managed-db",
        json!({"replication": {"kmsKey": {"arn": aws_managed}}}),
    )
    .await;
    let c = controller(&w).await;

    for (name, text) in [
        (
            "borrower",
            format!(
                "already encrypts the automated backups of {}",
                w.source_arn("owner-db")
            ),
        ),
        ("managed", "is AWS managed".to_string()),
    ] {
        let db = wait_for(&w.dbs, name, CONVERGE, |db| {
            condition(db, DatabaseCheck::ReplicaKeyCompliant)
                .is_some_and(|c| c.0 == "False" && c.1 == "KeyNotDedicated")
        })
        .await;
        let (_, _, message) = condition(&db, DatabaseCheck::ReplicaKeyCompliant).expect("condition");
        assert!(message.contains(&text), "{name}: {message}");
        let stalled = condition(&db, ConditionType::Stalled).expect("stalled");
        assert_eq!(
            (stalled.0.as_str(), stalled.1.as_str()),
            ("True", "KeyNotDedicated")
        );
    }
    tokio::time::sleep(testing::fast_timing().resync).await;
    assert!(w.replicas("borrower-db").await.is_empty());
    assert!(w.replicas("managed-db").await.is_empty());
    assert_eq!(c.ctx.calls.calls("StartDBInstanceAutomatedBackupsReplication"), 0);
    assert_eq!(c.ctx.calls.calls("CreateKey"), 0);
}
