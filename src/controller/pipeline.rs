//! The one reconcile every kind goes through: observe → evaluate → plan → act → look again
//! → report (status, Slack, Events, metrics) → requeue. A kind says what is particular to it
//! by implementing [`Kind`]; the rest, including what a failed call means, is here once.

use std::{fmt::Debug, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{NamespaceResourceScope, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::{self, Action},
        events::Event,
        reflector::{Store, store::Writer},
    },
};

use crate::report::recorder::Recorder;

use super::{
    Decoded,
    admission::Claimant,
    context::{Backoff, Timing},
    decoded::HasConditions,
    guard::{self, Guard},
    requests,
};
use crate::{
    api::{ConditionType, Reason, conditions::Condition},
    external::{Failure, ServiceError},
    policy::{Finding, Plan, Verdict},
    report::{
        events,
        metrics::Metrics,
        notify,
        slack::Notifier,
        status::{Progress, apply_stalled, apply_suspended, apply_unobserved, is_reconciling, patch_status},
    },
    tenancy::Tenancy,
};

/// What a kind's reconcile needs of its context, whatever else the context holds.
pub struct Shared<'a> {
    pub client: &'a kube::Client,
    pub recorder: &'a Recorder,
    pub backoff: &'a Backoff,
    pub metrics: &'a Arc<Metrics>,
    pub notifier: &'a dyn Notifier,
    pub tenancy: &'a Arc<Tenancy>,
    pub timing: Timing,
    /// The shards this replica acts on (all, unsharded).
    pub shards: &'a Arc<super::shards::Ownership>,
    /// The objects change events woke: read afresh.
    pub urgent: &'a crate::events::Urgent,
    /// Where transitions, actions and daily attestations are kept for auditors.
    pub evidence: &'a crate::evidence::EvidenceLog,
}

/// The status every kind keeps: conditions, the generation they describe, and what drift
/// was last announced.
pub trait KindStatus: Default + Clone + PartialEq + serde::Serialize + Send + Sync {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
    fn notified_drift(&self) -> &[String];
    fn set_notified_drift(&mut self, checks: Vec<String>);
    /// The reconcile request (annotation value) last handled, as Flux's `lastHandledReconcileAt`.
    fn last_handled_reconcile_at(&self) -> Option<&str>;
    fn set_last_handled_reconcile_at(&mut self, value: String);
}

/// Implements [`KindStatus`] for a status type with the usual fields (`conditions`,
/// `observed_generation`, `notified_drift`, `last_handled_reconcile_at`).
macro_rules! kind_status {
    ($status:ty) => {
        impl $crate::controller::pipeline::KindStatus for $status {
            fn conditions(&self) -> &[$crate::api::conditions::Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<$crate::api::conditions::Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
            fn notified_drift(&self) -> &[String] {
                &self.notified_drift
            }
            fn set_notified_drift(&mut self, checks: Vec<String>) {
                self.notified_drift = checks;
            }
            fn last_handled_reconcile_at(&self) -> Option<&str> {
                self.last_handled_reconcile_at.as_deref()
            }
            fn set_last_handled_reconcile_at(&mut self, value: String) {
                self.last_handled_reconcile_at = Some(value);
            }
        }
    };
}
pub(crate) use kind_status;

/// The [`Shared`] view of a context that has the usual fields under the usual names.
macro_rules! shared_of {
    ($ctx:expr) => {
        $crate::controller::pipeline::Shared {
            client: &$ctx.client,
            recorder: &$ctx.recorder,
            backoff: &$ctx.backoff,
            metrics: &$ctx.metrics,
            notifier: $ctx.notifier.as_ref(),
            tenancy: &$ctx.tenancy,
            timing: $ctx.timing,
            shards: &$ctx.shards,
            urgent: &$ctx.wakes.urgent,
            evidence: &$ctx.evidence,
        }
    };
}
pub(crate) use shared_of;

/// What makes a kind: how it is observed, judged, fixed and shown.
#[async_trait::async_trait]
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasConditions
    + Claimant
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    /// The kind's checks, in the order status lists them.
    const CHECKS: &'static [ConditionType];
    type Context: Send + Sync + 'static;
    type Status: KindStatus;
    type Observation: Send + Sync;
    type Action: Send + Sync;
    /// What one action leaves for the next of the same plan (the database's new key).
    type Scratch: Default + Send;

    fn shared(ctx: &Self::Context) -> Shared<'_>;
    fn status(&self) -> Option<&Self::Status>;
    /// `spec.suspend`: nothing is observed or changed.
    fn suspended(&self) -> bool;
    /// Nothing will be fixed: the object's `mode: Audit` or the controller's `--audit-only`.
    fn audit(&self, ctx: &Self::Context) -> bool;

    /// Reads what the policy needs; `fresh` bounds the age of what a change in progress moves.
    async fn observe(&self, ctx: &Self::Context, fresh: Duration) -> Result<Self::Observation, ServiceError>;
    /// Drops what the actions made stale, before looking again.
    fn forget(&self, _ctx: &Self::Context) {}
    fn evaluate(&self, ctx: &Self::Context, obs: &Self::Observation) -> Vec<Finding>;
    fn plan(&self, ctx: &Self::Context, obs: &Self::Observation, findings: &[Finding]) -> Plan<Self::Action>;
    /// The action, for people.
    fn describe(&self, action: &Self::Action) -> String;
    /// The reason of the action's Event.
    fn reason(action: &Self::Action) -> Reason;
    /// Carries out one action; a note replaces the description when it says more.
    async fn perform(
        &self,
        ctx: &Self::Context,
        obs: &Self::Observation,
        action: &Self::Action,
        scratch: &mut Self::Scratch,
    ) -> Result<Option<String>, ServiceError>;
    fn build_status(
        &self,
        old: &Self::Status,
        obs: &Self::Observation,
        findings: &[Finding],
        progress: &Progress,
    ) -> Self::Status;
    /// What the policy wants of a check, for people.
    fn desired(&self, ctx: &Self::Context, check: ConditionType) -> String;
    /// Where to look, in a Slack message.
    fn link(&self, obs: &Self::Observation) -> Option<(String, String)>;
    /// Ages of the newest restorable points, for the metrics.
    fn ages(&self, obs: &Self::Observation) -> Vec<(&'static str, Option<Duration>)>;
    /// The regions the object's AWS calls go to, for an unreachable-region message.
    fn regions(&self) -> String;
    /// The message of a refusal for quota.
    fn quota_message(&self, e: &ServiceError) -> String {
        format!("{e}: the account's quota is reached; request an increase in Service Quotas")
    }
    /// Work after the report (the database's key cleanup).
    async fn after(&self, _ctx: &Self::Context) {}
}

/// How old the facts an event-driven reconcile reads may be: no older than the event.
const EVENT_FRESH: Duration = Duration::from_millis(1);

/// Why a reconcile failed; `category` is the only error label on metrics and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {service}: {0}", service = .0.service())]
    Observe(#[source] ServiceError),
    #[error("changing {service}: {0}", service = .0.service())]
    Act(#[source] ServiceError),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Observe(_) => "observe",
            Self::Act(_) => "act",
            Self::Status(_) => "status",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Observe(e) | Self::Act(e) => e.retry_after(),
            Self::Status(_) => None,
        }
    }
}

/// Runs the controller of kind `K` over `api` until `shutdown` resolves; `store` is the
/// reflector the context may also read; `wake` names objects to look at now (their facts
/// changed), beside the watch and the resync.
pub async fn run<K: Kind>(
    api: Api<K>,
    ctx: Arc<K::Context>,
    store: (Store<Decoded<K>>, Writer<Decoded<K>>),
    wake: impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<Decoded<K>>> + Send + 'static,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = store;
    let shared = K::shared(&ctx);
    let stream = super::trigger(
        api,
        writer,
        shared.metrics.clone(),
        K::KIND,
        shared.shards.clone(),
    );
    let guard = Arc::new(Guard::new(
        K::KIND,
        shared.client.clone(),
        (shared.metrics.clone(), shared.recorder.clone()),
        reader.clone(),
        shared.tenancy.clone(),
        shared.timing.resync,
    ));
    let (sweep, every) = (guard.sweep.clone(), shared.timing.settle);
    let controller = Controller::for_stream(stream, reader.clone())
        .reconcile_on(wake)
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            move |object, ctx| {
                let guard = guard.clone();
                async move {
                    // A shard handed over (or lost) since the object was queued: another
                    // replica acts on it now.
                    let Some(_in_shard) = K::shared(&ctx).shards.enter(object.as_ref()) else {
                        return Ok(Action::await_change());
                    };
                    let backoff = K::shared(&ctx).backoff;
                    guard::reconcile(&guard, backoff, &object, |o| reconcile::<K>(o, ctx.clone())).await
                }
            },
            error_policy::<K>,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile failed");
            }
        });
    super::with_sweeps(controller, sweep, reader, every).await;
}

pub fn error_policy<K: Kind>(object: Arc<Decoded<K>>, error: &Error, ctx: Arc<K::Context>) -> Action {
    let shared = K::shared(&ctx);
    shared
        .metrics
        .reconcile_errors
        .with_label_values(&[K::KIND, error.category()])
        .inc();
    let key = super::object_key(object.as_ref());
    if let Error::Status(e) = error
        && is_conflict(e)
    {
        // Changed since read (by a person, or twice by us before the watch caught up):
        // look again soon, with what is stored.
        tracing::debug!(object = %key, "status changed since read; looking again");
        return Action::requeue(shared.timing.settle);
    }
    let delay = error.retry_after().unwrap_or_else(|| shared.backoff.delay(&key));
    tracing::warn!(object = %key, category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// An action's Event, the request ids of the calls it made, and when it ended.
type Taken = (Event, Vec<String>, Timestamp);

/// The evidence of one reconcile, in the order things happened: drift found, actions, drift
/// resolved; and the object's attestation, on its first look of the day.
fn keep_evidence<K: Kind>(
    object: &K,
    ctx: &K::Context,
    seen_at: Timestamp,
    (transitions, taken): (&events::Transitions, &[Taken]),
    status: &K::Status,
) {
    let evidence = K::shared(ctx).evidence;
    let who = || Some(evidence_ref(object));
    for event in &transitions.drifted {
        evidence.record_at(seen_at, who(), crate::evidence::transition(event, false));
    }
    for (event, request_ids, at) in taken {
        evidence.record_at(*at, who(), crate::evidence::action(event, request_ids.clone()));
    }
    for event in &transitions.resolved {
        evidence.record(who(), crate::evidence::transition(event, true));
    }
    attest(object, ctx, status, false);
}

/// The object's attestation, when it has none today.
fn attest<K: Kind>(object: &K, ctx: &K::Context, status: &K::Status, suspended: bool) {
    let evidence = K::shared(ctx).evidence;
    let who = evidence_ref(object);
    if !evidence.attest_due(&who, Timestamp::now()) {
        return;
    }
    let mode = if object.audit(ctx) { "Audit" } else { "Enforce" };
    evidence.record(
        Some(who),
        crate::evidence::attestation(object, status.conditions(), status, mode, suspended),
    );
}

fn evidence_ref<K: Kind>(object: &K) -> crate::evidence::ObjectRef {
    crate::evidence::ObjectRef {
        kind: K::KIND.to_string(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        uid: object.meta().uid.clone(),
        generation: object.meta().generation,
    }
}

/// How the actions ended.
enum Outcome {
    /// All done, or stopped on something only a human can fix (in `Progress::stalled`).
    Done,
    /// Refused: maybe a race lost to another replica; look again with backoff.
    Refused,
    /// A transient failure: retry with backoff.
    Retry(ServiceError),
}

pub async fn reconcile<K: Kind>(object: Arc<K>, ctx: Arc<K::Context>) -> Result<Action, Error> {
    let shared = K::shared(&ctx);
    shared.metrics.reconciles.with_label_values(&[K::KIND]).inc();
    let _timer = shared
        .metrics
        .reconcile_duration
        .with_label_values(&[K::KIND])
        .start_timer();
    let old = object.status().cloned().unwrap_or_default();
    let request = requests::requested_at(object.meta());
    let key = super::object_key(object.as_ref());
    // An event said it changed: read afresh, and time the detection.
    let urgent = shared.urgent.take(&key);
    if object.suspended() {
        return suspended(object.as_ref(), &ctx, &old, request).await;
    }
    // Asked for (after a fix by hand): nothing cached answers. Woken by an event: what
    // moves (an instance, a replication, a repository) is read afresh, and whatever else the
    // event changed the router dropped from the caches. While a change settles, read
    // fresher facts; otherwise once per resync.
    let fresh = if request.is_some() && request.as_deref() != old.last_handled_reconcile_at() {
        Duration::ZERO
    } else if urgent.is_some() {
        EVENT_FRESH
    } else if is_reconciling(old.conditions()) {
        shared.timing.settle
    } else {
        shared.timing.resync
    };
    let audit = object.audit(&ctx);

    let obs = match object.observe(&ctx, fresh).await {
        Ok(obs) => obs,
        Err(e) => return unobserved(object.as_ref(), &shared, &old, request, e).await,
    };
    // When the drift this look finds was seen (evidence).
    let seen_at = Timestamp::now();
    let findings = audited(audit, object.evaluate(&ctx, &obs));
    let plan = object.plan(&ctx, &obs, &findings);
    let (mut progress, taken, outcome) = act(object.as_ref(), &ctx, &obs, &plan.actions).await;
    progress.holding = plan.holding.clone();
    // Look again, so that status shows the state after this reconcile's changes.
    let (looked_again, after) = if plan.actions.is_empty() {
        (None, findings.clone())
    } else {
        object.forget(&ctx);
        let again = object.observe(&ctx, fresh).await.map_err(Error::Observe)?;
        let after = audited(audit, object.evaluate(&ctx, &again));
        (Some(again), after)
    };
    let now = looked_again.as_ref().unwrap_or(&obs);
    // What was found before acting (for the drift events and Slack), and the new status.
    let statuses = |old: &K::Status| {
        let found = object.build_status(old, &obs, &findings, &Progress::default());
        let mut status = object.build_status(old, now, &after, &progress);
        if let Some(request) = &request {
            status.set_last_handled_reconcile_at(request.clone());
        }
        (found, status)
    };
    let (found, status) = statuses(&old);
    let (old, found, status, change) =
        match record(object.as_ref(), &shared, &old, status, (&findings, &after)).await {
            Ok((status, change)) => (old, found, status, change),
            // The cached object is older than what is stored (the watch has not delivered the
            // last write yet): decide against what is stored, or a message would be repeated.
            Err(Error::Status(e)) if is_conflict(&e) => {
                let stored = stored(object.as_ref(), shared.client).await?;
                let old = stored.status().cloned().unwrap_or_default();
                let (found, status) = statuses(&old);
                let (status, change) = record(&stored, &shared, &old, status, (&findings, &after)).await?;
                (old, found, status, change)
            }
            Err(e) => return Err(e),
        };
    announce(
        object.as_ref(),
        &ctx,
        (&old, found.conditions(), &status),
        change,
        (&findings, &after),
        now,
        (taken, seen_at),
    )
    .await;
    object.after(&ctx).await;
    if let Some((source, at)) = urgent {
        let took = Timestamp::now().duration_since(at).as_secs_f64().max(0.0);
        shared
            .metrics
            .event_detection
            .with_label_values(&[source])
            .observe(took);
    }

    match outcome {
        Outcome::Retry(e) => Err(Error::Act(e)),
        Outcome::Refused => Ok(Action::requeue(shared.backoff.delay(&key))),
        Outcome::Done => {
            shared.backoff.reset(&key);
            // A change just made is looked at again soon, even when something else stalls.
            let busy = is_reconciling(status.conditions()) || !progress.working.is_empty();
            Ok(Action::requeue(if busy {
                shared.timing.settle
            } else {
                shared.timing.resync
            }))
        }
    }
}

/// In audit, drift nobody will fix says so (`AuditOnly`), whichever side asked for audit.
fn audited(audit: bool, mut findings: Vec<Finding>) -> Vec<Finding> {
    if audit {
        for f in &mut findings {
            if f.verdict == Verdict::Drift && f.reason == Reason::DriftDetected {
                f.reason = Reason::AuditOnly;
            }
        }
    }
    findings
}

/// The old status, now describing `generation` and the request handled.
fn restamped<S: KindStatus>(old: &S, generation: Option<i64>, request: Option<String>) -> S {
    let mut status = old.clone();
    status.set_observed_generation(generation);
    if let Some(request) = request {
        status.set_last_handled_reconcile_at(request);
    }
    status
}

/// `spec.suspend`: nothing is read or changed; status says so and keeps the last look.
async fn suspended<K: Kind>(
    object: &K,
    ctx: &K::Context,
    old: &K::Status,
    request: Option<String>,
) -> Result<Action, Error> {
    let shared = &K::shared(ctx);
    let generation = object.meta().generation;
    let mut status = restamped(old, generation, request);
    apply_suspended(status.conditions_mut(), generation, Timestamp::now());
    write_status(object, shared, old, &status).await?;
    if shared.evidence.is_on() {
        attest(object, ctx, &status, true);
    }
    shared.backoff.reset(&super::object_key(object));
    Ok(Action::requeue(shared.timing.resync))
}

/// Carries out the plan in order and stops at the first failure, saying what it means.
async fn act<K: Kind>(
    object: &K,
    ctx: &K::Context,
    obs: &K::Observation,
    actions: &[K::Action],
) -> (Progress, Vec<Taken>, Outcome) {
    let mut progress = Progress::default();
    let mut taken = Vec::new();
    let mut scratch = K::Scratch::default();
    for action in actions {
        let description = object.describe(action);
        tracing::info!(object = %super::object_key(object), action = %description, "enforcing");
        let (outcome, request_ids) =
            crate::evidence::request_ids::collect(object.perform(ctx, obs, action, &mut scratch)).await;
        let e = match outcome {
            Ok(note) => {
                let done = note.unwrap_or(description);
                progress.working.push(done.clone());
                taken.push((
                    events::action(K::reason(action), done, false),
                    request_ids,
                    Timestamp::now(),
                ));
                continue;
            }
            Err(e) => e,
        };
        taken.push((
            events::action(K::reason(action), format!("{description}: failed: {e}"), true),
            request_ids,
            Timestamp::now(),
        ));
        let outcome = match e.failure() {
            Failure::Transient => {
                // Retried with backoff: still under way, not something a person must fix.
                progress
                    .working
                    .push(format!("{description}: failed, retrying: {e}"));
                Outcome::Retry(e)
            }
            Failure::AccessDenied(message) => {
                progress.stalled = Some((Reason::AccessDenied, message));
                Outcome::Done
            }
            Failure::QuotaExceeded => {
                progress.stalled = Some((Reason::QuotaExceeded, object.quota_message(&e)));
                Outcome::Done
            }
            Failure::Conflict => {
                progress.working.push(e.to_string());
                Outcome::Done
            }
            Failure::Unreachable | Failure::Refused => {
                progress.stalled = Some((Reason::ApiError, e.refused_message()));
                Outcome::Refused
            }
        };
        return (progress, taken, outcome);
    }
    (progress, taken, Outcome::Done)
}

/// Decides what drift is now announced and writes the status (only when it changed).
async fn record<K: Kind>(
    object: &K,
    shared: &Shared<'_>,
    old: &K::Status,
    mut status: K::Status,
    (before, after): (&[Finding], &[Finding]),
) -> Result<(K::Status, Option<notify::Change>), Error> {
    let notified = notify::parse_notified(old.notified_drift());
    let (change, notified) = notify::decide(&notified, before, after);
    status.set_notified_drift(notify::store_notified(&notified));
    write_status(object, shared, old, &status).await?;
    Ok((status, change))
}

/// Once the status is written: tells Slack about a change of drift, records the metrics and
/// publishes the Events in the order things happened: drift found, actions, drift resolved.
async fn announce<K: Kind>(
    object: &K,
    ctx: &K::Context,
    (old, found, status): (&K::Status, &[Condition], &K::Status),
    change: Option<notify::Change>,
    (before, after): (&[Finding], &[Finding]),
    obs: &K::Observation,
    (taken, seen_at): (Vec<Taken>, Timestamp),
) {
    let shared = K::shared(ctx);
    let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
    if let Some(change) = change {
        shared.notifier.notify(notify::notification(
            K::KIND,
            &namespace,
            &name,
            &change,
            &[after, before],
            |check| object.desired(ctx, check),
            object.link(obs),
        ));
    }
    shared
        .metrics
        .record_object(K::KIND, &namespace, &name, after, &object.ages(obs));
    let transitions = events::transitions(old.conditions(), found, status.conditions(), K::CHECKS);
    if shared.evidence.is_on() {
        keep_evidence(object, ctx, seen_at, (&transitions, &taken), status);
    }
    let published = transitions.around(taken.into_iter().map(|(event, ..)| event).collect());
    events::publish(shared.recorder, &object.object_ref(&()), published).await;
}

/// The facts could not be read. Access denied stalls (fixed outside the cluster: looked at
/// again at the next resync); otherwise every check turns Unknown, never a stale True, and
/// the object is retried with backoff, stalled when its region's endpoint does not resolve.
async fn unobserved<K: Kind>(
    object: &K,
    shared: &Shared<'_>,
    old: &K::Status,
    request: Option<String>,
    e: ServiceError,
) -> Result<Action, Error> {
    let generation = object.meta().generation;
    let mut status = restamped(old, generation, request);
    let (reason, stalled, message) = match e.failure() {
        Failure::AccessDenied(message) => {
            apply_stalled(
                status.conditions_mut(),
                Reason::AccessDenied,
                &message,
                generation,
                Timestamp::now(),
            );
            write_status(object, shared, old, &status).await?;
            shared.backoff.reset(&super::object_key(object));
            return Ok(Action::requeue(shared.timing.resync));
        }
        Failure::Unreachable => (
            Reason::RegionUnreachable,
            true,
            format!(
                "cannot reach AWS in {} (does the region exist, and is it enabled for the account?): {e}",
                object.regions()
            ),
        ),
        _ => (
            Reason::ObservationFailed,
            false,
            format!("cannot read {}: {e}; retrying", e.service()),
        ),
    };
    apply_unobserved(
        status.conditions_mut(),
        K::CHECKS,
        reason,
        &message,
        stalled,
        generation,
        Timestamp::now(),
    );
    write_status(object, shared, old, &status).await?;
    Err(Error::Observe(e))
}

/// The object as stored now, not as the cache has it.
async fn stored<K: Kind>(object: &K, client: &kube::Client) -> Result<K, Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
    api.get_status(&object.name_any()).await.map_err(Error::Status)
}

/// The write was refused because the object changed since it was read.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

/// Writes the status, only when it differs from what was read.
async fn write_status<K: Kind>(
    object: &K,
    shared: &Shared<'_>,
    old: &K::Status,
    status: &K::Status,
) -> Result<(), Error> {
    if object.status().is_some() && old == status {
        return Ok(());
    }
    shared.metrics.status_writes.with_label_values(&[K::KIND]).inc();
    patch_status(shared.client, object, status)
        .await
        .map_err(Error::Status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DatabaseCheck;

    #[test]
    fn in_audit_drift_says_audit_only_and_nothing_else_changes() {
        let findings = vec![
            Finding::new(
                DatabaseCheck::RetentionCompliant,
                Verdict::Drift,
                Reason::DriftDetected,
                "r",
            ),
            Finding::new(DatabaseCheck::BackupsFresh, Verdict::Drift, Reason::Stale, "s"),
            Finding::new(
                DatabaseCheck::ReplicaKeyCompliant,
                Verdict::Blocked,
                Reason::KeyNotUsable,
                "k",
            ),
        ];
        let reasons = |audit| -> Vec<Reason> {
            audited(audit, findings.clone())
                .iter()
                .map(|f| f.reason)
                .collect()
        };
        assert_eq!(
            reasons(true),
            [Reason::AuditOnly, Reason::Stale, Reason::KeyNotUsable]
        );
        assert_eq!(
            reasons(false),
            [Reason::DriftDetected, Reason::Stale, Reason::KeyNotUsable]
        );
    }
}
