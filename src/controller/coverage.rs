//! The `BackupCoverage` reconcile: every RDS instance of the accounts and regions a coverage
//! names (read through the inventory the databases share, so a region is listed once for
//! both) and every repository of its GitHub organizations, against what `BackedUpDatabase`
//! and `BackedUpRepository` objects anywhere in the cluster declare. The counts, the
//! undeclared and the exempt go to status, a metric, Events and Slack; in Adopt mode the
//! undeclared get objects of their own (`adopt`).

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
        BackedUpDatabase, BackedUpRepository, ConditionStatus, ConditionType, Reason,
        conditions::set_condition,
        coverage::{
            BackupCoverage, BackupCoverageSpec, BackupCoverageStatus, CoverageCounts, CoverageMode,
            ExemptResource, UndeclaredResource,
        },
    },
    github::{GitHub, OrgRepository},
    observe,
    policy::coverage::{self, Standing, Tally},
    report::slack::{CheckLine, Notification, Transition},
};

/// The kind's name in metrics, Events and Slack.
pub const KIND: &str = "BackupCoverage";

/// The kinds a coverage counts, as its metric's `kind` label names them.
const KINDS: [&str; 2] = ["BackedUpDatabase", "BackedUpRepository"];

/// What a coverage remembers between scans: when each gap was first seen, and which gaps
/// were announced. Rebuilt from status after a restart.
#[derive(Default)]
struct Memory {
    first_seen: BTreeMap<String, Timestamp>,
    announced: Option<HashSet<String>>,
}

struct Coverages {
    ctx: Arc<Context>,
    /// Per coverage and kind.
    memory: Mutex<HashMap<(String, &'static str), Memory>>,
    store: kube::runtime::reflector::Store<Decoded<BackupCoverage>>,
    /// Without GitHub credentials, repositories cannot be scanned.
    github: Option<Arc<dyn GitHub>>,
    organizations: Organizations,
    /// What the objects of each kind declare, kept current by their watches.
    databases: Arc<adopt::Declarations>,
    repositories: Arc<adopt::Declarations>,
}

/// The organizations' repository lists, each read again once the coverage's period has
/// passed, and never more often than the discovery's share of GitHub's GraphQL budget
/// allows (`DISCOVERY_POINTS_PER_HOUR`): at 50,000 repositories, once every half hour.
#[derive(Default)]
struct Organizations {
    listed: tokio::sync::Mutex<HashMap<String, Listing>>,
}

/// When an organization was listed, and what the listing found.
type Listing = (std::time::Instant, Arc<Vec<OrgRepository>>);

/// GraphQL points an hour the discovery may spend: a fifth of GitHub's 5,000, beside the
/// repository sweep's half.
const DISCOVERY_POINTS_PER_HOUR: u32 = 1_000;

impl Organizations {
    async fn list(
        &self,
        github: &dyn GitHub,
        org: &str,
        period: Duration,
        changes: &crate::events::Listings,
    ) -> Result<Arc<Vec<OrgRepository>>, String> {
        let mut listed = self.listed.lock().await;
        // What the webhooks reported since: applied to the listing, not listed again.
        let reported = changes.take(org);
        if !reported.is_empty()
            && let Some((_, repos)) = listed.get_mut(org)
        {
            crate::events::apply_listed(Arc::make_mut(repos), reported);
        }
        if let Some((at, repos)) = listed.get(org) {
            let pages = u32::try_from(repos.len().div_ceil(crate::github::BATCH_SIZE)).unwrap_or(u32::MAX);
            let paced = Duration::from_secs(3600) * pages / DISCOVERY_POINTS_PER_HOUR;
            if at.elapsed() < period.max(paced) {
                return Ok(repos.clone());
            }
        }
        let repos = github
            .organization_repositories(org)
            .await
            .map_err(|e| format!("GitHub organization {org}: {e}"))?
            .ok_or_else(|| format!("GitHub organization {org} does not exist or is not visible to backup-warden's credentials"))?;
        let repos = Arc::new(repos);
        listed.insert(org.to_string(), (std::time::Instant::now(), repos.clone()));
        Ok(repos)
    }
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Reconciles the coverages `watch` selects (every one, in production); repositories are
/// scanned through `github` when there are credentials.
pub async fn run(
    ctx: Arc<Context>,
    github: Option<Arc<dyn GitHub>>,
    watch: watcher::Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    use kube::runtime::{WatchStreamExt, predicates, reflector};
    let api: Api<Decoded<BackupCoverage>> = Api::all(ctx.client.clone());
    let (store, writer) = reflector::store();
    let _ = ctx.coverages.set(store.clone());
    let metrics = ctx.metrics.clone();
    // A new spec wakes a coverage, its own status writes do not; a deleted one takes its
    // series with it (nothing else would remove them, and the alert would go on firing).
    let specs = watcher::watcher(api, watch)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(gone) = event {
                for kind in KINDS {
                    metrics.forget_coverage(&gone.name_any(), kind);
                }
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let controller = Controller::for_stream(specs, store.clone());
    let coverages = Arc::new(Coverages {
        ctx,
        memory: Mutex::new(HashMap::new()),
        store,
        github,
        organizations: Organizations::default(),
        databases: Arc::default(),
        repositories: Arc::default(),
    });
    let declarations = futures::future::join(
        coverages
            .databases
            .clone()
            .watch::<BackedUpDatabase>(coverages.ctx.client.clone()),
        coverages
            .repositories
            .clone()
            .watch::<BackedUpRepository>(coverages.ctx.client.clone()),
    );
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
    // A repository a webhook saw come or go: counted now, from the listing changed in place.
    let wake = futures::stream::select(wake, coverages.ctx.listings.wakes());
    let reconciles = controller
        .reconcile_all_on(wake)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, coverages)
        .for_each(|_| std::future::ready(()));
    // The watches of declarations run as long as the coverages are reconciled.
    tokio::select! {
        _ = reconciles => {}
        _ = declarations => {}
    }
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
    let declared_repositories = match &spec.repositories {
        Some(_) => c.repositories.declared(&coverage).await,
        None => Some(adopt::Declared::default()),
    };
    let (Some(mut declared), Some(mut declared_repositories)) =
        (c.databases.declared(&coverage).await, declared_repositories)
    else {
        tracing::warn!(coverage = %name, "the objects declared are not listed yet (their watch fails: RBAC?); counting later");
        return Ok(Action::requeue(
            ctx.timing.backoff_base.max(Duration::from_secs(10)),
        ));
    };
    let scanned = match scan(&c, spec).await {
        Ok(scanned) => scanned,
        Err((reason, why)) => {
            // The counts of the last good scan stay; what they are worth is said here.
            let message = format!("the last scan failed, the counts are from the scan before: {why}");
            set_condition(
                &mut status.conditions,
                ConditionType::Ready,
                ConditionStatus::Unknown,
                reason,
                message,
                generation,
                now,
            );
            status.observed_generation = generation;
            write_status(ctx, &name, &status, Some(&before)).await?;
            return Ok(Action::requeue(ctx.timing.backoff_base.max(period(ctx) / 4)));
        }
    };
    let databases = Counted {
        kind: "BackedUpDatabase",
        selector: observe::coverage::database_selector(spec),
        exemptions: observe::coverage::database_exemptions(spec),
        scanned: scanned.databases,
    };
    let repositories = Counted {
        kind: "BackedUpRepository",
        selector: observe::coverage::repository_selector(spec),
        exemptions: observe::coverage::repository_exemptions(spec),
        scanned: scanned.repositories,
    };
    let (mut adopted_databases, mut adopted_repositories) = (0, 0);
    if spec.mode == CoverageMode::Adopt {
        adopted_databases =
            adopt_kind::<BackedUpDatabase>(ctx, &coverage, &databases, &mut declared, now).await?;
        if spec.repositories.is_some() {
            let declared = &mut declared_repositories;
            adopted_repositories =
                adopt_kind::<BackedUpRepository>(ctx, &coverage, &repositories, declared, now).await?;
        }
    }

    let limit = usize::try_from(spec.list_limit).unwrap_or(1);
    let mut undeclared = 0;
    let mut summary = Vec::new();
    if spec.databases.is_some() {
        let tally = count(&c, &coverage, &before, &databases, &declared.claims, now, limit);
        undeclared += tally.undeclared;
        summary.push(format!("RDS instances {}", brief(&tally)));
        status.databases = Some(counts(&tally, adopted_databases, databases.kind));
    }
    if spec.repositories.is_some() {
        let tally = count(
            &c,
            &coverage,
            &before,
            &repositories,
            &declared_repositories.claims,
            now,
            limit,
        );
        undeclared += tally.undeclared;
        summary.push(format!("repositories {}", brief(&tally)));
        status.repositories = Some(counts(&tally, adopted_repositories, repositories.kind));
    }
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
    let (ready, reason, message) = if undeclared == 0 {
        (
            ConditionStatus::True,
            Reason::Covered,
            format!(
                "every resource in scope is declared or exempt: {}",
                summary.join("; ")
            ),
        )
    } else {
        (
            ConditionStatus::False,
            Reason::Uncovered,
            format!(
                "{undeclared} resources in scope have no object and no exemption: {}",
                summary.join("; ")
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
    if was_ready.as_deref() != Some(reason.as_str()) {
        let kind = if undeclared == 0 {
            EventType::Normal
        } else {
            EventType::Warning
        };
        event(ctx, &coverage, kind, reason.as_str(), message).await;
    }
    write_status(ctx, &name, &status, Some(&before)).await?;
    attest(ctx, &coverage, &status);
    // Just after the oldest read used expires: the next scan reads that region again,
    // unless an object read it since (and a read that finds an instance come or gone wakes
    // the coverage at once), so a new instance shows within one period.
    Ok(Action::requeue(
        period(ctx).saturating_sub(scanned.oldest) + Duration::from_millis(100),
    ))
}

/// One kind's resources as a scan found them, and how the coverage counts them.
struct Counted {
    kind: &'static str,
    selector: coverage::Selector,
    exemptions: coverage::Exemptions,
    scanned: Vec<coverage::Discovered>,
}

/// What one scan found.
struct Scanned {
    databases: Vec<coverage::Discovered>,
    repositories: Vec<coverage::Discovered>,
    /// The age of the oldest instance read used.
    oldest: Duration,
}

/// Reads what the coverage names; on failure, the reason and what failed.
async fn scan(c: &Coverages, spec: &BackupCoverageSpec) -> Result<Scanned, (Reason, String)> {
    let ctx = &c.ctx;
    let (databases, oldest) = observe::coverage::databases(&ctx.inventory, spec, period(ctx))
        .await
        .map_err(|why| (Reason::ObservationFailed, why))?;
    let mut listed = Vec::new();
    if let Some(repositories) = &spec.repositories {
        let Some(github) = &c.github else {
            let why = "backup-warden has no GitHub credentials: repositories are not scanned (docs/installation.md)";
            return Err((Reason::CredentialsMissing, why.into()));
        };
        for org in &repositories.organizations {
            let repos = c
                .organizations
                .list(github.as_ref(), org, period(ctx), &ctx.listings)
                .await
                .map_err(|why| (Reason::ObservationFailed, why))?;
            listed.extend(repos.iter().cloned());
        }
    }
    Ok(Scanned {
        databases,
        repositories: observe::coverage::repositories(spec, &listed),
        oldest,
    })
}

/// Creates the objects of one kind's undeclared resources and removes the adopted ones
/// whose resource has been gone for the grace period; how many objects the coverage then
/// owns of the kind.
async fn adopt_kind<K: adopt::Adoptable>(
    ctx: &Context,
    coverage: &BackupCoverage,
    counted: &Counted,
    declared: &mut adopt::Declared,
    now: Timestamp,
) -> Result<usize, kube::Error> {
    let spec = &coverage.spec;
    // Adopted before they are counted: what is adopted now is declared from now on.
    let undeclared: BTreeMap<String, String> = counted
        .scanned
        .iter()
        .filter(|d| {
            coverage::standing(d, &counted.selector, &counted.exemptions, &declared.claims)
                == Standing::Undeclared
        })
        .map(|d| (d.claim.clone(), d.name.clone()))
        .collect();
    let created = match adopt::adopt::<K>(&ctx.client, coverage, &undeclared, declared).await? {
        Some(created) => {
            declared.claims.extend(undeclared.into_keys());
            created
        }
        // No template for the kind: its gaps stay reported.
        None => Vec::new(),
    };
    let found: HashSet<String> = counted.scanned.iter().map(|d| d.claim.clone()).collect();
    let deleted = adopt::remove_gone::<K>(&ctx.client, coverage, declared, &found, now).await?;
    for (names, reason, what) in [
        (&created, "Adopted", "created"),
        (
            &deleted,
            "AdoptedRemoved",
            "deleted (their resource has been gone for the grace period)",
        ),
    ] {
        if !names.is_empty() {
            let note = format!(
                "{} {} objects {what} in {}: {}",
                names.len(),
                counted.kind,
                spec.namespace,
                names.join(", ")
            );
            event(ctx, coverage, EventType::Normal, reason, note).await;
        }
    }
    Ok((declared.adopted.len() + created.len()).saturating_sub(deleted.len()))
}

/// Counts one kind, remembers its gaps, sets its metric and announces what opened or closed.
fn count(
    c: &Coverages,
    coverage: &BackupCoverage,
    before: &BackupCoverageStatus,
    counted: &Counted,
    declared: &HashSet<String>,
    now: Timestamp,
    limit: usize,
) -> Tally {
    let name = coverage.name_any();
    let (tally, open) = {
        let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
        let memory = memory
            .entry((name.clone(), counted.kind))
            .or_insert_with(|| remembered(before, counted.kind));
        let tally = coverage::tally(
            &counted.scanned,
            &counted.selector,
            &counted.exemptions,
            declared,
            &mut memory.first_seen,
            now,
            limit,
        );
        let open: HashSet<String> = memory.first_seen.keys().cloned().collect();
        (tally, open)
    };
    c.ctx.metrics.set_coverage(&name, counted.kind, &tally);
    announce(c, coverage, counted.kind, &tally, &open);
    tally
}

fn brief(t: &Tally) -> String {
    format!(
        "{} in scope: {} declared, {} exempt, {} undeclared",
        t.discovered, t.declared, t.exempt, t.undeclared
    )
}

/// The memory and metric series of coverages no longer in the store.
fn forget_deleted(c: &Coverages) {
    let present: HashSet<String> = c.store.state().iter().map(|o| o.name_any()).collect();
    let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
    memory.retain(|(name, kind), _| {
        let keep = present.contains(name);
        if !keep {
            c.ctx.metrics.forget_coverage(name, kind);
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

/// Whether the coverage's namespace may use every account and organization it scans (the
/// tenancy file): an organization is scanned whole, so the namespace needs `org/*`.
fn allowed(ctx: &Context, spec: &BackupCoverageSpec) -> Result<(), String> {
    let accounts = spec.databases.iter().flat_map(|d| &d.accounts);
    accounts
        .into_iter()
        .try_for_each(|a| ctx.tenancy.check_role(&spec.namespace, a.role_arn.as_deref()))?;
    let organizations = spec.repositories.iter().flat_map(|r| &r.organizations);
    organizations
        .into_iter()
        .try_for_each(|org| ctx.tenancy.check_repository(&spec.namespace, &format!("{org}/*")))
}

fn counts(tally: &Tally, adopted: usize, kind: &str) -> CoverageCounts {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    // An instance's account and region; a repository's claim is its name alone.
    let place = |claim| match kind {
        "BackedUpDatabase" => {
            let (account, region, _) = coverage::parts(claim);
            (account, region)
        }
        _ => ("", ""),
    };
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
                let (account, region) = place(&gap.claim);
                UndeclaredResource {
                    name: gap.name.clone(),
                    account: account.to_string(),
                    region: region.to_string(),
                    first_seen: gap.first_seen.to_string(),
                }
            })
            .collect(),
        exempt_resources: tally
            .exempted
            .iter()
            .map(|e| {
                let (account, region) = place(&e.claim);
                ExemptResource {
                    name: e.name.clone(),
                    account: account.to_string(),
                    region: region.to_string(),
                    reason: e.reason.clone(),
                }
            })
            .collect(),
    }
}

/// What status says of the gaps a previous run saw: when each was first seen, and that
/// all of them were announced. When status lists fewer than it counts, the unlisted ones
/// are taken as announced too: after a restart a gap is never announced twice, at the
/// cost of missing one that opened while no replica ran (still counted and alerted on).
fn remembered(status: &BackupCoverageStatus, kind: &str) -> Memory {
    let counts = match kind {
        "BackedUpDatabase" => &status.databases,
        _ => &status.repositories,
    };
    let Some(counts) = counts else {
        // Never scanned: every gap found is new.
        return Memory {
            announced: Some(HashSet::new()),
            ..Memory::default()
        };
    };
    let first_seen: BTreeMap<String, Timestamp> = counts
        .undeclared_resources
        .iter()
        .filter_map(|r| {
            let name = r.name.to_ascii_lowercase();
            let claim = match kind {
                "BackedUpDatabase" => format!("{}/{}/{name}", r.account, r.region),
                _ => name,
            };
            Some((claim, r.first_seen.parse().ok()?))
        })
        .collect();
    let complete = counts.undeclared_resources.len() >= usize::try_from(counts.undeclared).unwrap_or(0);
    Memory {
        announced: complete.then(|| first_seen.keys().cloned().collect()),
        first_seen,
    }
}

/// One Slack message per gap that opened since the last scan and one per gap that closed.
fn announce(
    c: &Coverages,
    coverage: &BackupCoverage,
    kind: &'static str,
    tally: &Tally,
    open: &HashSet<String>,
) {
    let name = coverage.name_any();
    let mut memory = c.memory.lock().unwrap_or_else(|p| p.into_inner());
    let Some(memory) = memory.get_mut(&(name.clone(), kind)) else {
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
        let check = if kind == "BackedUpDatabase" {
            let (account, region, id) = coverage::parts(claim);
            let id = names.get(claim).copied().unwrap_or(id);
            format!("RDS instance {id} in {region} (account {account})")
        } else {
            format!("repository {}", names.get(claim).copied().unwrap_or(claim))
        };
        CheckLine {
            check,
            desired: format!("a {kind} or an exemption"),
            observed,
        }
    };
    let notify = |transition, checks| {
        c.ctx.notifier.notify(Notification {
            kind: KIND,
            namespace: coverage.spec.namespace.clone(),
            name: name.clone(),
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

/// The coverage's daily attestation for the evidence log: its counts, and what is exempt
/// and why.
fn attest(ctx: &Context, coverage: &BackupCoverage, status: &BackupCoverageStatus) {
    let who = crate::evidence::ObjectRef {
        kind: KIND.to_string(),
        namespace: String::new(),
        name: coverage.name_any(),
        uid: coverage.metadata.uid.clone(),
        generation: coverage.metadata.generation,
    };
    if !ctx.evidence.attest_due(&who, Timestamp::now()) {
        return;
    }
    let mode = format!("{:?}", coverage.spec.mode);
    let body = crate::evidence::attestation(coverage, &status.conditions, status, &mode, false);
    ctx.evidence.record(Some(who), body);
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
        let fresh = remembered(&BackupCoverageStatus::default(), "BackedUpDatabase");
        assert_eq!(fresh.announced, Some(HashSet::new()));

        // Every gap listed: those were announced, a new one will be.
        let all = remembered(&status(&["Scratch-DB", "new-db"], 2), "BackedUpDatabase");
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
        let some = remembered(&status(&["scratch-db"], 5), "BackedUpDatabase");
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
            exempted: vec![coverage::Exempt {
                claim: "self/us-east-1/legacy".into(),
                name: "legacy".into(),
                reason: "decommissioned (OPS-12)".into(),
            }],
        };
        let counts = counts(&tally, 0, "BackedUpDatabase");
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
        assert_eq!(
            counts.exempt_resources,
            [ExemptResource {
                name: "legacy".into(),
                account: "self".into(),
                region: "us-east-1".into(),
                reason: "decommissioned (OPS-12)".into(),
            }]
        );
        // A repository's claim is its name: no account, no region.
        let repository = Tally {
            exempted: vec![coverage::Exempt {
                claim: "acme/docs".into(),
                name: "acme/docs".into(),
                reason: "generated".into(),
            }],
            ..Tally::default()
        };
        let listed = super::counts(&repository, 0, "BackedUpRepository").exempt_resources;
        assert_eq!((listed[0].account.as_str(), listed[0].region.as_str()), ("", ""));
    }
}
