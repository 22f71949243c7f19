//! The `BackedUpRepository` kind: how a repository, its workflow and its S3 backups are
//! observed, fixed and shown. The reconcile itself is `pipeline`'s.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    runtime::{
        events::Recorder,
        reflector::{self, Store},
    },
};

use super::{
    Decoded,
    admission::Claimant,
    context::{Backoff, Timing},
    pipeline::{self, Kind, ServiceError, Shared},
};
use crate::{
    api::{
        BackedUpRepository, BackedUpRepositoryStatus, ConditionType, Reason,
        repository::{ObservedBackup, ObservedRun, ObservedWorkflow},
    },
    aws::{Scope, inventory::BucketInventory},
    github::{FileChange, GitHub, inventory::RepoInventory},
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
    pipeline::run(api, ctx, (reader, writer), concurrency, shutdown).await;
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
        evaluate(&self.spec, obs, &ctx.policy)
    }

    fn plan(&self, ctx: &RepoContext, obs: &RepositoryObservation, findings: &[Finding]) -> Plan<RepoAction> {
        Plan {
            actions: plan(&self.spec, obs, findings, &ctx.policy),
            holding: None,
        }
    }

    fn describe(&self, action: &RepoAction) -> String {
        action.describe(&self.spec)
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
        crate::policy::repository::desired(check, &self.spec, &ctx.policy)
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
    observe_with(
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

/// Observe with explicit sources (the controller's, or `backup-warden check`'s). `all` lists
/// every (repository, workflow path) a sweep should read.
pub(crate) async fn observe_with(
    repo: &BackedUpRepository,
    repos: &RepoInventory,
    github: &dyn GitHub,
    buckets: &BucketInventory,
    all: impl FnOnce() -> Vec<(String, String)>,
    resync: Duration,
    fresh: Duration,
) -> Result<RepositoryObservation, ServiceError> {
    let spec = &repo.spec;
    let name = &spec.repository;
    let path = &spec.workflow.path;
    let facts = repos
        .get(name, path, fresh, resync, all)
        .await
        .map_err(ServiceError::GitHub)?;
    let mut obs = RepositoryObservation {
        repo: facts.clone(),
        workflow: None,
        last_run: None,
        pull_request: None,
        newest_backup: None,
        lifecycle: None,
        now: Timestamp::now(),
    };
    let Some(facts) = facts.filter(|f| !f.archived) else {
        return Ok(obs);
    };
    let current = facts.file.as_deref().is_some_and(|text| {
        workflow::check(text, &spec.reusable_workflow(), &spec.workflow.allowed_refs).is_ok()
    });
    // Only ask what the answer can change: runs need a registered workflow, a pull request
    // matters only while the file is missing or outdated.
    if facts.file.is_some() {
        obs.workflow = github.workflow(name, path).await.map_err(ServiceError::GitHub)?;
        if obs.workflow.is_some() {
            obs.last_run = github
                .newest_completed_run(name, path)
                .await
                .map_err(ServiceError::GitHub)?;
        }
    }
    if !current {
        obs.pull_request = github
            .open_pull_request(name)
            .await
            .map_err(ServiceError::GitHub)?;
    }
    let scope = Scope::new(None, &spec.storage.region);
    obs.lifecycle = buckets
        .lifecycle(&scope, &spec.storage.bucket, resync)
        .await
        .map_err(ServiceError::Aws)?;
    if obs.lifecycle.is_some() {
        obs.newest_backup = buckets
            .newest_object(&scope, &spec.storage.bucket, &spec.storage_prefix(), fresh)
            .await
            .map_err(ServiceError::Aws)?;
    }
    Ok(obs)
}

fn change(repo: &BackedUpRepository, obs: &RepositoryObservation, content: &str) -> FileChange {
    let spec = &repo.spec;
    let prefix = spec.storage_prefix();
    FileChange {
        path: spec.workflow.path.clone(),
        content: content.to_string(),
        base_branch: obs
            .repo
            .as_ref()
            .map(|r| r.default_branch.clone())
            .unwrap_or_else(|| "main".into()),
        commit_message: format!("Add the daily backup workflow ({})", spec.workflow.path),
        title: "Back this repository up daily (backup-warden)".to_string(),
        body: format!(
            "The company backup policy says every repository is backed up to S3 once a day.\n\n\
             This adds `{path}`, which calls the shared reusable workflow `{uses}` on the schedule `{cron}` (UTC). \
             Backups land in `s3://{bucket}/{prefix}` and are kept {days} days.\n\n\
             Opened by backup-warden for the BackedUpRepository `{ns}/{name}`; change that resource, not this file. \
             Merging this pull request makes the repository compliant.",
            path = spec.workflow.path,
            uses = spec.reusable_workflow(),
            cron = spec.workflow.schedule,
            bucket = spec.storage.bucket,
            days = spec.storage.retention_days,
            ns = repo.namespace().unwrap_or_default(),
            name = repo.name_any(),
        ),
    }
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
                .propose_file(name, &change(repo, obs, content))
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(format!("pull request {} proposes {}", pr.url, spec.workflow.path))
        }
        RepoAction::CommitWorkflow { content, replacing } => {
            ctx.github
                .commit_file(name, &change(repo, obs, content), replacing.as_deref())
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(action.describe(spec))
        }
        RepoAction::EnableWorkflow { id } => {
            ctx.github
                .enable_workflow(name, *id)
                .await
                .map_err(ServiceError::GitHub)?;
            Ok(action.describe(spec))
        }
        RepoAction::AddLifecycleRule { id, prefix, days } => {
            let scope = Scope::new(None, &spec.storage.region);
            ctx.buckets
                .add_expiration_rule(&scope, &spec.storage.bucket, id, prefix, *days)
                .await
                .map_err(ServiceError::Aws)?;
            Ok(action.describe(spec))
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
    status.workflow = obs.repo.as_ref().map(|r| ObservedWorkflow {
        present: r.file.is_some(),
        state: obs.workflow.as_ref().map(|w| w.state.clone()),
        pull_request_url: obs.pull_request.as_ref().map(|p| p.url.clone()),
        last_run: obs.last_run.as_ref().map(|run| ObservedRun {
            url: Some(run.url.clone()),
            conclusion: Some(run.conclusion.clone()),
            started_at: Some(Time(run.started_at)),
        }),
    });
    status.latest_backup = obs.newest_backup.as_ref().map(|b| ObservedBackup {
        key: Some(b.key.clone()),
        last_modified: Some(Time(b.last_modified)),
    });
    status
}
