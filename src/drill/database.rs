//! The database drill runner: for each BackedUpDatabase with `spec.restoreDrill`, in
//! Enforce and not suspended, restores the newest point of its replicated automated
//! backups in the destination region to a temporary private instance, waits until it is
//! available, probes it, deletes it, and records the result in `status.restoreDrill`. A
//! drill is a few steps across ticks, its progress in status, so a restart loses nothing
//! but the drill under way (its instance is deleted at the next start). Only instances
//! carrying the drill tag and named as drills are ever deleted.

use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::ResourceExt;
use tokio::sync::watch;

use super::schedule;
use crate::{
    api::{
        BackedUpDatabase, Mode,
        drill::{DatabaseRestoreDrill, DrillResult, RestoreDrillStatus, RunningDrill},
    },
    aws::{
        Scope,
        drill::{DrillInstance, DrillRds, DrillRestore},
    },
    controller::Context,
};

/// How the runner paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Drills running at once per account and region at most.
    pub per_region: usize,
    /// How often drills are advanced.
    pub tick: Duration,
    /// How often leftover drill instances are looked for (besides at start).
    pub sweep: Duration,
}

/// An RDS status a restore does not come back from.
fn failed_state(status: &str) -> bool {
    matches!(
        status,
        "failed"
            | "incompatible-restore"
            | "incompatible-parameters"
            | "incompatible-network"
            | "inaccessible-encryption-credentials"
            | "restore-error"
            | "storage-full"
    )
}

/// Runs until `shutdown`: first removes every drill instance a previous run left (its
/// drill is recorded as interrupted), then advances the drills every tick.
pub async fn run(
    ctx: Arc<Context>,
    rds: Arc<dyn DrillRds>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut started = false;
    let mut last_sweep: Option<Timestamp> = None;
    loop {
        // The first sweep must see every object, or it would take a drill under way for a
        // leftover (or miss one): only once the store has listed them.
        let store = ctx.wakes.store.get().cloned();
        let ready = match &store {
            Some(store) => tokio::time::timeout(settings.tick, store.wait_until_ready())
                .await
                .is_ok_and(|r| r.is_ok()),
            None => false,
        };
        if let Some(store) = store.filter(|_| ready) {
            let objects: Vec<Arc<BackedUpDatabase>> =
                store.state().iter().filter_map(|o| o.valid().cloned()).collect();
            let now = Timestamp::now();
            let sweep_due =
                last_sweep.is_none_or(|at| now.duration_since(at).unsigned_abs() >= settings.sweep);
            if !started || sweep_due {
                sweep(&ctx, rds.as_ref(), &objects, !started).await;
                (started, last_sweep) = (true, Some(now));
            } else {
                advance_all(&ctx, rds.as_ref(), &objects, settings.per_region).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.tick) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// The objects this replica drills: drills asked for, Enforce, not suspended, its shard,
/// and admitted (its namespace may use its role; not refused as a second claim on an
/// instance): a drill acts with the object's role as every action does.
fn drilled<'a>(
    ctx: &'a Context,
    objects: &'a [Arc<BackedUpDatabase>],
) -> impl Iterator<Item = (&'a BackedUpDatabase, &'a DatabaseRestoreDrill)> {
    objects.iter().filter_map(move |db| {
        let drill = db.spec.restore_drill.as_ref()?;
        let acting = db.spec.mode == Mode::Enforce
            && !db.spec.suspend
            && !ctx.policy.audit_only
            && super::admitted(db.as_ref(), &ctx.tenancy);
        let ours = ctx
            .shards
            .owns(&db.namespace().unwrap_or_default(), &db.name_any());
        (acting && ours).then_some((db.as_ref(), drill))
    })
}

fn destination(db: &BackedUpDatabase) -> Scope {
    Scope::new(
        db.spec.instance.role_arn.as_deref(),
        &db.spec.replication.destination_region,
    )
}

fn object_name(db: &BackedUpDatabase) -> String {
    format!("{}/{}", db.namespace().unwrap_or_default(), db.name_any())
}

fn drill_status(db: &BackedUpDatabase) -> RestoreDrillStatus {
    super::report::Drilled::drill_status(db)
}

async fn advance_all(
    ctx: &Context,
    rds: &dyn DrillRds,
    objects: &[Arc<BackedUpDatabase>],
    per_region: usize,
) {
    // Drills under way per account and region, this tick's starts included.
    let mut running: HashMap<Scope, usize> = HashMap::new();
    for db in objects {
        if drill_status(db).running.is_some() {
            *running.entry(destination(db)).or_default() += 1;
        }
    }
    for (db, drill) in drilled(ctx, objects) {
        if let Err(error) = advance(ctx, rds, db, drill, &mut running, per_region).await {
            tracing::warn!(object = %object_name(db), %error, "restore drill: will try again");
        }
    }
}

/// One step of one object's drill.
async fn advance(
    ctx: &Context,
    rds: &dyn DrillRds,
    db: &BackedUpDatabase,
    drill: &DatabaseRestoreDrill,
    running: &mut HashMap<Scope, usize>,
    per_region: usize,
) -> Result<(), String> {
    let status = drill_status(db);
    let scope = destination(db);
    let now = Timestamp::now();
    if let Some(under_way) = &status.running {
        return check_running(ctx, rds, db, drill, status.clone(), under_way.clone(), now).await;
    }
    let created = crate::controller::database::created(&db.metadata, now);
    let uid = db.metadata.uid.clone().unwrap_or_default();
    let due = schedule::due_at(&status, drill.every.as_duration(), created, &uid);
    if now < due {
        if status.next_at.is_none() {
            let mut status = status;
            status.next_at = Some(Time(due));
            super::report::write(&ctx.client, db, status).await?;
        }
        return Ok(());
    }
    if running.get(&scope).copied().unwrap_or_default() >= per_region {
        return Ok(());
    }
    start(ctx, rds, db, drill, status, now).await?;
    *running.entry(scope).or_default() += 1;
    Ok(())
}

/// Starts a drill from the replicated automated backups, or records why it cannot (no
/// replica yet): failed, tried again at the next interval, not in a loop.
async fn start(
    ctx: &Context,
    rds: &dyn DrillRds,
    db: &BackedUpDatabase,
    drill: &DatabaseRestoreDrill,
    status: RestoreDrillStatus,
    now: Timestamp,
) -> Result<(), String> {
    let scope = destination(db);
    let source_arn = db
        .status
        .as_ref()
        .and_then(|s| s.instance.as_ref())
        .and_then(|i| i.arn.clone());
    let backups = match &source_arn {
        Some(arn) => ctx
            .rds
            .automated_backups_of(&scope, arn)
            .await
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let restorable = backups
        .iter()
        .filter(|b| b.is_active() || b.status.eq_ignore_ascii_case("retained"))
        .filter(|b| b.latest_time.is_some())
        .max_by_key(|b| b.latest_time);
    let Some(backup) = restorable else {
        let why = format!(
            "nothing to restore: no replicated automated backups of {} with a restorable time in {} yet",
            db.spec.instance.identifier, scope.region
        );
        return finish(ctx, db, drill, status, failed(now, now, why, None), None).await;
    };
    let identifier = schedule::instance_name(&db.metadata.uid.clone().unwrap_or_default());
    let request = DrillRestore {
        source_arn: backup.arn.clone(),
        identifier: identifier.clone(),
        instance_class: drill.instance_class.clone(),
        subnet_group: drill.subnet_group.clone(),
        object: object_name(db),
    };
    let (restored, request_ids) = crate::evidence::request_ids::collect(rds.restore(&scope, &request)).await;
    if let Err(e) = restored {
        // One left from a start whose status write was lost: carry on with it.
        let mine = rds.drills(&scope, Some(&identifier)).await.unwrap_or_default();
        if !mine
            .iter()
            .any(|i| i.object.as_deref() == Some(object_name(db).as_str()))
        {
            let why = format!("RDS refused the restore: {e}");
            return finish(ctx, db, drill, status, failed(now, now, why, None), None).await;
        }
    }
    super::report::record(
        &ctx.evidence,
        db,
        "RestoreDrillStarted",
        format!("restoring {} to {identifier} in {}", backup.arn, scope.region),
        false,
        request_ids,
    );
    let mut status = status;
    status.running = Some(RunningDrill {
        instance: Some(identifier),
        region: Some(scope.region.clone()),
        started_at: Time(now),
        recovery_point: backup.latest_time.map(Time),
    });
    super::report::write(&ctx.client, db, status).await
}

fn failed(started: Timestamp, now: Timestamp, why: String, recovery: Option<i64>) -> DrillResult {
    DrillResult {
        result: "Failed".into(),
        message: why,
        started_at: Time(started),
        finished_at: Time(now),
        duration_seconds: Some(now.duration_since(started).as_secs().max(0)),
        recovery_point_age_seconds: recovery,
    }
}

/// A drill under way: available → probe, delete, succeeded; failed or too long → delete,
/// failed; otherwise wait.
async fn check_running(
    ctx: &Context,
    rds: &dyn DrillRds,
    db: &BackedUpDatabase,
    drill: &DatabaseRestoreDrill,
    status: RestoreDrillStatus,
    under_way: RunningDrill,
    now: Timestamp,
) -> Result<(), String> {
    let scope = Scope::new(
        db.spec.instance.role_arn.as_deref(),
        under_way
            .region
            .as_deref()
            .unwrap_or(&db.spec.replication.destination_region),
    );
    let started = under_way.started_at.0;
    let identifier = under_way.instance.clone().unwrap_or_default();
    let recovery = under_way
        .recovery_point
        .as_ref()
        .map(|p| started.duration_since(p.0).as_secs().max(0));
    let found = rds
        .drills(&scope, Some(&identifier))
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|i| i.identifier == identifier && i.object.as_deref() == Some(object_name(db).as_str()));
    let Some(instance) = found else {
        let why = format!(
            "the drill instance {identifier} is gone before the drill ended (deleted by someone else?)"
        );
        return finish(ctx, db, drill, status, failed(started, now, why, recovery), None).await;
    };
    let elapsed = now.duration_since(started).unsigned_abs();
    let outcome = if instance.status == "available" {
        let probed = match (&drill.probe, &instance.endpoint) {
            (None, _) => Ok(String::new()),
            (Some(probe), Some((host, port))) => tcp_probe(host, *port, probe.timeout.as_duration()).await,
            (Some(_), None) => Err("it is available but RDS reports no endpoint to probe".to_string()),
        };
        Some(match probed {
            Ok(note) => DrillResult {
                result: "Succeeded".into(),
                message: format!(
                    "restored {} in {} to {identifier} (class {}) in {}s{note}; deleted",
                    db.spec.instance.identifier,
                    scope.region,
                    drill.instance_class,
                    elapsed.as_secs()
                ),
                started_at: Time(started),
                finished_at: Time(now),
                duration_seconds: Some(i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)),
                recovery_point_age_seconds: recovery,
            },
            Err(why) => failed(
                started,
                now,
                format!("{identifier} was restored but the probe failed: {why}"),
                recovery,
            ),
        })
    } else if failed_state(&instance.status) {
        Some(failed(
            started,
            now,
            format!(
                "the restore ended in RDS status {} ({identifier})",
                instance.status
            ),
            recovery,
        ))
    } else if elapsed > drill.max_duration.as_duration() {
        Some(failed(
            started,
            now,
            format!(
                "{identifier} was not available within maxDuration {} (RDS status {})",
                drill.max_duration, instance.status
            ),
            recovery,
        ))
    } else {
        None
    };
    let Some(result) = outcome else {
        return Ok(());
    };
    // The instance goes whatever the result: a drill leaves nothing behind.
    if instance.status != "deleting" {
        rds.delete(&scope, &instance)
            .await
            .map_err(|e| format!("deleting {identifier}: {e}"))?;
    }
    finish(ctx, db, drill, status, result, None).await
}

async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(format!(", {host}:{port} accepted a TCP connection")),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!("no TCP connection to {host}:{port} within {timeout:?}")),
    }
}

fn reporters(ctx: &Context) -> super::report::Reporters<'_> {
    super::report::Reporters {
        client: &ctx.client,
        metrics: &ctx.metrics,
        notifier: ctx.notifier.as_ref(),
        recorder: &ctx.recorder,
        evidence: &ctx.evidence,
    }
}

/// Records a drill's end: status, an Event, evidence, Slack when it failed; wakes the
/// object so that `RestoreVerified` says so at once.
async fn finish(
    ctx: &Context,
    db: &BackedUpDatabase,
    drill: &DatabaseRestoreDrill,
    status: RestoreDrillStatus,
    result: DrillResult,
    next_at: Option<Timestamp>,
) -> Result<(), String> {
    let ok = result.succeeded();
    let note = result.message.clone();
    let status = schedule::ended(status, drill.every.as_duration(), result, next_at);
    super::report::write(&ctx.client, db, status).await?;
    super::report::ended(&reporters(ctx), db, ok, note).await;
    ctx.wakes
        .wake_for_status(&db.namespace().unwrap_or_default(), &db.name_any());
    Ok(())
}

/// Deletes drill instances nobody's drill is using: at start every one (a drill under way
/// was interrupted: recorded so, its next try soon), later those of no running drill.
async fn sweep(ctx: &Context, rds: &dyn DrillRds, objects: &[Arc<BackedUpDatabase>], at_start: bool) {
    let mut scopes: Vec<Scope> = objects
        .iter()
        .filter(|db| db.spec.restore_drill.is_some() || drill_status(db).running.is_some())
        .map(|db| destination(db))
        .collect();
    scopes.sort();
    scopes.dedup();
    let in_use: HashMap<String, &BackedUpDatabase> = objects
        .iter()
        .filter_map(|db| {
            let running = drill_status(db).running?;
            Some((running.instance?, db.as_ref()))
        })
        .collect();
    for scope in scopes {
        let instances = match rds.drills(&scope, None).await {
            Ok(instances) => instances,
            Err(error) => {
                tracing::warn!(region = %scope.region, %error, "restore drill: cannot look for leftover drill instances");
                continue;
            }
        };
        for instance in instances.iter().filter(|i| i.is_drill()) {
            let owner = in_use.get(&instance.identifier);
            if !ours(ctx, instance) || (!at_start && (owner.is_some() || recent(instance))) {
                continue;
            }
            if instance.status != "deleting" {
                match rds.delete(&scope, instance).await {
                    Ok(()) => {
                        tracing::info!(instance = %instance.identifier, region = %scope.region, "restore drill: deleted a leftover drill instance")
                    }
                    Err(error) => {
                        tracing::warn!(instance = %instance.identifier, %error, "restore drill: cannot delete a leftover drill instance");
                        continue;
                    }
                }
            }
            if let Some(db) = owner {
                interrupted(ctx, db, instance).await;
            }
        }
    }
}

/// The drill instance's object is in this replica's shards (one whose object is gone
/// too: its name still hashes to one shard, so exactly one replica deletes it).
fn ours(ctx: &Context, instance: &DrillInstance) -> bool {
    let (namespace, name) = instance
        .object
        .as_deref()
        .and_then(|o| o.split_once('/'))
        .unwrap_or_default();
    ctx.shards.owns(namespace, name)
}

/// Made in the last ten minutes (or of unknown age): maybe by a drill whose status the
/// store has not shown yet, so not a leftover.
fn recent(instance: &DrillInstance) -> bool {
    instance
        .created
        .is_none_or(|at| Timestamp::now().duration_since(at).as_secs() < 600)
}

/// A drill a restart stopped: its instance deleted, recorded as interrupted, tried again at
/// the next tick after this one.
async fn interrupted(ctx: &Context, db: &BackedUpDatabase, instance: &DrillInstance) {
    let Some(drill) = &db.spec.restore_drill else {
        let mut status = drill_status(db);
        status.running = None;
        let _ = super::report::write(&ctx.client, db, status).await;
        return;
    };
    let status = drill_status(db);
    let started = status
        .running
        .as_ref()
        .map_or_else(Timestamp::now, |r| r.started_at.0);
    let now = Timestamp::now();
    let result = DrillResult {
        result: "Interrupted".into(),
        message: format!(
            "the controller restarted during the drill; {} was deleted",
            instance.identifier
        ),
        started_at: Time(started),
        finished_at: Time(now),
        duration_seconds: None,
        recovery_point_age_seconds: None,
    };
    let note = result.message.clone();
    let status = schedule::ended(status, drill.every.as_duration(), result, Some(now));
    if let Err(error) = super::report::write(&ctx.client, db, status).await {
        tracing::warn!(object = %object_name(db), %error, "restore drill: cannot record the interrupted drill");
    }
    let event = crate::report::events::action(crate::api::Reason::DrillInterrupted, note, false);
    crate::report::events::publish(&ctx.recorder, &kube::Resource::object_ref(db, &()), vec![event]).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_connects_or_says_why_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ok = tcp_probe("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(ok.is_ok_and(|note| note.contains(&format!("127.0.0.1:{port} accepted"))));
        drop(listener);
        let refused = tcp_probe("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(refused.is_err_and(|why| why.starts_with(&format!("cannot connect to 127.0.0.1:{port}"))));
    }

    #[test]
    fn only_a_failed_rds_state_ends_a_drill_early() {
        for status in [
            "failed",
            "incompatible-restore",
            "inaccessible-encryption-credentials",
        ] {
            assert!(failed_state(status), "{status}");
        }
        for status in ["creating", "backing-up", "modifying", "available", "deleting"] {
            assert!(!failed_state(status), "{status}");
        }
    }
}
