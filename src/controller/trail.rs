//! The `RetainedAuditTrail` kind: how a CloudTrail trail, its bucket and its log group are
//! observed, fixed and shown. The reconcile itself is `pipeline`'s.

use std::{sync::Arc, time::Duration};

use kube::{
    Api,
    runtime::reflector::{self, Store},
};

use super::{
    Decoded,
    context::{Backoff, Timing},
    pipeline::{self, Kind, Shared},
};
use crate::{
    api::{
        ConditionType, Mode, Reason, RetainedAuditTrail, RetainedAuditTrailStatus,
        trail::{ObservedRetention, ObservedTrail},
    },
    aws::{Scope, cloudtrail::AuditTrails},
    external::ServiceError,
    observe::{self, BucketRegions},
    policy::{
        Finding, Plan, Tense, days,
        trail::{TrailAction, TrailObservation, TrailPolicy, evaluate, plan, shortest_expiration},
    },
    report::{
        recorder::Recorder,
        status::{Progress, apply_findings},
    },
};

/// What every trail reconcile shares.
pub struct TrailContext {
    pub client: kube::Client,
    pub aws: Arc<dyn AuditTrails>,
    pub regions: BucketRegions,
    pub policy: TrailPolicy,
    pub timing: Timing,
    pub recorder: Recorder,
    pub backoff: Backoff,
    pub store: Store<Decoded<RetainedAuditTrail>>,
    pub metrics: Arc<crate::report::metrics::Metrics>,
    pub notifier: Arc<dyn crate::report::slack::Notifier>,
    pub tenancy: Arc<crate::tenancy::Tenancy>,
    pub shards: Arc<super::shards::Ownership>,
    /// The objects change events woke.
    pub wakes: Arc<crate::events::route::Wakes<RetainedAuditTrail>>,
    /// The evidence log (off without an evidence bucket).
    pub evidence: Arc<crate::evidence::EvidenceLog>,
}

/// The reflector store the trail controller and its context share.
pub fn store() -> (
    Store<Decoded<RetainedAuditTrail>>,
    reflector::store::Writer<Decoded<RetainedAuditTrail>>,
) {
    reflector::store()
}

/// Runs the controller for `api` until `shutdown` resolves. `writer` feeds `ctx.store`.
pub async fn run(
    api: Api<RetainedAuditTrail>,
    ctx: Arc<TrailContext>,
    writer: reflector::store::Writer<Decoded<RetainedAuditTrail>>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let reader = ctx.store.clone();
    ctx.wakes.set_store(reader.clone());
    let wake = ctx.wakes.stream();
    pipeline::run(api, ctx, (reader, writer), wake, concurrency, shutdown).await;
}

pipeline::kind_status!(RetainedAuditTrailStatus);

#[async_trait::async_trait]
impl Kind for RetainedAuditTrail {
    const KIND: &'static str = "RetainedAuditTrail";
    const CHECKS: &'static [ConditionType] = &ConditionType::TRAIL_CHECKS;
    type Context = TrailContext;
    type Status = RetainedAuditTrailStatus;
    type Observation = TrailObservation;
    type Action = TrailAction;
    type Scratch = ();

    fn shared(ctx: &TrailContext) -> Shared<'_> {
        pipeline::shared_of!(ctx)
    }

    fn status(&self) -> Option<&RetainedAuditTrailStatus> {
        self.status.as_ref()
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn audit(&self, ctx: &TrailContext) -> bool {
        self.spec.mode == Mode::Audit || ctx.policy.audit_only
    }

    async fn observe(&self, ctx: &TrailContext, _fresh: Duration) -> Result<TrailObservation, ServiceError> {
        // A few calls per trail, and few trails: every look reads afresh.
        observe::trail(&self.spec, ctx.aws.as_ref(), &ctx.regions).await
    }

    fn evaluate(&self, ctx: &TrailContext, obs: &TrailObservation) -> Vec<Finding> {
        evaluate(&self.spec, obs, &ctx.policy)
    }

    fn plan(&self, ctx: &TrailContext, obs: &TrailObservation, findings: &[Finding]) -> Plan<TrailAction> {
        Plan {
            actions: plan(&self.spec, obs, findings, &ctx.policy),
            holding: None,
        }
    }

    fn describe(&self, action: &TrailAction) -> String {
        action.describe(&self.spec, Tense::Done)
    }

    fn reason(action: &TrailAction) -> Reason {
        match action {
            TrailAction::StartLogging => Reason::LoggingStarted,
            TrailAction::UpdateTrail => Reason::TrailUpdated,
            TrailAction::RaiseLifecycle { .. } => Reason::LifecycleRaised,
            TrailAction::RaiseLogRetention { .. } => Reason::LogRetentionRaised,
        }
    }

    async fn perform(
        &self,
        ctx: &TrailContext,
        obs: &TrailObservation,
        action: &TrailAction,
        _: &mut (),
    ) -> Result<Option<String>, ServiceError> {
        let role = self.spec.trail.role_arn.as_deref();
        let home = Scope::new(role, &self.spec.trail.region);
        let arn = obs
            .trail
            .as_ref()
            .map_or(self.spec.trail.name.as_str(), |t| t.arn.as_str());
        match action {
            TrailAction::StartLogging => ctx.aws.start_logging(&home, arn).await,
            TrailAction::UpdateTrail => ctx.aws.update_trail(&home, arn).await,
            TrailAction::RaiseLifecycle {
                bucket,
                region,
                rules,
            } => {
                ctx.aws
                    .raise_lifecycle(&Scope::new(role, region), bucket, rules)
                    .await
            }
            TrailAction::RaiseLogRetention { name, region, days } => {
                ctx.aws
                    .raise_log_retention(&Scope::new(role, region), name, *days)
                    .await
            }
        }
        .map_err(ServiceError::Aws)?;
        Ok(None)
    }

    fn build_status(
        &self,
        old: &RetainedAuditTrailStatus,
        obs: &TrailObservation,
        findings: &[Finding],
        progress: &Progress,
    ) -> RetainedAuditTrailStatus {
        let generation = self.metadata.generation;
        let mut status = old.clone();
        status.observed_generation = generation;
        apply_findings(&mut status.conditions, findings, progress, generation, obs.now);
        status.trail = obs.trail.as_ref().map(|t| ObservedTrail {
            arn: Some(t.arn.clone()),
            logging: t.logging,
            multi_region: t.multi_region,
            log_file_validation: t.log_file_validation,
            organization: t.organization,
            bucket: Some(t.bucket.clone()),
            logs_prefix: Some(t.logs_prefix()),
            log_group: t.log_group().map(|(name, _)| name),
        });
        let kept = |d: Option<i32>| d.map_or_else(|| "never expire".to_string(), days);
        status.retention = obs.trail.as_ref().map(|t| {
            let bucket = obs.bucket.as_ref().and_then(|b| b.as_ref().ok());
            let group = obs.log_group.as_ref().and_then(|g| g.as_ref().ok());
            ObservedRetention {
                bucket: bucket.map(|b| kept(shortest_expiration(b, &t.logs_prefix()))),
                versioning: bucket.map(|b| b.versioning.as_str().to_string()),
                object_lock: bucket
                    .and_then(|b| b.object_lock.as_ref())
                    .map(|(mode, d)| format!("{mode} {}", days(*d))),
                log_group: group.map(|g| kept(g.retention_days)),
            }
        });
        status
    }

    fn desired(&self, ctx: &TrailContext, check: ConditionType) -> String {
        crate::policy::trail::desired(check, &self.spec, &ctx.policy)
    }

    fn link(&self, obs: &TrailObservation) -> Option<(String, String)> {
        let region = &self.spec.trail.region;
        let name = obs.trail.as_ref().map_or(self.spec.trail.trail_name(), |t| {
            t.arn.rsplit('/').next().unwrap_or_default()
        });
        Some((
            "trail".to_string(),
            format!(
                "https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/trails/{name}"
            ),
        ))
    }

    fn ages(&self, obs: &TrailObservation) -> Vec<(&'static str, Option<Duration>)> {
        let delivered = obs
            .trail
            .as_ref()
            .and_then(|t| t.latest_delivery)
            .map(|t| obs.now.duration_since(t).unsigned_abs());
        vec![("cloudtrail", delivered)]
    }

    fn regions(&self) -> String {
        self.spec.trail.region.clone()
    }
}
