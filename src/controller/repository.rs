//! The `BackedUpRepository` reconciler: observe → evaluate → plan → act → report.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::{self, Action},
        events::Recorder,
        reflector::{self, Store},
    },
};

use super::{
    Decoded,
    admission::Claimant,
    context::{Backoff, Timing},
    guard::{self, Guard},
};
use crate::{
    api::{
        BackedUpRepository, BackedUpRepositoryStatus, ConditionType, Reason,
        repository::{ObservedBackup, ObservedRun, ObservedWorkflow},
    },
    aws::{AwsError, AwsErrorKind, Scope, inventory::BucketInventory},
    github::{FileChange, GitHub, GitHubError, GitHubErrorKind, inventory::RepoInventory},
    policy::{
        Finding,
        repository::{RepoAction, RepositoryObservation, RepositoryPolicy, evaluate, plan},
    },
    report::{
        events, notify,
        status::{Progress, apply_findings, apply_stalled, apply_unobserved, is_reconciling, patch_status},
    },
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading GitHub: {0}")]
    GitHub(#[source] GitHubError),
    #[error("reading AWS: {0}")]
    Aws(#[source] AwsError),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Self::GitHub(_) => "github",
            Self::Aws(_) => "aws",
            Self::Status(_) => "status",
        }
    }

    /// A rate limit says when to come back.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::GitHub(e) => e.retry_after,
            _ => None,
        }
    }
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
    let stream = super::trigger(api, writer, ctx.metrics.clone(), KIND);
    let guard = Arc::new(Guard::new(
        KIND,
        ctx.client.clone(),
        (ctx.metrics.clone(), ctx.recorder.clone()),
        ctx.store.clone(),
        ctx.tenancy.clone(),
        ctx.timing.resync,
    ));
    let (sweep, store, every) = (guard.sweep.clone(), ctx.store.clone(), ctx.timing.settle);
    let controller = Controller::for_stream(stream, ctx.store.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            move |object, ctx| {
                let guard = guard.clone();
                async move {
                    guard::reconcile(&guard, &ctx.backoff, &object, |repo| reconcile(repo, ctx.clone())).await
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

pub fn error_policy(repo: Arc<Decoded<BackedUpRepository>>, error: &Error, ctx: Arc<RepoContext>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[KIND, error.category()])
        .inc();
    let delay = error
        .retry_after()
        .unwrap_or_else(|| ctx.backoff.delay(&super::object_key(repo.as_ref())));
    tracing::warn!(object = %super::object_key(repo.as_ref()), category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn denied_message(e: &GitHubError) -> String {
    format!(
        "GitHub refused {} ({}: {}): grant the token or GitHub App contents, pull requests, actions and workflows (write) on the repository",
        e.operation, e.status, e.message
    )
}

const KIND: &str = "BackedUpRepository";

pub async fn reconcile(repo: Arc<BackedUpRepository>, ctx: Arc<RepoContext>) -> Result<Action, Error> {
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[KIND])
        .start_timer();
    let old = repo.status.clone().unwrap_or_default();
    let fresh = if is_reconciling(&old.conditions) {
        ctx.timing.settle
    } else {
        ctx.timing.resync
    };
    let obs = match observe(&repo, &ctx, fresh).await {
        Ok(obs) => obs,
        Err(Error::GitHub(e)) if e.kind == GitHubErrorKind::AccessDenied => {
            report_stalled(&repo, &ctx, &old, Reason::AccessDenied, denied_message(&e)).await?;
            return Ok(Action::requeue(ctx.timing.resync));
        }
        Err(Error::Aws(e)) if e.kind == AwsErrorKind::AccessDenied => {
            let message = e.denied_message();
            report_stalled(&repo, &ctx, &old, Reason::AccessDenied, message).await?;
            return Ok(Action::requeue(ctx.timing.resync));
        }
        Err(e) => {
            let (reason, stalled, message) = match &e {
                Error::Aws(aws) if aws.kind == AwsErrorKind::Unreachable => (
                    Reason::RegionUnreachable,
                    true,
                    format!(
                        "cannot reach AWS in {} (does the region exist, and is it enabled for the account?): {aws}",
                        repo.spec.storage.region
                    ),
                ),
                _ => (Reason::ObservationFailed, false, format!("{e}; retrying")),
            };
            let mut status = old.clone();
            status.observed_generation = repo.metadata.generation;
            apply_unobserved(
                &mut status.conditions,
                &ConditionType::REPOSITORY_CHECKS,
                reason,
                &message,
                stalled,
                repo.metadata.generation,
                Timestamp::now(),
            );
            write_status(&repo, &ctx, &old, &status).await?;
            return Err(e);
        }
    };
    let findings = evaluate(&repo.spec, &obs, &ctx.policy);
    let actions = plan(&repo.spec, &obs, &findings, &ctx.policy);
    let found = build_status(&repo, &old, &obs, &findings, &Progress::default()).conditions;
    let found_findings = findings.clone();

    let mut progress = Progress::default();
    let mut taken = Vec::new();
    let mut failure = None;
    for action in &actions {
        let description = action.describe(&repo.spec);
        tracing::info!(object = %super::object_key(repo.as_ref()), action = %description, "enforcing");
        match act(&repo, &ctx, &obs, action).await {
            Ok(done) => {
                progress.working.push(done.clone());
                taken.push(events::action(reason_of(action), done, false));
            }
            Err(e) => {
                taken.push(events::action(
                    reason_of(action),
                    format!("{description}: failed: {e}"),
                    true,
                ));
                failure = Some(e);
                break;
            }
        }
    }
    let mut retry = None;
    match failure {
        Some(ActError::GitHub(e)) if e.kind == GitHubErrorKind::AccessDenied => {
            progress.stalled = Some((Reason::AccessDenied, denied_message(&e)));
        }
        // Someone changed the file between the check and the write: check again soon.
        Some(ActError::GitHub(e)) if e.kind == GitHubErrorKind::Conflict => {
            progress.working.push(e.message.clone())
        }
        Some(ActError::GitHub(e)) if e.kind == GitHubErrorKind::Transient => retry = Some(Error::GitHub(e)),
        Some(ActError::GitHub(e)) => progress.stalled = Some((Reason::ApiError, e.to_string())),
        Some(ActError::Aws(e)) if e.kind == AwsErrorKind::Transient => retry = Some(Error::Aws(e)),
        Some(ActError::Aws(e)) if e.kind == AwsErrorKind::AccessDenied => {
            progress.stalled = Some((Reason::AccessDenied, e.denied_message()));
        }
        Some(ActError::Aws(e)) => progress.stalled = Some((Reason::ApiError, e.to_string())),
        None => {}
    }

    let (obs, findings) = if actions.is_empty() {
        (obs, findings)
    } else {
        ctx.repos.forget(&repo.spec.repository);
        let obs = observe(&repo, &ctx, ctx.timing.settle).await?;
        let findings = evaluate(&repo.spec, &obs, &ctx.policy);
        (obs, findings)
    };
    let mut status = build_status(&repo, &old, &obs, &findings, &progress);
    let (change, notified) = notify::decide(&old.notified_drift, &found_findings, &findings);
    status.notified_drift = notified;
    write_status(&repo, &ctx, &old, &status).await?;
    if let Some(change) = change {
        let spec = &repo.spec;
        let link = match (&obs.pull_request, &obs.last_run) {
            (Some(pr), _) => ("pull request".to_string(), pr.url.clone()),
            (None, Some(run)) if run.conclusion != "success" => {
                (format!("{} run", run.conclusion), run.url.clone())
            }
            _ => (
                "repository".to_string(),
                format!("https://github.com/{}", spec.repository),
            ),
        };
        let desired = |check: &str| desired_of(check, spec, &ctx.policy);
        ctx.notifier.notify(notify::notification(
            KIND,
            &repo.namespace().unwrap_or_default(),
            &repo.name_any(),
            &change,
            &[&findings, &found_findings],
            desired,
            Some(link),
        ));
    }
    let s3_age = obs
        .newest_backup
        .as_ref()
        .map(|b| obs.now.duration_since(b.last_modified).unsigned_abs());
    ctx.metrics.record_object(
        KIND,
        &repo.namespace().unwrap_or_default(),
        &repo.name_any(),
        &findings,
        &[("s3", s3_age)],
    );
    let mut published = events::transitions(
        &old.conditions,
        &found,
        &status.conditions,
        &ConditionType::REPOSITORY_CHECKS,
    );
    published.extend(taken);
    events::publish(&ctx.recorder, &repo.object_ref(&()), published).await;

    if let Some(e) = retry {
        return Err(e);
    }
    ctx.backoff.reset(&super::object_key(repo.as_ref()));
    let next = if is_reconciling(&status.conditions) {
        ctx.timing.settle
    } else {
        ctx.timing.resync
    };
    Ok(Action::requeue(next))
}

fn reason_of(action: &RepoAction) -> Reason {
    match action {
        RepoAction::ProposeWorkflow { .. } => Reason::PullRequestOpened,
        RepoAction::CommitWorkflow { .. } => Reason::WorkflowCommitted,
        RepoAction::EnableWorkflow { .. } => Reason::WorkflowEnabled,
        RepoAction::AddLifecycleRule { .. } => Reason::LifecycleRuleAdded,
    }
}

/// Reads the repository (through the sweep), its workflow, runs and pull request, and its
/// S3 backups and bucket lifecycle (cached per bucket).
async fn observe(
    repo: &BackedUpRepository,
    ctx: &RepoContext,
    fresh: Duration,
) -> Result<RepositoryObservation, Error> {
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
) -> Result<RepositoryObservation, Error> {
    let spec = &repo.spec;
    let name = &spec.repository;
    let path = &spec.workflow.path;
    let facts = repos
        .get(name, path, fresh, resync, all)
        .await
        .map_err(Error::GitHub)?;
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
        obs.workflow = github.workflow(name, path).await.map_err(Error::GitHub)?;
        if obs.workflow.is_some() {
            obs.last_run = github
                .newest_completed_run(name, path)
                .await
                .map_err(Error::GitHub)?;
        }
    }
    if !current {
        obs.pull_request = github.open_pull_request(name).await.map_err(Error::GitHub)?;
    }
    let scope = Scope::new(None, &spec.storage.region);
    obs.lifecycle = buckets
        .lifecycle(&scope, &spec.storage.bucket, resync)
        .await
        .map_err(Error::Aws)?;
    if obs.lifecycle.is_some() {
        obs.newest_backup = buckets
            .newest_object(&scope, &spec.storage.bucket, &spec.storage_prefix(), fresh)
            .await
            .map_err(Error::Aws)?;
    }
    Ok(obs)
}

enum ActError {
    GitHub(GitHubError),
    Aws(AwsError),
}

impl std::fmt::Display for ActError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GitHub(e) => e.fmt(f),
            Self::Aws(e) => e.fmt(f),
        }
    }
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
) -> Result<String, ActError> {
    let spec = &repo.spec;
    let name = &spec.repository;
    match action {
        RepoAction::ProposeWorkflow { content } => {
            let pr = ctx
                .github
                .propose_file(name, &change(repo, obs, content))
                .await
                .map_err(ActError::GitHub)?;
            Ok(format!("pull request {} proposes {}", pr.url, spec.workflow.path))
        }
        RepoAction::CommitWorkflow { content, replacing } => {
            ctx.github
                .commit_file(name, &change(repo, obs, content), replacing.as_deref())
                .await
                .map_err(ActError::GitHub)?;
            Ok(action.describe(spec))
        }
        RepoAction::EnableWorkflow { id } => {
            ctx.github
                .enable_workflow(name, *id)
                .await
                .map_err(ActError::GitHub)?;
            Ok(action.describe(spec))
        }
        RepoAction::AddLifecycleRule { id, prefix, days } => {
            let scope = Scope::new(None, &spec.storage.region);
            ctx.buckets
                .add_expiration_rule(&scope, &spec.storage.bucket, id, prefix, *days)
                .await
                .map_err(ActError::Aws)?;
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

async fn report_stalled(
    repo: &BackedUpRepository,
    ctx: &RepoContext,
    old: &BackedUpRepositoryStatus,
    reason: Reason,
    message: String,
) -> Result<(), Error> {
    let mut status = old.clone();
    status.observed_generation = repo.metadata.generation;
    apply_stalled(
        &mut status.conditions,
        reason,
        &message,
        repo.metadata.generation,
        Timestamp::now(),
    );
    write_status(repo, ctx, old, &status).await
}

/// Writes the status, only when it differs from what is stored.
async fn write_status(
    repo: &BackedUpRepository,
    ctx: &RepoContext,
    old: &BackedUpRepositoryStatus,
    status: &BackedUpRepositoryStatus,
) -> Result<(), Error> {
    if repo.status.is_some() && old == status {
        return Ok(());
    }
    patch_status(&ctx.client, repo, status)
        .await
        .map_err(Error::Status)
}

/// What the policy wants of a check, for people.
pub(crate) fn desired_of(
    check: &str,
    spec: &crate::api::BackedUpRepositorySpec,
    policy: &RepositoryPolicy,
) -> String {
    match check {
        "WorkflowPresent" => format!("{} on the default branch", spec.workflow.path),
        "WorkflowCurrent" => format!("calls {} daily", spec.reusable_workflow()),
        "WorkflowEnabled" => "the workflow active".to_string(),
        "LastRunSucceeded" => format!("a successful run within {}", spec.freshness.max_run_age),
        "BackupFresh" => format!(
            "a backup under s3://{}/{} within {}",
            spec.storage.bucket,
            spec.storage_prefix(),
            spec.freshness.max_backup_age
        ),
        "LifecycleCompliant" => format!(
            "objects under {} expire after at least {} days",
            spec.storage_prefix(),
            crate::policy::repository::required_retention(spec, policy)
        ),
        _ => "compliant".to_string(),
    }
}
