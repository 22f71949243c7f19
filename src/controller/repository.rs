//! The `BackedUpRepository` kind: how a repository, its workflow and its S3 backups are
//! observed, fixed and shown. The reconcile itself is `pipeline`'s.

use std::{sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    runtime::reflector::{self, Store},
};

use super::{
    Decoded,
    admission::Claimant,
    context::{Backoff, Timing},
    pipeline::{self, Kind, Shared},
};
use crate::report::recorder::Recorder;
use crate::{
    api::{
        BackedUpRepository, BackedUpRepositoryStatus, ConditionType, Mode, Reason,
        conditions::whole_seconds,
        repository::{ObservedBackup, ObservedRun, ObservedWorkflow},
    },
    aws::{Scope, inventory::BucketInventory},
    external::ServiceError,
    github::{FileChange, GitHub, inventory::RepoInventory},
    observe,
    policy::{
        Finding, Plan,
        repository::{RepoAction, RepositoryObservation, RepositoryPolicy, evaluate, plan},
    },
    report::status::{Progress, apply_findings},
    workflow,
};

/// What every repository reconcile shares.
pub struct RepoContext {
    pub client: kube::Client,
    pub github: Arc<dyn GitHub>,
    pub repos: RepoInventory,
    pub buckets: BucketInventory,
    pub policy: RepositoryPolicy,
    pub timing: Timing,
    pub recorder: Recorder,
    pub backoff: Backoff,
    /// Every BackedUpRepository the controller knows: the sweep reads them all at once.
    pub store: Store<Decoded<BackedUpRepository>>,
    pub metrics: Arc<crate::report::metrics::Metrics>,
    /// Where drift is announced (Slack, or nowhere).
    pub notifier: Arc<dyn crate::report::slack::Notifier>,
    /// Which repositories each namespace may have managed.
    pub tenancy: Arc<crate::tenancy::Tenancy>,
    /// The shards this replica acts on (all, unsharded).
    pub shards: Arc<super::shards::Ownership>,
    /// The objects change events woke.
    pub wakes: Arc<crate::events::route::Wakes<BackedUpRepository>>,
    /// The evidence log (off without an evidence bucket).
    pub evidence: Arc<crate::evidence::EvidenceLog>,
}

/// The reflector store the repository controller and its context share.
pub fn store() -> (
    Store<Decoded<BackedUpRepository>>,
    reflector::store::Writer<Decoded<BackedUpRepository>>,
) {
    reflector::store()
}

/// Runs the controller for `api` until `shutdown` resolves. `writer` feeds `ctx.store`.
pub async fn run(
    api: Api<BackedUpRepository>,
    ctx: Arc<RepoContext>,
    writer: reflector::store::Writer<Decoded<BackedUpRepository>>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let reader = ctx.store.clone();
    ctx.wakes.set_store(reader.clone());
    let wake = ctx.wakes.stream();
    pipeline::run(api, ctx, (reader, writer), wake, concurrency, shutdown).await;
}

pipeline::kind_status!(BackedUpRepositoryStatus);

#[async_trait::async_trait]
impl Kind for BackedUpRepository {
    const KIND: &'static str = "BackedUpRepository";
    const CHECKS: &'static [ConditionType] = &ConditionType::REPOSITORY_CHECKS;
    type Context = RepoContext;
    type Status = BackedUpRepositoryStatus;
    type Observation = RepositoryObservation;
    type Action = RepoAction;
    type Scratch = ();

    fn shared(ctx: &RepoContext) -> Shared<'_> {
        pipeline::shared_of!(ctx)
    }

    fn status(&self) -> Option<&BackedUpRepositoryStatus> {
        self.status.as_ref()
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn audit(&self, ctx: &RepoContext) -> bool {
        self.spec.mode == Mode::Audit || ctx.policy.audit_only
    }

    async fn observe(
        &self,
        ctx: &RepoContext,
        fresh: Duration,
    ) -> Result<RepositoryObservation, ServiceError> {
        observe(self, ctx, fresh).await
    }

    /// The actions changed the repository: read it afresh.
    fn forget(&self, ctx: &RepoContext) {
        ctx.repos.forget(&self.spec.repository);
    }

    fn evaluate(&self, ctx: &RepoContext, obs: &RepositoryObservation) -> Vec<Finding> {
        let mut findings = evaluate(&self.spec, obs, &ctx.policy);
        let every = self.spec.restore_drill.as_ref().map(|d| &d.every);
        crate::drill::add_finding(&mut findings, self, every, self.audit(ctx), obs.now);
        findings
    }

    fn plan(&self, ctx: &RepoContext, obs: &RepositoryObservation, findings: &[Finding]) -> Plan<RepoAction> {
        Plan {
            actions: plan(&self.spec, obs, findings, &ctx.policy),
            holding: None,
        }
    }

    fn describe(&self, action: &RepoAction) -> String {
        action.describe(&self.spec, crate::policy::Tense::Done)
    }

    fn reason(action: &RepoAction) -> Reason {
        match action {
            RepoAction::ProposeWorkflow { .. } => Reason::PullRequestOpened,
            RepoAction::CommitWorkflow { .. } => Reason::WorkflowCommitted,
            RepoAction::EnableWorkflow { .. } => Reason::WorkflowEnabled,
            RepoAction::AddLifecycleRule { .. } => Reason::LifecycleRuleAdded,
        }
    }

    async fn perform(
        &self,
        ctx: &RepoContext,
        obs: &RepositoryObservation,
        action: &RepoAction,
        _: &mut (),
    ) -> Result<Option<String>, ServiceError> {
        act(self, ctx, obs, action).await.map(Some)
    }

    fn build_status(
        &self,
        old: &BackedUpRepositoryStatus,
        obs: &RepositoryObservation,
        findings: &[Finding],
        progress: &Progress,
    ) -> BackedUpRepositoryStatus {
        build_status(self, old, obs, findings, progress)
    }

    fn desired(&self, ctx: &RepoContext, check: ConditionType) -> String {
        match (check, &self.spec.restore_drill) {
            (ConditionType::RestoreVerified, Some(drill)) => crate::drill::desired(&drill.every),
            _ => crate::policy::repository::desired(check, &self.spec, &ctx.policy),
        }
    }

    fn link(&self, obs: &RepositoryObservation) -> Option<(String, String)> {
        Some(match (&obs.pull_request, &obs.last_run) {
            (Some(pr), _) => ("pull request".to_string(), pr.url.clone()),
            (None, Some(run)) if run.conclusion != "success" => {
                (format!("{} run", run.conclusion), run.url.clone())
            }
            _ => (
                "repository".to_string(),
                format!("https://github.com/{}", self.spec.repository),
            ),
        })
    }

    fn ages(&self, obs: &RepositoryObservation) -> Vec<(&'static str, Option<Duration>)> {
        let s3 = obs
            .newest_backup
            .as_ref()
            .map(|b| obs.now.duration_since(b.last_modified).unsigned_abs());
        vec![("s3", s3)]
    }

    fn regions(&self) -> String {
        self.spec.storage.region.clone()
    }
}

/// Reads the repository (through the sweep), its workflow, runs and pull request, and its
/// S3 backups and bucket lifecycle (cached per bucket).
async fn observe(
    repo: &BackedUpRepository,
    ctx: &RepoContext,
    fresh: Duration,
) -> Result<RepositoryObservation, ServiceError> {
    let all = || {
        ctx.store
            .state()
            .iter()
            .filter_map(|r| r.valid())
            // A repository its namespace may not have is not even read.
            .filter(|r| r.allowed(&ctx.tenancy).is_ok())
            .map(|r| (r.spec.repository.clone(), r.spec.workflow.path.clone()))
            .collect()
    };
    observe::repository(
        repo,
        &ctx.repos,
        ctx.github.as_ref(),
        &ctx.buckets,
        all,
        ctx.timing.resync,
        fresh,
    )
    .await
}

/// The workflow file as a change to the repository (a commit, or a pull request).
fn proposal(repo: &BackedUpRepository, obs: &RepositoryObservation, content: &str) -> FileChange {
    let branch = obs.repo.as_ref().map_or("main", |r| r.default_branch.as_str());
    let object = (repo.namespace().unwrap_or_default(), repo.name_any());
    workflow::proposal(&repo.spec, &object, branch, content)
}

/// Carries out one action; returns what was done, for status and events.
async fn act(
    repo: &BackedUpRepository,
    ctx: &RepoContext,
    obs: &RepositoryObservation,
    action: &RepoAction,
) -> Result<String, ServiceError> {
    let spec = &repo.spec;
    let name = &spec.repository;
    match action {
        RepoAction::ProposeWorkflow { content } => {
            let pr = ctx
                .github
                .propose_file(name, &proposal(repo, obs, content))
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(format!("pull request {} proposes {}", pr.url, spec.workflow.path))
        }
        RepoAction::CommitWorkflow { content, replacing } => {
            ctx.github
                .commit_file(name, &proposal(repo, obs, content), replacing.as_deref())
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(action.describe(spec, crate::policy::Tense::Done))
        }
        RepoAction::EnableWorkflow { id } => {
            ctx.github
                .enable_workflow(name, *id)
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(action.describe(spec, crate::policy::Tense::Done))
        }
        RepoAction::AddLifecycleRule { id, prefix, days } => {
            let scope = Scope::new(None, &spec.storage.region);
            ctx.buckets
                .add_expiration_rule(&scope, &spec.storage.bucket, id, prefix, *days)
                .await
                .map_err(ServiceError::Aws)?;
            Ok(action.describe(spec, crate::policy::Tense::Done))
        }
    }
}

fn build_status(
    repo: &BackedUpRepository,
    old: &BackedUpRepositoryStatus,
    obs: &RepositoryObservation,
    findings: &[Finding],
    progress: &Progress,
) -> BackedUpRepositoryStatus {
    let generation = repo.metadata.generation;
    let mut status = old.clone();
    status.observed_generation = generation;
    apply_findings(&mut status.conditions, findings, progress, generation, obs.now);
    if repo.spec.restore_drill.is_none() {
        crate::drill::drop_condition(&mut status.conditions);
    }
    status.workflow = obs.repo.as_ref().map(|r| ObservedWorkflow {
        present: r.file.is_some(),
        state: obs.workflow.as_ref().map(|w| w.state.clone()),
        pull_request_url: obs.pull_request.as_ref().map(|p| p.url.clone()),
        last_run: obs.last_run.as_ref().map(|run| ObservedRun {
            url: Some(run.url.clone()),
            conclusion: Some(run.conclusion.clone()),
            started_at: Some(Time(whole_seconds(run.started_at))),
        }),
    });
    status.latest_backup = obs.newest_backup.as_ref().map(|b| ObservedBackup {
        key: Some(b.key.clone()),
        last_modified: Some(Time(whole_seconds(b.last_modified))),
    });
    status
}
