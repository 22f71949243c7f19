//! The `BackedUpDatabase` kind: how an RDS instance and its replication are observed,
//! fixed and shown. The reconcile itself is `pipeline`'s.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    runtime::reflector::{self, ObjectRef},
};

use super::{
    Decoded,
    context::Context,
    pipeline::{self, Kind, Shared},
};
use crate::{
    api::{
        BackedUpDatabase, BackedUpDatabaseStatus, ConditionType, Mode, Reason,
        conditions::whole_seconds,
        database::{ObservedInstance, ObservedReplica},
    },
    aws::{AwsError, AwsErrorKind, Scope, kms::ReplicaKeyRequest},
    external::ServiceError,
    observe,
    policy::{
        Finding,
        database::{DatabaseObservation, DbAction, InstanceFacts, KeyChoice, Plan, evaluate, plan},
    },
    report::status::{Progress, apply_findings, is_reconciling},
};

/// Runs the controller for `api` until `shutdown` resolves. An inventory read that finds an
/// instance or its replication changed (by a person, by AWS) wakes the objects of that
/// instance at once: drift is found within one resync of the change, not two.
pub async fn run(
    api: Api<BackedUpDatabase>,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = reflector::store::<Decoded<BackedUpDatabase>>();
    ctx.wakes.set_store(reader.clone());
    let changes = ctx.inventory.changes();
    let store = reader.clone();
    let wake = futures::stream::unfold(changes, |mut changes| async move {
        changes.recv().await.map(|change| (change, changes))
    })
    .flat_map(move |changed| {
        // One pass over the objects per read, however many instances it found changed.
        let changed: std::collections::HashSet<(String, String)> = changed.into_iter().collect();
        let concerned: Vec<ObjectRef<Decoded<BackedUpDatabase>>> = store
            .state()
            .iter()
            .filter(|o| {
                // One with a change under way is looked at again soon anyway (and a wake would
                // make it read the region again): only quiet objects are woken.
                o.valid().is_some_and(|db| {
                    let instance = &db.spec.instance;
                    changed.contains(&(instance.region.clone(), instance.identifier.clone()))
                        && !is_reconciling(db.status.as_ref().map_or(&[], |s| &s.conditions[..]))
                })
            })
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        futures::stream::iter(concerned)
    });
    let wake = futures::stream::select(wake, ctx.wakes.stream());
    pipeline::run(api, ctx, (reader, writer), wake, concurrency, shutdown).await;
}

pipeline::kind_status!(BackedUpDatabaseStatus);

#[async_trait::async_trait]
impl Kind for BackedUpDatabase {
    const KIND: &'static str = "BackedUpDatabase";
    const CHECKS: &'static [ConditionType] = &ConditionType::DATABASE_CHECKS;
    type Context = Context;
    type Status = BackedUpDatabaseStatus;
    type Observation = DatabaseObservation;
    type Action = DbAction;
    /// The key CreateReplicaKey made, for the StartReplication after it.
    type Scratch = Option<String>;

    fn shared(ctx: &Context) -> Shared<'_> {
        pipeline::shared_of!(ctx)
    }

    fn status(&self) -> Option<&BackedUpDatabaseStatus> {
        self.status.as_ref()
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn audit(&self, ctx: &Context) -> bool {
        self.spec.mode == Mode::Audit || ctx.policy.audit_only
    }

    async fn observe(&self, ctx: &Context, fresh: Duration) -> Result<DatabaseObservation, ServiceError> {
        Ok(observe::database(self, &ctx.inventory, ctx.timing.resync, fresh).await?)
    }

    fn evaluate(&self, ctx: &Context, obs: &DatabaseObservation) -> Vec<Finding> {
        let mut findings = evaluate(&self.spec, obs, &ctx.policy);
        let every = self.spec.restore_drill.as_ref().map(|d| &d.every);
        crate::drill::add_finding(&mut findings, self, every, self.audit(ctx), obs.now);
        findings
    }

    fn plan(&self, ctx: &Context, obs: &DatabaseObservation, findings: &[Finding]) -> Plan {
        plan(&self.spec, obs, findings, &ctx.policy)
    }

    fn describe(&self, action: &DbAction) -> String {
        action.describe(&self.spec, crate::policy::Tense::Done)
    }

    fn reason(action: &DbAction) -> Reason {
        match action {
            DbAction::ModifyInstance { .. } => Reason::RetentionRaised,
            DbAction::CreateReplicaKey { .. } => Reason::ReplicaKeyCreated,
            DbAction::StopReplication => Reason::ReplicationStopped,
            DbAction::StartReplication { .. } => Reason::ReplicationStarted,
        }
    }

    async fn perform(
        &self,
        ctx: &Context,
        obs: &DatabaseObservation,
        action: &DbAction,
        created_key: &mut Option<String>,
    ) -> Result<Option<String>, ServiceError> {
        let Some(instance) = &obs.instance else {
            return Ok(None);
        };
        Ok(perform(self, ctx, instance, action, created_key).await?)
    }

    fn build_status(
        &self,
        old: &BackedUpDatabaseStatus,
        obs: &DatabaseObservation,
        findings: &[Finding],
        progress: &Progress,
    ) -> BackedUpDatabaseStatus {
        build_status(self, old, obs, findings, progress)
    }

    fn desired(&self, ctx: &Context, check: ConditionType) -> String {
        match (check, &self.spec.restore_drill) {
            (ConditionType::RestoreVerified, Some(drill)) => crate::drill::desired(&drill.every),
            _ => crate::policy::database::desired(check, &self.spec, &ctx.policy),
        }
    }

    fn link(&self, _obs: &DatabaseObservation) -> Option<(String, String)> {
        let instance = &self.spec.instance;
        let console = format!(
            "https://{region}.console.aws.amazon.com/rds/home?region={region}#database:id={id}",
            region = instance.region,
            id = instance.identifier
        );
        Some(("RDS console".to_string(), console))
    }

    fn ages(&self, obs: &DatabaseObservation) -> Vec<(&'static str, Option<Duration>)> {
        let age = |t: Option<Timestamp>| t.map(|t| obs.now.duration_since(t).unsigned_abs());
        let replica = obs.replica.as_ref().filter(|r| r.is_active());
        vec![
            (
                "source",
                age(obs.instance.as_ref().and_then(|i| i.latest_restorable_time)),
            ),
            ("replica", age(replica.and_then(|r| r.latest_time))),
        ]
    }

    fn regions(&self) -> String {
        format!(
            "{} or {}",
            self.spec.instance.region, self.spec.replication.destination_region
        )
    }

    fn quota_message(&self, e: &ServiceError) -> String {
        let message = e.message();
        // RDS is the judge of the quota (it can be raised per account and region).
        format!(
            "{} holds as many automated-backup replications as the account's RDS quota allows ({message}); \
             request an increase in Service Quotas",
            self.spec.replication.destination_region
        )
    }

    async fn after(&self, ctx: &Context) {
        if self.spec.mode == Mode::Enforce {
            let role = self.spec.instance.role_arn.as_deref();
            let destination = Scope::new(role, &self.spec.replication.destination_region);
            super::key_cleanup::run_if_due(ctx, &destination).await;
        }
    }
}

async fn perform(
    db: &BackedUpDatabase,
    ctx: &Context,
    instance: &InstanceFacts,
    action: &DbAction,
    created_key: &mut Option<String>,
) -> Result<Option<String>, AwsError> {
    let spec = &db.spec;
    let role = spec.instance.role_arn.as_deref();
    let source = Scope::new(role, &spec.instance.region);
    let destination = Scope::new(role, &spec.replication.destination_region);
    match action {
        DbAction::ModifyInstance { change, .. } => {
            // Safety rule, held here as well as in the plan: a retention is never lowered.
            let mut change = change.clone();
            if change
                .backup_retention_days
                .is_some_and(|to| to <= instance.retention_days)
            {
                change.backup_retention_days = None;
            }
            if change.is_empty() {
                return Ok(None);
            }
            let facts = ctx
                .rds
                .modify_instance(&source, &instance.identifier, &change)
                .await?;
            ctx.inventory.record_instance(&source, facts).await;
        }
        DbAction::CreateReplicaKey { alias } => {
            let arn_part = |n: usize| instance.arn.split(':').nth(n).unwrap_or_default().to_string();
            let request = ReplicaKeyRequest {
                alias: alias.clone(),
                account_id: arn_part(4),
                partition: arn_part(1),
                source_arn: instance.arn.clone(),
            };
            let (key, adopted) = super::replica_key::adopt_or_create(ctx, &destination, &request).await?;
            *created_key = Some(key.arn.clone());
            let note = adopted.then(|| {
                format!(
                    "adopted KMS key {} made earlier for this instance, as {alias} in {}",
                    key.arn, destination.region
                )
            });
            ctx.inventory.record_key(&destination, alias, key).await;
            return Ok(note);
        }
        DbAction::StopReplication => {
            ctx.rds.stop_replication(&destination, &instance.arn).await?;
            ctx.inventory.record_stopped(&destination, &instance.arn).await;
        }
        DbAction::StartReplication { key, retention_days } => {
            let key_arn = match key {
                KeyChoice::Arn(arn) => arn.clone(),
                KeyChoice::Created => created_key.clone().unwrap_or_default(),
            };
            let started = ctx
                .rds
                .start_replication(&destination, &instance.arn, &key_arn, *retention_days)
                .await;
            if started
                .as_ref()
                .is_err_and(|e| e.kind == AwsErrorKind::QuotaExceeded)
            {
                // No key is made for a replication there until room is known to be free.
                ctx.inventory.record_quota_refused(&destination).await;
            }
            let replica = started?;
            ctx.inventory.record_replica(&destination, replica).await;
        }
    }
    Ok(None)
}

/// When the object was created (now, for one not stored yet).
pub(crate) fn created(meta: &kube::api::ObjectMeta, now: Timestamp) -> Timestamp {
    meta.creation_timestamp.as_ref().map_or(now, |t| t.0)
}

fn build_status(
    db: &BackedUpDatabase,
    old: &BackedUpDatabaseStatus,
    obs: &DatabaseObservation,
    findings: &[Finding],
    progress: &Progress,
) -> BackedUpDatabaseStatus {
    let generation = db.metadata.generation;
    let mut status = old.clone();
    status.observed_generation = generation;
    apply_findings(&mut status.conditions, findings, progress, generation, obs.now);
    if db.spec.restore_drill.is_none() {
        crate::drill::drop_condition(&mut status.conditions);
    }
    status.instance = obs.instance.as_ref().map(|i| ObservedInstance {
        arn: Some(i.arn.clone()),
        status: Some(i.status.clone()),
        retention_days: Some(i.retention_days),
        pending_retention_days: i.pending_retention_days,
        // Not the latest restorable time: it moves every few minutes, and status is written
        // only when something changed (its age is a metric). Whole seconds, as stored: AWS
        // answers milliseconds, which would make every read differ from the status.
        latest_snapshot_time: obs
            .newest_snapshot
            .map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(whole_seconds(t))),
    });
    status.replica = obs.replica.as_ref().map(|r| ObservedReplica {
        arn: Some(r.arn.clone()).filter(|a| !a.is_empty()),
        region: Some(db.spec.replication.destination_region.as_str().into()),
        status: Some(r.status.clone()),
        retention_days: r.retention_days,
        kms_key_arn: r.kms_key_arn.clone(),
    });
    status
}
