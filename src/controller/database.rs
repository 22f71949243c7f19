//! The `BackedUpDatabase` reconciler: observe → evaluate → plan → act → report.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::{self, Action},
        reflector,
    },
};

use super::{
    Decoded,
    context::Context,
    guard::{self, Guard},
};
use crate::{
    api::{
        BackedUpDatabase, BackedUpDatabaseStatus, ConditionType, Mode, Reason,
        database::{ObservedInstance, ObservedReplica},
    },
    aws::{AwsError, AwsErrorKind, Scope, inventory::Inventory, kms::ReplicaKeyRequest},
    policy::{
        Finding,
        database::{
            DatabaseObservation, DbAction, InstanceFacts, KeyChoice, KeyLookup, ReplicaFacts, evaluate, plan,
            replica_key_alias,
        },
        keys::key_id_of,
    },
    report::{
        events, notify,
        status::{Progress, apply_findings, apply_stalled, apply_unobserved, is_reconciling, patch_status},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading AWS: {0}")]
    Observe(#[source] AwsError),
    #[error("changing AWS: {0}")]
    Act(#[source] AwsError),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The only error label on metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Observe(_) => "observe",
            Self::Act(_) => "act",
            Self::Status(_) => "status",
        }
    }
}

/// Runs the controller for `api` until `shutdown` resolves.
pub async fn run(
    api: Api<BackedUpDatabase>,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = reflector::store();
    let stream = super::trigger(api, writer, ctx.metrics.clone(), KIND);
    let guard = Arc::new(Guard::new(
        KIND,
        ctx.client.clone(),
        (ctx.metrics.clone(), ctx.recorder.clone()),
        reader.clone(),
        ctx.tenancy.clone(),
        ctx.timing.resync,
    ));
    let (sweep, store, every) = (guard.sweep.clone(), reader.clone(), ctx.timing.settle);
    let controller = Controller::for_stream(stream, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            move |object, ctx| {
                let guard = guard.clone();
                async move {
                    guard::reconcile(&guard, &ctx.backoff, &object, |db| reconcile(db, ctx.clone())).await
                }
            },
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile failed");
            }
        });
    super::with_sweeps(controller, sweep, store, every).await;
}

pub fn error_policy(db: Arc<Decoded<BackedUpDatabase>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[KIND, error.category()])
        .inc();
    let delay = ctx.backoff.delay(&super::object_key(db.as_ref()));
    tracing::warn!(object = %super::object_key(db.as_ref()), category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

const KIND: &str = "BackedUpDatabase";

pub async fn reconcile(db: Arc<BackedUpDatabase>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[KIND])
        .start_timer();
    let old = db.status.clone().unwrap_or_default();
    // While a change settles, read fresher inventories; otherwise once per resync.
    let max_age = if is_reconciling(&old.conditions) {
        ctx.timing.settle
    } else {
        ctx.timing.resync
    };

    let obs = match observe(&db, &ctx.inventory, ctx.timing.resync, max_age).await {
        Ok(obs) => obs,
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            // Fixed outside the cluster: say what is missing and look again at the next resync.
            let message = e.denied_message();
            report_stalled(&db, &ctx, Reason::AccessDenied, message).await?;
            ctx.backoff.reset(&super::object_key(db.as_ref()));
            return Ok(Action::requeue(ctx.timing.resync));
        }
        Err(e) => {
            report_unobserved(&db, &ctx, &e).await?;
            return Err(Error::Observe(e));
        }
    };
    let findings = evaluate(&db.spec, &obs, &ctx.policy);
    let plan = plan(&db.spec, &obs, &findings, &ctx.policy);
    // What was found before acting, for the drift events.
    let found = build_status(&db, &old, &obs, &findings, &Progress::default()).conditions;
    let found_findings = findings.clone();

    let mut progress = Progress::default();
    let mut action_events = Vec::new();
    let acted = !plan.actions.is_empty();
    let mut transient = None;
    let mut refused = false;
    if let Err(e) = act(&db, &ctx, &obs, &plan.actions, &mut progress, &mut action_events).await {
        match e.kind {
            AwsErrorKind::Transient => transient = Some(e),
            AwsErrorKind::AccessDenied => progress.stalled = Some((Reason::AccessDenied, e.denied_message())),
            // RDS is the judge of the quota (it can be raised per account and region).
            _ if e.code == "DBInstanceAutomatedBackupQuotaExceeded" => {
                progress.stalled = Some((
                    Reason::QuotaExceeded,
                    format!(
                        "{} holds as many automated-backup replications as the account's RDS quota allows ({}); \
                         request an increase in Service Quotas",
                        db.spec.replication.destination_region, e.message
                    ),
                ))
            }
            _ => {
                refused = true;
                progress.stalled = Some((
                    Reason::ApiError,
                    format!("AWS refused {}: {}: {}", e.operation, e.code, e.message),
                ));
            }
        }
    }
    if let Some(holding) = &plan.holding {
        progress.working.push(holding.clone());
    }

    // Look again (through the inventory, which holds what the actions returned) so that
    // status shows the state after this reconcile's changes.
    let (obs, findings) = if acted {
        let obs = observe(&db, &ctx.inventory, ctx.timing.resync, max_age)
            .await
            .map_err(Error::Observe)?;
        let findings = evaluate(&db.spec, &obs, &ctx.policy);
        (obs, findings)
    } else {
        (obs, findings)
    };
    let mut status = build_status(&db, &old, &obs, &findings, &progress);
    let (change, notified) = notify::decide(&old.notified_drift, &found_findings, &findings);
    status.notified_drift = notified;
    write_status(&db, &ctx, &old, status.clone()).await?;
    if let Some(change) = change {
        let spec = &db.spec;
        let console = format!(
            "https://{region}.console.aws.amazon.com/rds/home?region={region}#database:id={id}",
            region = spec.instance.region,
            id = spec.instance.identifier
        );
        let desired = |check: &str| desired_of(check, spec, &ctx.policy);
        ctx.notifier.notify(notify::notification(
            KIND,
            &db.namespace().unwrap_or_default(),
            &db.name_any(),
            &change,
            &[&findings, &found_findings],
            desired,
            Some(("RDS console".to_string(), console)),
        ));
    }
    let age = |t: Option<Timestamp>| t.map(|t| obs.now.duration_since(t).unsigned_abs());
    let ages = [
        (
            "source",
            age(obs.instance.as_ref().and_then(|i| i.latest_restorable_time)),
        ),
        (
            "replica",
            age(obs
                .replica
                .as_ref()
                .filter(|r| r.is_active())
                .and_then(|r| r.latest_time)),
        ),
    ];
    ctx.metrics.record_object(
        KIND,
        &db.namespace().unwrap_or_default(),
        &db.name_any(),
        &findings,
        &ages,
    );

    let reference = db.object_ref(&());
    let mut events = events::transitions(
        &old.conditions,
        &found,
        &status.conditions,
        &ConditionType::DATABASE_CHECKS,
    );
    events.extend(action_events);
    events::publish(&ctx.recorder, &reference, events).await;

    if db.spec.mode == Mode::Enforce {
        let role = db.spec.instance.role_arn.as_deref();
        let destination = Scope::new(role, &db.spec.replication.destination_region);
        super::key_cleanup::run_if_due(&ctx, &destination).await;
    }

    if let Some(e) = transient {
        return Err(Error::Act(e));
    }
    // A refused action may have lost a race (another replica acted first): look again,
    // sooner at first, backing off while AWS keeps refusing.
    let next = if refused {
        ctx.backoff.delay(&super::object_key(db.as_ref()))
    } else {
        ctx.backoff.reset(&super::object_key(db.as_ref()));
        if is_reconciling(&status.conditions) {
            ctx.timing.settle
        } else {
            ctx.timing.resync
        }
    };
    Ok(Action::requeue(next))
}

/// Reads what the policy needs from the shared inventories. `fresh` bounds the age of what
/// a change in progress moves (the instance and its replication); keys, aliases, snapshots
/// and source regions are read once per resync.
pub(crate) async fn observe(
    db: &BackedUpDatabase,
    inv: &Inventory,
    resync: Duration,
    fresh: Duration,
) -> Result<DatabaseObservation, AwsError> {
    let max_age = resync;
    let spec = &db.spec;
    let role = spec.instance.role_arn.as_deref();
    let source = Scope::new(role, &spec.instance.region);
    let destination = Scope::new(role, &spec.replication.destination_region);

    let instance = inv.instance(&source, &spec.instance.identifier, fresh).await?;
    let alias = replica_key_alias(&spec.instance.region, &spec.instance.identifier);
    let desired_key = desired_key(
        inv,
        &destination,
        spec.replication.kms_key.arn.as_deref(),
        &alias,
        max_age,
    )
    .await?;
    let now = Timestamp::now();
    let Some(instance) = instance else {
        return Ok(DatabaseObservation {
            instance: None,
            newest_snapshot: None,
            replica: None,
            replica_key: None,
            desired_key,
            source_region_supported: true,
            other_key_users: Vec::new(),
            quota_exhausted_at: None,
            now,
        });
    };

    let backups = inv.automated_backups(&destination, fresh).await?;
    let replica = pick_replica(&backups, &instance.arn);
    let replica_key = match replica
        .as_ref()
        .filter(|r| r.is_active())
        .and_then(|r| r.kms_key_arn.as_deref())
    {
        Some(arn) => Some(match inv.key(&destination, arn, max_age).await? {
            Some(key) => KeyLookup::Found(key),
            None => KeyLookup::NotFound(arn.to_string()),
        }),
        None => None,
    };
    let other_key_users = other_key_users(
        &backups,
        &instance.arn,
        [Some(&desired_key), replica_key.as_ref()],
    );
    Ok(DatabaseObservation {
        other_key_users,
        quota_exhausted_at: inv.quota_exhausted_at(&destination, &backups),
        newest_snapshot: inv
            .newest_snapshot(&source, &instance.identifier, max_age)
            .await?,
        source_region_supported: inv.replication_supported(&destination, &instance.region).await?,
        instance: Some(instance),
        replica,
        replica_key,
        desired_key,
        now,
    })
}

/// The replication of `source_arn` held in the destination: an active one first, else the newest.
fn pick_replica(backups: &[ReplicaFacts], source_arn: &str) -> Option<ReplicaFacts> {
    let mine: Vec<&ReplicaFacts> = backups.iter().filter(|b| b.source_arn == source_arn).collect();
    mine.iter()
        .find(|b| b.is_active())
        .or_else(|| mine.last())
        .map(|b| (*b).clone())
}

/// The automated backups of other sources encrypted with one of `keys`.
fn other_key_users<'a>(
    backups: &[ReplicaFacts],
    source_arn: &str,
    keys: impl IntoIterator<Item = Option<&'a KeyLookup>>,
) -> Vec<ReplicaFacts> {
    let ids: Vec<&str> = keys
        .into_iter()
        .filter_map(|k| match k {
            Some(KeyLookup::Found(key)) => Some(key.key_id.as_str()),
            _ => None,
        })
        .collect();
    backups
        .iter()
        .filter(|b| b.source_arn != source_arn)
        .filter(|b| {
            b.kms_key_arn
                .as_deref()
                .is_some_and(|k| ids.contains(&key_id_of(k)))
        })
        .cloned()
        .collect()
}

async fn desired_key(
    inv: &Inventory,
    destination: &Scope,
    arn: Option<&str>,
    alias: &str,
    max_age: Duration,
) -> Result<KeyLookup, AwsError> {
    let reference = match arn {
        Some(arn) => arn.to_string(),
        None => match inv.alias_target(destination, alias, max_age).await? {
            Some(target) => target,
            None => return Ok(KeyLookup::AliasMissing(alias.to_string())),
        },
    };
    Ok(match inv.key(destination, &reference, max_age).await? {
        Some(key) => KeyLookup::Found(key),
        None => KeyLookup::NotFound(reference),
    })
}

/// Carries out the plan in order and stops at the first failure. Each success is written
/// into the inventory and reported in `progress` and as an event.
async fn act(
    db: &BackedUpDatabase,
    ctx: &Context,
    obs: &DatabaseObservation,
    actions: &[DbAction],
    progress: &mut Progress,
    taken: &mut Vec<kube::runtime::events::Event>,
) -> Result<(), AwsError> {
    let Some(instance) = &obs.instance else {
        return Ok(());
    };
    let mut created_key = None;
    for action in actions {
        let description = action.describe(&db.spec);
        let reason = match action {
            DbAction::RaiseRetention { .. } => Reason::RetentionRaised,
            DbAction::CreateReplicaKey { .. } => Reason::ReplicaKeyCreated,
            DbAction::StopReplication => Reason::ReplicationStopped,
            DbAction::StartReplication { .. } => Reason::ReplicationStarted,
        };
        tracing::info!(object = %super::object_key(db), action = %description, "enforcing");
        match perform(db, ctx, instance, action, &mut created_key).await {
            Ok(note) => {
                let description = note.unwrap_or(description);
                progress.working.push(description.clone());
                taken.push(events::action(reason, description, false));
            }
            Err(e) => {
                taken.push(events::action(
                    reason,
                    format!("{description}: failed: {e}"),
                    true,
                ));
                return Err(e);
            }
        }
    }
    Ok(())
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
        DbAction::RaiseRetention {
            from,
            to,
            apply_immediately,
        } => {
            // Safety rule, held here as well as in the plan: a retention is never lowered.
            if to <= from || *to < instance.retention_days {
                return Ok(None);
            }
            let facts = ctx
                .rds
                .modify_retention(&source, &instance.identifier, *to, *apply_immediately)
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
                .is_err_and(|e| e.code == "DBInstanceAutomatedBackupQuotaExceeded")
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
    status.instance = obs.instance.as_ref().map(|i| ObservedInstance {
        arn: Some(i.arn.clone()),
        status: Some(i.status.clone()),
        retention_days: Some(i.retention_days),
        pending_retention_days: i.pending_retention_days,
        latest_restorable_time: i
            .latest_restorable_time
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        latest_snapshot_time: obs
            .newest_snapshot
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
    });
    status.replica = obs.replica.as_ref().map(|r| ObservedReplica {
        arn: Some(r.arn.clone()).filter(|a| !a.is_empty()),
        region: Some(db.spec.replication.destination_region.clone()),
        status: Some(r.status.clone()),
        retention_days: r.retention_days,
        kms_key_arn: r.kms_key_arn.clone(),
        latest_restorable_time: r
            .latest_time
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
    });
    status
}

async fn report_stalled(
    db: &BackedUpDatabase,
    ctx: &Context,
    reason: Reason,
    message: String,
) -> Result<(), Error> {
    let old = db.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = db.metadata.generation;
    apply_stalled(
        &mut status.conditions,
        reason,
        &message,
        db.metadata.generation,
        Timestamp::now(),
    );
    write_status(db, ctx, &old, status).await
}

/// AWS could not be read: every check is unknown (never a stale True); a region whose
/// endpoint does not resolve stalls the object, anything else is retried with backoff.
async fn report_unobserved(db: &BackedUpDatabase, ctx: &Context, e: &AwsError) -> Result<(), Error> {
    let spec = &db.spec;
    let (reason, stalled, message) = if e.kind == AwsErrorKind::Unreachable {
        let message = format!(
            "cannot reach AWS in {} or {} (does the region exist, and is it enabled for the account?): {e}",
            spec.instance.region, spec.replication.destination_region
        );
        (Reason::RegionUnreachable, true, message)
    } else {
        (
            Reason::ObservationFailed,
            false,
            format!("cannot read AWS: {e}; retrying"),
        )
    };
    let old = db.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = db.metadata.generation;
    apply_unobserved(
        &mut status.conditions,
        &ConditionType::DATABASE_CHECKS,
        reason,
        &message,
        stalled,
        db.metadata.generation,
        Timestamp::now(),
    );
    write_status(db, ctx, &old, status).await
}

/// Writes the status, only when it differs from what is stored.
async fn write_status(
    db: &BackedUpDatabase,
    ctx: &Context,
    old: &BackedUpDatabaseStatus,
    status: BackedUpDatabaseStatus,
) -> Result<(), Error> {
    if db.status.is_some() && *old == status {
        return Ok(());
    }
    patch_status(&ctx.client, db, &status)
        .await
        .map_err(Error::Status)
}

/// What the policy wants of a check, for people.
pub(crate) fn desired_of(
    check: &str,
    spec: &crate::api::BackedUpDatabaseSpec,
    policy: &crate::policy::database::Policy,
) -> String {
    use crate::policy::database::required_retention;
    let destination = &spec.replication.destination_region;
    match check {
        "BackupsEnabled" => "automated backups enabled".to_string(),
        "RetentionCompliant" => format!(
            "retention of at least {} days",
            required_retention(spec.backups.retention_days, policy)
        ),
        "ReplicationActive" => format!("automated backups replicating to {destination}"),
        "ReplicaKeyCompliant" => {
            format!("an enabled symmetric KMS key of the replica's own in {destination}")
        }
        "ReplicaRetentionCompliant" => {
            format!(
                "replica retention of at least {} days",
                required_retention(spec.replication.retention_days, policy)
            )
        }
        "BackupsFresh" => format!(
            "restorable within {}, an automated snapshot within {}",
            spec.freshness.max_restore_lag, spec.freshness.max_snapshot_age
        ),
        "ReplicaFresh" => format!("replica restorable within {}", spec.freshness.max_replica_lag),
        _ => "compliant".to_string(),
    }
}
