//! The `BackupCoverage` reconcile: every RDS instance of the accounts and regions a coverage
//! names (read through the inventory the databases share, so a region is listed once for
//! both), against what `BackedUpDatabase` objects anywhere in the cluster declare. The
//! counts and the undeclared instances go to status, a metric, Events and Slack.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{Controller, controller::Action, events::EventType, watcher},
};

use super::{Context, Decoded, FIELD_MANAGER, adopt};
use crate::{
    api::{
        ConditionStatus, ConditionType, Reason,
        conditions::set_condition,
        coverage::{
            BackupCoverage, BackupCoverageSpec, BackupCoverageStatus, CoverageCounts, CoverageMode,
            UndeclaredResource,
        },
    },
    observe,
    policy::coverage::{self, Standing, Tally},
    report::slack::{CheckLine, Notification, Transition},
};

/// The kind's name in metrics, Events and Slack.
pub const KIND: &str = "BackupCoverage";

/// What a coverage remembers between scans: when each gap was first seen, and which gaps
/// were announced. Rebuilt from status after a restart.
#[derive(Default)]
struct Memory {
    first_seen: BTreeMap<String, Timestamp>,
    announced: Option<HashSet<String>>,
}

struct Coverages {
    ctx: Arc<Context>,
    /// Per coverage, by name.
    memory: Mutex<HashMap<String, Memory>>,
    store: kube::runtime::reflector::Store<Decoded<BackupCoverage>>,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Reconciles the coverages `watch` selects (every one, in production).
pub async fn run(
    ctx: Arc<Context>,
    watch: watcher::Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    use kube::runtime::{WatchStreamExt, predicates, reflector};
    let api: Api<Decoded<BackupCoverage>> = Api::all(ctx.client.clone());
    let (store, writer) = reflector::store();
    let metrics = ctx.metrics.clone();
    // A new spec wakes a coverage, its own status writes do not; a deleted one takes its
    // series with it (nothing else would remove them, and the alert would go on firing).
    let specs = watcher::watcher(api, watch)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(gone) = event {
                metrics.forget_coverage(&gone.name_any(), "BackedUpDatabase");
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let controller = Controller::for_stream(specs, store.clone());
    let coverages = Arc::new(Coverages {
        ctx,
        memory: Mutex::new(HashMap::new()),
        store,
    });
    // A read of a region that finds instances come or gone (any object's, or a coverage's)
    // is a reason to count again now rather than at the next scan.
    // At most once per settle interval: while objects converge, reads find changes all the
    // time, and each count lists every BackedUpDatabase.
    let (changes, settle) = (coverages.ctx.inventory.changes(), coverages.ctx.timing.settle);
    let wake = futures::stream::unfold((changes, false), move |(mut changes, woke)| async move {
        if woke {
            tokio::time::sleep(settle).await;
        }
        changes.recv().await?;
        while changes.try_recv().is_ok() {}
        Some(((), (changes, true)))
    });
    controller
        .reconcile_all_on(wake)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, coverages)
        .for_each(|_| std::future::ready(()))
        .await;
}

fn error_policy(_: Arc<Decoded<BackupCoverage>>, error: &Error, c: Arc<Coverages>) -> Action {
    tracing::warn!(%error, "BackupCoverage status could not be written");
    Action::requeue(c.ctx.timing.backoff_base)
}

/// Scans once per resync, from the reads of each region no older than that: the ones the
/// region's objects made when there are any (a coverage then adds no AWS request), its own
/// otherwise.
fn period(ctx: &Context) -> Duration {
    ctx.timing.resync
}

async fn reconcile(object: Arc<Decoded<BackupCoverage>>, c: Arc<Coverages>) -> Result<Action, Error> {
    let ctx = &c.ctx;
    forget_deleted(&c);
    let Some(_in_shard) = ctx.shards.enter(object.as_ref()) else {
        return Ok(Action::await_change());
    };
    let name = object.name_any();
    let now = Timestamp::now();
    let generation = object.meta().generation;
    let (coverage, mut status) = match object.as_ref() {
        Decoded::Valid(coverage) => (coverage.clone(), coverage.status.clone().unwrap_or_default()),
        Decoded::Invalid(bad) => {
            let mut status = BackupCoverageStatus {
                conditions: bad.conditions.clone(),
                ..Default::default()
            };
            stalled(&mut status, Reason::InvalidSpec, &bad.error, generation, now);
            write_status(ctx, &name, &status, None).await?;
            return Ok(Action::await_change());
        }
    };
    let before = coverage.status.clone().unwrap_or_default();
    let spec = &coverage.spec;

    if let Err(why) = allowed(ctx, spec) {
        stalled(&mut status, Reason::NotAllowed, &why, generation, now);
        write_status(ctx, &name, &status, Some(&before)).await?;
        return Ok(Action::requeue(ctx.timing.resync));
    }

    // The objects first, AWS last: a list of every object takes a while at scale, and the
    // counts are then as fresh as the instances' read.
    let mut declared = adopt::declared(&ctx.client, &coverage).await?;
    let mut adopted = 0;
    let (scanned, oldest) = match observe::coverage::databases(&ctx.inventory, spec, period(ctx)).await {
        Ok(found) => found,
        Err(why) => {
            // The counts of the last good scan stay; what they are worth is said here.
            let message = format!("the last scan failed, the counts are from the scan before: {why}");
            set_condition(
                &mut status.conditions,
                ConditionType::Ready,
                ConditionStatus::Unknown,
                Reason::ObservationFailed,
                message,
                generation,
                now,
            );
            status.observed_generation = generation;
            write_status(ctx, &name, &status, Some(&before)).await?;
            return Ok(Action::requeue(ctx.timing.backoff_base.max(period(ctx) / 4)));
        }
    };
    let (selector, exemptions) = (
        observe::coverage::selector(spec),
        observe::coverage::exemptions(spec),
    );
    if spec.mode == CoverageMode::Adopt {
        // Adopted before they are counted: what is adopted now is declared from now on.
        let undeclared: BTreeMap<String, String> = scanned
            .iter()
            .filter(|d| {
                coverage::standing(d, &selector, &exemptions, &declared.claims) == Standing::Undeclared
            })
            .map(|d| (d.claim.clone(), d.name.clone()))
            .collect();
        let created = adopt::adopt(&ctx.client, &coverage, &undeclared, &mut declared).await?;
        declared.claims.extend(undeclared.into_keys());
        let found: HashSet<String> = scanned.iter().map(|d| d.claim.clone()).collect();
        let deleted = adopt::remove_gone(&ctx.client, &coverage, &declared, &found, now).await?;
        for (names, reason, what) in [
            (&created, "Adopted", "created"),
            (
                &deleted,
                "AdoptedRemoved",
                "deleted (their instance has been gone for the grace period)",
            ),
        ] {
            if !names.is_empty() {
                let note = format!(
                    "{} BackedUpDatabase objects {what} in {}: {}",
                    names.len(),
                    spec.namespace,
                    names.join(", ")
                );
                event(ctx, &coverage, EventType::Normal, reason, note).await;
            }
        }
        adopted = (declared.adopted.len() + created.len()).saturating_sub(deleted.len());
    }

    let tally = {
        let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
        let memory = memory.entry(name.clone()).or_insert_with(|| remembered(&before));
        coverage::tally(
            &scanned,
            &selector,
            &exemptions,
            &declared.claims,
            &mut memory.first_seen,
            now,
            usize::try_from(spec.list_limit).unwrap_or(1),
        )
    };
    let open: HashSet<String> = c
        .memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&name)
        .map(|m| m.first_seen.keys().cloned().collect())
        .unwrap_or_default();

    status.databases = Some(counts(&tally, adopted));
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        ConditionType::Stalled,
        ConditionStatus::False,
        Reason::NotStalled,
        "",
        generation,
        now,
    );
    let (ready, reason, message) = if tally.undeclared == 0 {
        (
            ConditionStatus::True,
            Reason::Covered,
            format!(
                "every one of {} RDS instances in scope is declared ({}) or exempt ({})",
                tally.discovered, tally.declared, tally.exempt
            ),
        )
    } else {
        (
            ConditionStatus::False,
            Reason::Uncovered,
            format!(
                "{} of {} RDS instances in scope have no BackedUpDatabase and no exemption",
                tally.undeclared, tally.discovered
            ),
        )
    };
    let was_ready = crate::api::conditions::find_condition(&before.conditions, ConditionType::Ready)
        .map(|c| c.reason.to_string());
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ready,
        reason,
        message.clone(),
        generation,
        now,
    );
    ctx.metrics.set_coverage(&name, "BackedUpDatabase", &tally);
    announce(&c, &coverage, &name, &tally, &open);
    if was_ready.as_deref() != Some(reason.as_str()) {
        let kind = if tally.undeclared == 0 {
            EventType::Normal
        } else {
            EventType::Warning
        };
        event(ctx, &coverage, kind, reason.as_str(), message).await;
    }
    write_status(ctx, &name, &status, Some(&before)).await?;
    // Just after the oldest read used expires: the next scan reads that region again,
    // unless an object read it since (and a read that finds an instance come or gone wakes
    // the coverage at once), so a new instance shows within one period.
    Ok(Action::requeue(
        period(ctx).saturating_sub(oldest) + Duration::from_millis(100),
    ))
}

/// The memory and metric series of coverages no longer in the store.
fn forget_deleted(c: &Coverages) {
    let present: HashSet<String> = c.store.state().iter().map(|o| o.name_any()).collect();
    let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
    memory.retain(|name, _| {
        let keep = present.contains(name);
        if !keep {
            c.ctx.metrics.forget_coverage(name, "BackedUpDatabase");
        }
        keep
    });
}

async fn event(ctx: &Context, coverage: &BackupCoverage, type_: EventType, reason: &str, note: String) {
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Scan".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &coverage.object_ref(&())).await {
        tracing::debug!(%error, coverage = %coverage.name_any(), "event not recorded");
    }
}

/// Whether the coverage's namespace may use every account it scans (the tenancy file).
fn allowed(ctx: &Context, spec: &BackupCoverageSpec) -> Result<(), String> {
    let Some(databases) = &spec.databases else {
        return Ok(());
    };
    databases
        .accounts
        .iter()
        .try_for_each(|a| ctx.tenancy.check_role(&spec.namespace, a.role_arn.as_deref()))
}

fn counts(tally: &Tally, adopted: usize) -> CoverageCounts {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    CoverageCounts {
        discovered: count(tally.discovered),
        declared: count(tally.declared),
        exempt: count(tally.exempt),
        undeclared: count(tally.undeclared),
        adopted: count(adopted),
        undeclared_resources: tally
            .gaps
            .iter()
            .map(|gap| {
                let (account, region, _) = coverage::parts(&gap.claim);
                UndeclaredResource {
                    name: gap.name.clone(),
                    account: account.to_string(),
                    region: region.to_string(),
                    first_seen: gap.first_seen.to_string(),
                }
            })
            .collect(),
    }
}

/// What status says of the gaps a previous run saw: when each was first seen, and that
/// all of them were announced. When status lists fewer than it counts, the unlisted ones
/// are taken as announced too: after a restart a gap is never announced twice, at the
/// cost of missing one that opened while no replica ran (still counted and alerted on).
fn remembered(status: &BackupCoverageStatus) -> Memory {
    let Some(databases) = &status.databases else {
        // Never scanned: every gap found is new.
        return Memory {
            announced: Some(HashSet::new()),
            ..Memory::default()
        };
    };
    let first_seen: BTreeMap<String, Timestamp> = databases
        .undeclared_resources
        .iter()
        .filter_map(|r| {
            let claim = format!("{}/{}/{}", r.account, r.region, r.name.to_ascii_lowercase());
            Some((claim, r.first_seen.parse().ok()?))
        })
        .collect();
    let complete = databases.undeclared_resources.len() >= usize::try_from(databases.undeclared).unwrap_or(0);
    Memory {
        announced: complete.then(|| first_seen.keys().cloned().collect()),
        first_seen,
    }
}

/// One Slack message per gap that opened since the last scan and one per gap that closed.
fn announce(c: &Coverages, coverage: &BackupCoverage, name: &str, tally: &Tally, open: &HashSet<String>) {
    let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
    let Some(memory) = memory.get_mut(name) else {
        return;
    };
    let Some(announced) = memory.announced.as_mut() else {
        // The first scan after a restart whose status did not list every gap: whatever is
        // open now counts as announced.
        memory.announced = Some(open.clone());
        return;
    };
    let names: HashMap<&str, &str> = tally
        .gaps
        .iter()
        .map(|g| (g.claim.as_str(), g.name.as_str()))
        .collect();
    let line = |claim: &str, observed: String| {
        let mut parts = claim.splitn(3, '/');
        let (account, region) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let id = names
            .get(claim)
            .copied()
            .unwrap_or_else(|| parts.next().unwrap_or_default());
        CheckLine {
            check: format!("RDS instance {id} in {region} (account {account})"),
            desired: "a BackedUpDatabase or an exemption".into(),
            observed,
        }
    };
    let notify = |transition, checks| {
        c.ctx.notifier.notify(Notification {
            kind: KIND,
            namespace: coverage.spec.namespace.clone(),
            name: name.to_string(),
            transition,
            checks,
            link: None,
        })
    };
    let mut opened: Vec<&String> = open.difference(announced).collect();
    opened.sort();
    for claim in opened {
        notify(Transition::Drift, vec![line(claim, "undeclared".into())]);
    }
    let mut closed: Vec<&String> = announced.difference(open).collect();
    closed.sort();
    for claim in closed {
        notify(
            Transition::Resolved,
            vec![line(claim, "declared, exempt, out of scope or gone".into())],
        );
    }
    *announced = open.clone();
}

fn stalled(
    status: &mut BackupCoverageStatus,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    for (type_, state) in [
        (ConditionType::Stalled, ConditionStatus::True),
        (ConditionType::Ready, ConditionStatus::False),
    ] {
        set_condition(
            &mut status.conditions,
            type_,
            state,
            reason,
            message,
            generation,
            now,
        );
    }
    status.observed_generation = generation;
}

/// Writes status when it differs from what the object holds: a quiet scan writes nothing.
async fn write_status(
    ctx: &Context,
    name: &str,
    status: &BackupCoverageStatus,
    before: Option<&BackupCoverageStatus>,
) -> Result<(), kube::Error> {
    if before == Some(status) {
        return Ok(());
    }
    let api: Api<BackupCoverage> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": BackupCoverage::api_version(&()),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.status_writes.with_label_values(&[KIND]).inc();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::coverage::database_claim;

    fn status(listed: &[&str], undeclared: i32) -> BackupCoverageStatus {
        BackupCoverageStatus {
            databases: Some(CoverageCounts {
                discovered: 10,
                undeclared,
                undeclared_resources: listed
                    .iter()
                    .map(|name| UndeclaredResource {
                        name: name.to_string(),
                        account: "self".into(),
                        region: "us-east-1".into(),
                        first_seen: "2026-12-01T07:00:00Z".into(),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_restart_keeps_first_seen_and_announces_no_listed_gap_again() {
        // Never scanned: every gap is new.
        let fresh = remembered(&BackupCoverageStatus::default());
        assert_eq!(fresh.announced, Some(HashSet::new()));

        // Every gap listed: those were announced, a new one will be.
        let all = remembered(&status(&["Scratch-DB", "new-db"], 2));
        let claims: HashSet<String> = ["self/us-east-1/scratch-db", "self/us-east-1/new-db"]
            .map(String::from)
            .into();
        assert_eq!(all.announced, Some(claims.clone()));
        assert_eq!(
            all.first_seen
                .get("self/us-east-1/scratch-db")
                .map(|t| t.to_string()),
            Some("2026-12-01T07:00:00Z".into())
        );
        // The claim is the one a BackedUpDatabase naming it makes.
        assert_eq!(
            database_claim(None, "us-east-1", "Scratch-DB"),
            "self/us-east-1/scratch-db"
        );

        // More gaps than listed: which were announced is unknown, so none is announced again.
        let some = remembered(&status(&["scratch-db"], 5));
        assert_eq!(some.announced, None);
        assert_eq!(some.first_seen.len(), 1);
    }

    #[test]
    fn the_status_list_names_account_and_region() {
        let tally = Tally {
            discovered: 3,
            declared: 1,
            exempt: 1,
            undeclared: 1,
            gaps: vec![coverage::Gap {
                claim: "210987654321/eu-west-1/reports".into(),
                name: "Reports".into(),
                first_seen: "2026-12-01T07:00:00Z".parse().unwrap(),
            }],
        };
        let counts = counts(&tally, 0);
        assert_eq!(
            (
                counts.discovered,
                counts.declared,
                counts.exempt,
                counts.undeclared
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(
            counts.undeclared_resources,
            [UndeclaredResource {
                name: "Reports".into(),
                account: "210987654321".into(),
                region: "eu-west-1".into(),
                first_seen: "2026-12-01T07:00:00Z".into(),
            }]
        );
    }
}
