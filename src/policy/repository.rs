//! The repository backup policy: what was observed of one GitHub repository and its S3
//! backups → one finding per check, and → the actions Enforce may take. Pure.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::{Finding, Tense, Verdict, at, days};
use crate::{
    api::{
        ConditionType, Mode, Reason,
        conditions::wire_enum,
        repository::{BackedUpRepositorySpec, Delivery},
    },
    workflow,
};

wire_enum! {
    /// The repository checks, in the order status lists them.
    pub enum RepositoryCheck {
        /// The workflow file is on the default branch.
        WorkflowPresent,
        /// It calls the shared reusable workflow daily.
        WorkflowCurrent,
        /// GitHub runs it (not disabled).
        WorkflowEnabled,
        /// Its last run succeeded, recently enough.
        LastRunSucceeded,
        /// A backup landed in S3 recently enough.
        BackupFresh,
        /// A lifecycle rule keeps the backups at least as long as the policy asks.
        LifecycleCompliant,
    }
}
use RepositoryCheck::*;

/// The branch backup-warden proposes the workflow from: one per repository, so a pull
/// request is found again rather than opened twice.
pub const BRANCH: &str = "backup-warden/backup-daily";

/// A repository as the GraphQL sweep sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoFacts {
    pub default_branch: String,
    /// The commit at the head of the default branch.
    pub head: Option<String>,
    pub archived: bool,
    /// The workflow file's text on the default branch, if it is there.
    pub file: Option<String>,
}

/// The workflow as GitHub Actions registers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkflowFacts {
    pub id: u64,
    /// active, disabled_manually, disabled_inactivity, ...
    pub state: String,
}

/// The newest completed run of the workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFacts {
    pub url: String,
    pub conclusion: String,
    pub started_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestFacts {
    pub url: String,
    pub number: u64,
}

/// The newest object under the repository's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupObject {
    pub key: String,
    pub last_modified: Timestamp,
}

/// One rule of the bucket's lifecycle configuration, as far as the check needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleRuleFacts {
    pub id: String,
    pub enabled: bool,
    /// The rule's prefix ("" for the whole bucket).
    pub prefix: String,
    /// Tag or size conditions narrow the rule to some objects only.
    pub narrowed: bool,
    pub expiration_days: Option<i32>,
}

/// Everything evaluate needs about one repository, gathered by observe.
#[derive(Clone, Debug, PartialEq)]
pub struct RepositoryObservation {
    /// `None`: the repository does not exist or the token cannot see it.
    pub repo: Option<RepoFacts>,
    pub workflow: Option<WorkflowFacts>,
    pub last_run: Option<RunFacts>,
    pub pull_request: Option<PullRequestFacts>,
    pub newest_backup: Option<BackupObject>,
    /// `None`: the bucket does not exist.
    pub lifecycle: Option<Vec<LifecycleRuleFacts>>,
    pub now: Timestamp,
}

/// Controller-wide settings for repositories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepositoryPolicy {
    /// The company keeps repository backups at least this many days (90).
    pub min_retention_days: i32,
    pub audit_only: bool,
}

impl Default for RepositoryPolicy {
    fn default() -> Self {
        Self {
            min_retention_days: 90,
            audit_only: false,
        }
    }
}

fn age(now: Timestamp, then: Timestamp) -> Duration {
    now.duration_since(then).unsigned_abs()
}

/// The retention the lifecycle rule must keep.
pub fn required_retention(spec: &BackedUpRepositorySpec, policy: &RepositoryPolicy) -> i32 {
    spec.storage.retention_days.max(policy.min_retention_days)
}

/// What the checks read, once the repository is known.
pub struct Facts<'a> {
    pub spec: &'a BackedUpRepositorySpec,
    pub obs: &'a RepositoryObservation,
    pub policy: &'a RepositoryPolicy,
    pub repo: &'a RepoFacts,
}

/// One repository check: how it is judged, and what the policy wants of it, for people.
pub struct Check {
    pub check: RepositoryCheck,
    pub evaluate: fn(&Facts) -> Finding,
    pub desired: fn(&BackedUpRepositorySpec, &RepositoryPolicy) -> String,
}

/// The repository checks, in the order status lists them (that of `RepositoryCheck`).
pub const CHECKS: [Check; 6] = [
    Check {
        check: WorkflowPresent,
        evaluate: |f| workflow_present(f.spec, f.obs, f.repo),
        desired: |spec, _| format!("{} on the default branch", spec.workflow.path),
    },
    Check {
        check: WorkflowCurrent,
        evaluate: |f| workflow_current(f.spec, f.obs, f.repo),
        desired: |spec, _| format!("calls {} daily", spec.reusable_workflow()),
    },
    Check {
        check: WorkflowEnabled,
        evaluate: |f| workflow_enabled(f.obs, f.repo),
        desired: |_, _| "the workflow active".to_string(),
    },
    Check {
        check: LastRunSucceeded,
        evaluate: |f| last_run(f.spec, f.obs),
        desired: |spec, _| format!("a successful run within {}", spec.freshness.max_run_age),
    },
    Check {
        check: BackupFresh,
        evaluate: |f| backup_fresh(f.spec, f.obs),
        desired: |spec, _| {
            format!(
                "a backup under s3://{}/{} within {}",
                spec.storage.bucket,
                spec.storage_prefix(),
                spec.freshness.max_backup_age
            )
        },
    },
    Check {
        check: LifecycleCompliant,
        evaluate: |f| lifecycle(f.spec, f.obs, f.policy),
        desired: |spec, policy| {
            format!(
                "objects under {} expire after at least {} days",
                spec.storage_prefix(),
                required_retention(spec, policy)
            )
        },
    },
];

/// What the policy wants of `check`, for people.
/// (Empty for another kind's check: status and notifications name only their own.)
pub fn desired(check: ConditionType, spec: &BackedUpRepositorySpec, policy: &RepositoryPolicy) -> String {
    CHECKS
        .iter()
        .find(|c| ConditionType::from(c.check) == check)
        .map_or_else(String::new, |c| (c.desired)(spec, policy))
}

/// One finding per repository check, in `CHECKS` order.
pub fn evaluate(
    spec: &BackedUpRepositorySpec,
    obs: &RepositoryObservation,
    policy: &RepositoryPolicy,
) -> Vec<Finding> {
    let blocked_all = |reason, message: String| -> Vec<Finding> {
        CHECKS
            .iter()
            .map(|c| Finding::new(c.check, Verdict::Blocked, reason, message.clone()))
            .collect()
    };
    let Some(repo) = &obs.repo else {
        return blocked_all(
            Reason::RepositoryNotFound,
            format!(
                "repository {} not found, or the token cannot see it: check spec.repository and the token's access",
                spec.repository
            ),
        );
    };
    if repo.archived {
        return blocked_all(
            Reason::RepositoryArchived,
            format!(
                "repository {} is archived (read only): unarchive it or delete this BackedUpRepository",
                spec.repository
            ),
        );
    }
    let facts = Facts {
        spec,
        obs,
        policy,
        repo,
    };
    CHECKS.iter().map(|c| (c.evaluate)(&facts)).collect()
}

fn proposed(obs: &RepositoryObservation, check: RepositoryCheck, what: &str) -> Option<Finding> {
    obs.pull_request.as_ref().map(|pr| {
        // A person must merge it: nothing else moves it (Stalled, not Reconciling).
        Finding::new(
            check,
            Verdict::Blocked,
            Reason::PullRequestOpen,
            format!("{what}: pull request {} waits for review", pr.url),
        )
    })
}

fn workflow_present(spec: &BackedUpRepositorySpec, obs: &RepositoryObservation, repo: &RepoFacts) -> Finding {
    let path = &spec.workflow.path;
    if repo.file.is_some() {
        return Finding::pass(WorkflowPresent, format!("{path} is on {}", repo.default_branch));
    }
    let missing = format!("{path} is missing from {}", repo.default_branch);
    proposed(obs, WorkflowPresent, &missing)
        .unwrap_or_else(|| Finding::new(WorkflowPresent, Verdict::Drift, Reason::DriftDetected, missing))
}

fn workflow_current(spec: &BackedUpRepositorySpec, obs: &RepositoryObservation, repo: &RepoFacts) -> Finding {
    let Some(text) = &repo.file else {
        return Finding::new(
            WorkflowCurrent,
            Verdict::Unknown,
            Reason::NotYetChecked,
            "no workflow file to check",
        );
    };
    match workflow::check(text, &spec.reusable_workflow(), &spec.workflow.allowed_refs) {
        Ok(()) => Finding::pass(
            WorkflowCurrent,
            format!("calls {} daily", spec.reusable_workflow()),
        ),
        Err(why) => proposed(obs, WorkflowCurrent, &why)
            .unwrap_or_else(|| Finding::new(WorkflowCurrent, Verdict::Drift, Reason::DriftDetected, why)),
    }
}

fn workflow_enabled(obs: &RepositoryObservation, repo: &RepoFacts) -> Finding {
    match (&obs.workflow, &repo.file) {
        (Some(w), _) if w.state == "active" => Finding::pass(WorkflowEnabled, "the workflow is active"),
        (Some(w), _) => Finding::new(
            WorkflowEnabled,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("the workflow is {}", w.state),
        ),
        (None, Some(_)) => Finding::new(
            WorkflowEnabled,
            Verdict::Drift,
            Reason::DriftDetected,
            "GitHub Actions has not registered the workflow",
        ),
        (None, None) => Finding::new(
            WorkflowEnabled,
            Verdict::Unknown,
            Reason::NotYetChecked,
            "no workflow file yet",
        ),
    }
}

fn last_run(spec: &BackedUpRepositorySpec, obs: &RepositoryObservation) -> Finding {
    let Some(run) = &obs.last_run else {
        return Finding::new(
            LastRunSucceeded,
            Verdict::Drift,
            Reason::Stale,
            "the workflow has not completed a run yet",
        );
    };
    if run.conclusion != "success" {
        return Finding::new(
            LastRunSucceeded,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("the newest run concluded {}: {}", run.conclusion, run.url),
        );
    }
    let run_age = age(obs.now, run.started_at);
    if run_age > spec.freshness.max_run_age.as_duration() {
        return Finding::new(
            LastRunSucceeded,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "the newest successful run started {} (limit {}): {}",
                at(run.started_at),
                spec.freshness.max_run_age,
                run.url
            ),
        );
    }
    Finding::pass(
        LastRunSucceeded,
        format!("succeeded within {}: {}", spec.freshness.max_run_age, run.url),
    )
}

fn backup_fresh(spec: &BackedUpRepositorySpec, obs: &RepositoryObservation) -> Finding {
    let location = format!("s3://{}/{}", spec.storage.bucket, spec.storage_prefix());
    let Some(newest) = &obs.newest_backup else {
        return Finding::new(
            BackupFresh,
            Verdict::Drift,
            Reason::Stale,
            format!("no backup under {location}"),
        );
    };
    let backup_age = age(obs.now, newest.last_modified);
    if backup_age > spec.freshness.max_backup_age.as_duration() {
        return Finding::new(
            BackupFresh,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "the newest backup {} was written {} (limit {})",
                newest.key,
                at(newest.last_modified),
                spec.freshness.max_backup_age
            ),
        );
    }
    Finding::pass(
        BackupFresh,
        format!(
            "the newest backup {} is within {}",
            newest.key, spec.freshness.max_backup_age
        ),
    )
}

/// S3's limit of lifecycle rules per bucket.
pub const MAX_LIFECYCLE_RULES: usize = 1000;

/// The id of the rule backup-warden adds for a repository: its own, or the one shared by
/// every repository naming the same `lifecycleRulePrefix` (at most 255 characters, S3's limit).
pub fn lifecycle_rule_id(spec: &BackedUpRepositorySpec) -> String {
    let prefix = spec.lifecycle_rule_prefix();
    if prefix == spec.storage_prefix() {
        return format!("backup-warden-{}", spec.repository.replace('/', "-"));
    }
    let name = prefix.trim_end_matches('/').replace('/', "-");
    match name.as_str() {
        "" => "backup-warden-shared-whole-bucket".to_string(),
        name if name.len() <= 200 => format!("backup-warden-shared-{name}"),
        // Long prefixes keep their start, and a hash of the whole tells them apart.
        name => format!(
            "backup-warden-shared-{}-{:016x}",
            &name[..180],
            fnv1a(prefix.as_bytes())
        ),
    }
}

/// FNV-1a, 64 bits: stable across builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lifecycle(
    spec: &BackedUpRepositorySpec,
    obs: &RepositoryObservation,
    policy: &RepositoryPolicy,
) -> Finding {
    let bucket = &spec.storage.bucket;
    let Some(rules) = &obs.lifecycle else {
        return Finding::new(
            LifecycleCompliant,
            Verdict::Blocked,
            Reason::Unsupported,
            format!("bucket {bucket} not found in {}", spec.storage.region),
        );
    };
    let prefix = spec.storage_prefix();
    let required = required_retention(spec, policy);
    let covering: Vec<&LifecycleRuleFacts> = rules
        .iter()
        .filter(|r| r.enabled && !r.narrowed && prefix.starts_with(&r.prefix) && r.expiration_days.is_some())
        .collect();
    // A rule that expires sooner deletes backups early whatever else is there; ours is raised.
    let own = lifecycle_rule_id(spec);
    if let Some(short) = covering
        .iter()
        .find(|r| r.expiration_days.is_some_and(|d| d < required))
    {
        if short.id == own {
            return Finding::new(
                LifecycleCompliant,
                Verdict::Drift,
                Reason::DriftDetected,
                format!(
                    "backup-warden's rule {own:?} expires objects under {} after {} (policy {})",
                    short.prefix,
                    days(short.expiration_days.unwrap_or(0)),
                    days(required)
                ),
            );
        }
        return Finding::new(
            LifecycleCompliant,
            Verdict::Blocked,
            Reason::DriftDetected,
            format!(
                "lifecycle rule {:?} expires objects under {prefix} after {} (policy {}): change or narrow that rule",
                short.id,
                days(short.expiration_days.unwrap_or(0)),
                days(required)
            ),
        );
    }
    match covering.first() {
        Some(rule) => Finding::pass(
            LifecycleCompliant,
            format!(
                "rule {:?} expires objects under {prefix} after {}",
                rule.id,
                days(rule.expiration_days.unwrap_or(0))
            ),
        ),
        // A new rule would cross S3's limit: only a person can make room or share a rule.
        None if rules.len() >= MAX_LIFECYCLE_RULES && !rules.iter().any(|r| r.id == own) => Finding::new(
            LifecycleCompliant,
            Verdict::Blocked,
            Reason::DriftDetected,
            format!(
                "no lifecycle rule of {bucket} expires objects under {prefix} (policy {}), and the bucket holds \
                 {} rules, S3's limit: share one rule among repositories with spec.storage.lifecycleRulePrefix",
                days(required),
                rules.len()
            ),
        ),
        None => Finding::new(
            LifecycleCompliant,
            Verdict::Drift,
            Reason::DriftDetected,
            format!(
                "no lifecycle rule of {bucket} expires objects under {prefix} (policy {})",
                days(required)
            ),
        ),
    }
}

/// A change Enforce makes to a repository or its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoAction {
    /// Commit the rendered file to `BRANCH` and open a pull request (or find the open one).
    ProposeWorkflow {
        content: String,
    },
    /// Commit the rendered file straight to the default branch. `replacing` is the text that
    /// was evaluated: if the file differs from it when the commit is made, someone changed
    /// it meanwhile and nothing is written.
    CommitWorkflow {
        content: String,
        replacing: Option<String>,
    },
    EnableWorkflow {
        id: u64,
    },
    /// Add (merge) a lifecycle rule expiring the prefix after `days`.
    AddLifecycleRule {
        id: String,
        prefix: String,
        days: i32,
    },
}

impl RepoAction {
    /// The checks this action fixes.
    pub fn fixes(&self) -> &'static [RepositoryCheck] {
        match self {
            Self::ProposeWorkflow { .. } | Self::CommitWorkflow { .. } => &[WorkflowPresent, WorkflowCurrent],
            Self::EnableWorkflow { .. } => &[WorkflowEnabled],
            Self::AddLifecycleRule { .. } => &[LifecycleCompliant],
        }
    }

    /// What the action does (`Tense::Done`, for events and logs) or will do.
    pub fn describe(&self, spec: &BackedUpRepositorySpec, tense: Tense) -> String {
        let path = &spec.workflow.path;
        match self {
            Self::ProposeWorkflow { .. } => {
                format!("{} {path} in a pull request", tense.verb("proposed", "propose"))
            }
            Self::CommitWorkflow { .. } => {
                format!(
                    "{} {path} to the default branch",
                    tense.verb("committed", "commit")
                )
            }
            Self::EnableWorkflow { .. } => {
                format!("{} the backup workflow", tense.verb("re-enabled", "re-enable"))
            }
            Self::AddLifecycleRule { id, prefix, days: d } => format!(
                "{} lifecycle rule {id} to {} expiring {prefix} after {}",
                tense.verb("added", "add"),
                spec.storage.bucket,
                days(*d)
            ),
        }
    }
}

/// The actions Enforce takes for these findings; Audit plans nothing.
pub fn plan(
    spec: &BackedUpRepositorySpec,
    obs: &RepositoryObservation,
    findings: &[Finding],
    policy: &RepositoryPolicy,
) -> Vec<RepoAction> {
    if spec.mode == Mode::Audit || policy.audit_only {
        return Vec::new();
    }
    let Some(repo) = &obs.repo else { return Vec::new() };
    if repo.archived {
        return Vec::new();
    }
    let drift = |check: RepositoryCheck| {
        findings
            .iter()
            .any(|f| f.check == check.into() && f.verdict == Verdict::Drift)
    };
    let mut actions = Vec::new();
    if drift(WorkflowPresent) || drift(WorkflowCurrent) {
        let content = workflow::render(spec);
        actions.push(match spec.workflow.delivery {
            Delivery::PullRequest => RepoAction::ProposeWorkflow { content },
            Delivery::Commit => RepoAction::CommitWorkflow {
                content,
                replacing: repo.file.clone(),
            },
        });
    }
    if drift(WorkflowEnabled)
        && let Some(w) = &obs.workflow
    {
        actions.push(RepoAction::EnableWorkflow { id: w.id });
    }
    if drift(LifecycleCompliant) {
        // A missing rule is added; our own shorter one is replaced (raised, never lowered).
        let days = required_retention(spec, policy);
        let ours = obs
            .lifecycle
            .iter()
            .flatten()
            .find(|r| r.id == lifecycle_rule_id(spec));
        actions.push(RepoAction::AddLifecycleRule {
            id: lifecycle_rule_id(spec),
            prefix: spec.lifecycle_rule_prefix(),
            days: ours.and_then(|r| r.expiration_days).map_or(days, |d| d.max(days)),
        });
    }
    actions
}

#[cfg(test)]
mod tests;
