//! Builds the status conditions from the findings: one condition per check plus the
//! kstatus trio (`Ready`, `Reconciling`, `Stalled`). Pure: the caller writes the result.

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::Condition;

use crate::{
    api::{ConditionStatus, ConditionType, Reason, conditions::find_condition, set_condition},
    policy::{Finding, Verdict},
};

/// What the reconcile did or waits for, beyond the findings themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Actions taken and changes under way, for `Reconciling`.
    pub working: Vec<String>,
    /// Drift waits for something outside to happen first (the instance to be available):
    /// why, and what it waits for.
    pub holding: Option<(Reason, String)>,
    /// A failure only a human can fix (access denied, refused action), for `Stalled`.
    pub stalled: Option<(Reason, String)>,
}

fn status_of(verdict: Verdict) -> ConditionStatus {
    match verdict {
        Verdict::Pass => ConditionStatus::True,
        Verdict::Unknown => ConditionStatus::Unknown,
        Verdict::Drift | Verdict::Pending | Verdict::Blocked => ConditionStatus::False,
    }
}

/// The summary's word for a check's reason: a pull request to merge is a review awaited.
fn summary_reason(reason: Reason) -> Reason {
    match reason {
        Reason::PullRequestOpen => Reason::AwaitingReview,
        other => other,
    }
}

/// Sets every check's condition and the summary conditions. `Ready=False` always comes with
/// `Reconciling=True` (something is moving it, no person needed) or `Stalled=True` (a person
/// must act: a blocked check, a refused action, or drift nothing under way will fix, such as
/// audit mode, stale backups or a pull request to merge), never both: GitOps tools then
/// agree on what they show (docs/gitops.md).
pub fn apply_findings(
    conditions: &mut Vec<Condition>,
    findings: &[Finding],
    progress: &Progress,
    generation: Option<i64>,
    now: Timestamp,
) {
    for f in findings {
        set_condition(
            conditions,
            f.check,
            status_of(f.verdict),
            f.reason,
            f.message.clone(),
            generation,
            now,
        );
    }

    let failing: Vec<&Finding> = findings
        .iter()
        .filter(|f| !f.is_pass() && f.verdict != Verdict::Unknown)
        .collect();
    let failing_message = distinct(failing.iter().map(|f| f.message.as_str()));
    let mut working = progress.working.clone();
    working.extend(progress.holding.iter().map(|(_, message)| message.clone()));
    working.extend(
        findings
            .iter()
            .filter(|f| f.verdict == Verdict::Pending)
            .map(|f| f.message.clone()),
    );
    let blocked = findings.iter().find(|f| f.verdict == Verdict::Blocked);
    let stalled = progress
        .stalled
        .clone()
        .or_else(|| blocked.map(|b| (summary_reason(b.reason), b.message.clone())))
        .or_else(|| match failing.first() {
            Some(first) if working.is_empty() => {
                Some((summary_reason(first.reason), failing_message.clone()))
            }
            _ => None,
        });

    let (ready, reason, message) = if failing.is_empty() {
        (
            ConditionStatus::True,
            Reason::AllChecksPassed,
            format!("all {} checks pass", findings.len()),
        )
    } else {
        let reason = match (&stalled, &progress.holding) {
            (Some((reason, _)), _) | (None, Some((reason, _))) => *reason,
            (None, None) if failing.iter().all(|f| f.verdict == Verdict::Pending) => Reason::Progressing,
            (None, None) => Reason::DriftDetected,
        };
        (ConditionStatus::False, reason, failing_message)
    };
    set_condition(
        conditions,
        ConditionType::Ready,
        ready,
        reason,
        message,
        generation,
        now,
    );

    if stalled.is_some() || working.is_empty() {
        set_condition(
            conditions,
            ConditionType::Reconciling,
            ConditionStatus::False,
            Reason::Idle,
            "",
            generation,
            now,
        );
    } else {
        let reason = progress
            .holding
            .as_ref()
            .map_or(Reason::Progressing, |(reason, _)| *reason);
        set_condition(
            conditions,
            ConditionType::Reconciling,
            ConditionStatus::True,
            reason,
            distinct(working.iter().map(String::as_str)),
            generation,
            now,
        );
    }

    match stalled {
        Some((reason, message)) => set_condition(
            conditions,
            ConditionType::Stalled,
            ConditionStatus::True,
            reason,
            message,
            generation,
            now,
        ),
        None => set_condition(
            conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            Reason::NotStalled,
            "",
            generation,
            now,
        ),
    };
}

/// The messages joined, each once (a missing instance fails every check with one sentence).
fn distinct<'a>(messages: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for message in messages {
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    seen.join("; ")
}

/// Marks the object stalled on a failure outside the checks (access denied before any
/// check could run): Ready False and Stalled True with the reason, nothing in progress.
pub fn apply_stalled(
    conditions: &mut Vec<Condition>,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_condition(
        conditions,
        ConditionType::Ready,
        ConditionStatus::False,
        reason,
        message,
        generation,
        now,
    );
    set_stalled_and_idle(conditions, Some((reason, message)), generation, now);
}

/// `Stalled` with the reason (or `NotStalled`), and `Reconciling` idle.
fn set_stalled_and_idle(
    conditions: &mut Vec<Condition>,
    stalled: Option<(Reason, &str)>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (status, reason, message) = match stalled {
        Some((reason, message)) => (ConditionStatus::True, reason, message),
        None => (ConditionStatus::False, Reason::NotStalled, ""),
    };
    set_condition(
        conditions,
        ConditionType::Stalled,
        status,
        reason,
        message,
        generation,
        now,
    );
    set_condition(
        conditions,
        ConditionType::Reconciling,
        ConditionStatus::False,
        Reason::Idle,
        "",
        generation,
        now,
    );
}

/// `spec.suspend`: `Reconciling=False` (reason `Suspended`) says nothing is read or
/// changed; every other condition stays as the last look left it, so kstatus and Argo CD
/// keep showing that look. Before any look, `Ready` is `Unknown`.
pub fn apply_suspended(conditions: &mut Vec<Condition>, generation: Option<i64>, now: Timestamp) {
    let message =
        "spec.suspend is true: nothing is observed or changed; the other conditions are from the last look";
    if find_condition(conditions, ConditionType::Ready).is_none() {
        set_condition(
            conditions,
            ConditionType::Ready,
            ConditionStatus::Unknown,
            Reason::Suspended,
            "suspended before the first look",
            generation,
            now,
        );
    }
    if find_condition(conditions, ConditionType::Stalled).is_none() {
        set_condition(
            conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            Reason::NotStalled,
            "",
            generation,
            now,
        );
    }
    set_condition(
        conditions,
        ConditionType::Reconciling,
        ConditionStatus::False,
        Reason::Suspended,
        message,
        generation,
        now,
    );
}

/// What could not be read cannot be judged: every check turns `Unknown` with the reason
/// (never a stale `True`), and so does `Ready`. `stalled` says a human must act (a region
/// that cannot be reached); otherwise it is retried with backoff.
pub fn apply_unobserved(
    conditions: &mut Vec<Condition>,
    checks: &[ConditionType],
    reason: Reason,
    message: &str,
    stalled: bool,
    generation: Option<i64>,
    now: Timestamp,
) {
    for &check in checks.iter().chain([&ConditionType::Ready]) {
        set_condition(
            conditions,
            check,
            ConditionStatus::Unknown,
            reason,
            message,
            generation,
            now,
        );
    }
    set_stalled_and_idle(conditions, stalled.then_some((reason, message)), generation, now);
}

/// Server-side applies `status` to the object's status subresource, under the one field
/// manager of backup-warden.
pub async fn patch_status<K>(
    client: &kube::Client,
    object: &K,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    use kube::{
        Api, ResourceExt,
        api::{Patch, PatchParams},
    };
    let api: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
    // The version read: a status decided from an older copy than the stored one is refused
    // (409) rather than written over a newer one.
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": object.resource_version()},
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(crate::controller::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// True when the condition says work is under way: look again soon.
pub fn is_reconciling(conditions: &[Condition]) -> bool {
    crate::api::conditions::find_condition(conditions, ConditionType::Reconciling)
        .is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DatabaseCheck;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("ts")
    }

    fn get(conditions: &[Condition], t: impl Into<ConditionType>) -> (String, String, String) {
        let c = find_condition(conditions, t).expect("condition");
        (c.status.to_string(), c.reason.to_string(), c.message.to_string())
    }

    #[test]
    fn all_passing_is_ready_idle_and_not_stalled() {
        let findings = vec![
            Finding::pass(DatabaseCheck::BackupsEnabled, "ok"),
            Finding::pass(DatabaseCheck::RetentionCompliant, "ok"),
        ];
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(2), now());
        assert_eq!(
            get(&c, ConditionType::Ready),
            (
                "True".into(),
                "AllChecksPassed".into(),
                "all 2 checks pass".into()
            )
        );
        assert_eq!(get(&c, ConditionType::Reconciling).0, "False");
        assert_eq!(get(&c, ConditionType::Stalled).0, "False");
        assert_eq!(c.len(), 5);
        assert!(c.iter().all(|c| c.observed_generation == Some(2)));
    }

    #[test]
    fn drift_names_each_finding_in_ready() {
        let findings = vec![
            Finding::new(
                DatabaseCheck::RetentionCompliant,
                Verdict::Drift,
                Reason::DriftDetected,
                "retention is 1 day (policy 7 days)",
            ),
            Finding::new(
                DatabaseCheck::ReplicationActive,
                Verdict::Drift,
                Reason::DriftDetected,
                "no replication to us-west-2",
            ),
            Finding::new(
                DatabaseCheck::ReplicaFresh,
                Verdict::Unknown,
                Reason::NotYetChecked,
                "no replica yet",
            ),
        ];
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        assert_eq!(
            get(&c, ConditionType::Ready),
            (
                "False".into(),
                "DriftDetected".into(),
                "retention is 1 day (policy 7 days); no replication to us-west-2".into()
            )
        );
        assert_eq!(get(&c, DatabaseCheck::ReplicaFresh).0, "Unknown");
    }

    #[test]
    fn one_cause_of_many_failing_checks_is_said_once_in_ready() {
        let missing = "RDS instance x not found in us-east-1";
        let findings: Vec<Finding> = ConditionType::DATABASE_CHECKS
            .iter()
            .map(|&check| Finding::new(check, Verdict::Blocked, Reason::InstanceNotFound, missing))
            .collect();
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        assert_eq!(get(&c, ConditionType::Ready).2, missing);
    }

    #[test]
    fn actions_and_pending_work_set_reconciling() {
        let findings = vec![Finding::new(
            DatabaseCheck::ReplicationActive,
            Verdict::Pending,
            Reason::ActionPending,
            "replication to us-west-2 is starting",
        )];
        let progress = Progress {
            working: vec!["raised backup retention from 1 day to 7 days".into()],
            ..Progress::default()
        };
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &progress, Some(1), now());
        assert_eq!(get(&c, ConditionType::Ready).1, "Progressing");
        assert_eq!(
            get(&c, ConditionType::Reconciling),
            (
                "True".into(),
                "Progressing".into(),
                "raised backup retention from 1 day to 7 days; replication to us-west-2 is starting".into()
            )
        );
        assert!(is_reconciling(&c));
    }

    #[test]
    fn what_cannot_be_read_turns_every_check_unknown() {
        let mut c = Vec::new();
        let findings = [Finding::pass(DatabaseCheck::BackupsEnabled, "ok")];
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        apply_unobserved(
            &mut c,
            &[DatabaseCheck::BackupsEnabled.into()],
            Reason::ObservationFailed,
            "cannot read AWS: DescribeDBInstances: Timeout",
            false,
            Some(1),
            now(),
        );
        for t in [DatabaseCheck::BackupsEnabled.into(), ConditionType::Ready] {
            assert_eq!(get(&c, t).0, "Unknown", "{t:?}");
            assert_eq!(get(&c, t).1, "ObservationFailed");
        }
        assert_eq!(get(&c, ConditionType::Stalled).0, "False");
        apply_unobserved(
            &mut c,
            &[],
            Reason::RegionUnreachable,
            "no such region",
            true,
            Some(1),
            now(),
        );
        assert_eq!(
            get(&c, ConditionType::Stalled),
            ("True".into(), "RegionUnreachable".into(), "no such region".into())
        );
    }

    #[test]
    fn a_blocked_check_stalls_with_its_reason() {
        let findings = vec![Finding::new(
            DatabaseCheck::ReplicaKeyCompliant,
            Verdict::Blocked,
            Reason::KeyNotUsable,
            "KMS key k is Disabled",
        )];
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        assert_eq!(
            get(&c, ConditionType::Stalled),
            (
                "True".into(),
                "KeyNotUsable".into(),
                "KMS key k is Disabled".into()
            )
        );
        assert_eq!(get(&c, ConditionType::Ready).1, "KeyNotUsable");
    }

    fn summary(c: &[Condition]) -> [(String, String); 3] {
        [
            ConditionType::Ready,
            ConditionType::Reconciling,
            ConditionType::Stalled,
        ]
        .map(|t| {
            let (status, reason, _) = get(c, t);
            (status, reason)
        })
    }

    fn pair(status: &str, reason: Reason) -> (String, String) {
        (status.to_string(), reason.as_str().to_string())
    }

    #[test]
    fn drift_nothing_will_fix_stalls_with_its_reason_never_ready_false_alone() {
        for reason in [Reason::AuditOnly, Reason::Stale, Reason::DriftDetected] {
            let findings = [Finding::new(
                DatabaseCheck::RetentionCompliant,
                Verdict::Drift,
                reason,
                "retention is 1 day",
            )];
            let mut c = Vec::new();
            apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
            assert_eq!(
                summary(&c),
                [
                    pair("False", reason),
                    pair("False", Reason::Idle),
                    pair("True", reason)
                ],
                "{reason:?}"
            );
            assert_eq!(get(&c, ConditionType::Stalled).2, "retention is 1 day");
        }
    }

    #[test]
    fn a_pull_request_to_merge_awaits_review_and_is_not_reconciling() {
        let findings = [Finding::new(
            crate::api::RepositoryCheck::WorkflowPresent,
            Verdict::Blocked,
            Reason::PullRequestOpen,
            "pull request https://github.com/o/r/pull/1 waits for review",
        )];
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        assert_eq!(
            summary(&c),
            [
                pair("False", Reason::AwaitingReview),
                pair("False", Reason::Idle),
                pair("True", Reason::AwaitingReview)
            ]
        );
        assert_eq!(
            get(&c, crate::api::RepositoryCheck::WorkflowPresent).1,
            "PullRequestOpen"
        );
    }

    #[test]
    fn drift_waiting_for_the_instance_says_instance_not_available() {
        let findings = [Finding::new(
            DatabaseCheck::RetentionCompliant,
            Verdict::Drift,
            Reason::DriftDetected,
            "retention is 1 day",
        )];
        let progress = Progress {
            holding: Some((
                Reason::InstanceNotAvailable,
                "instance is modifying; acting once it is available".into(),
            )),
            ..Progress::default()
        };
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &progress, Some(1), now());
        assert_eq!(
            summary(&c),
            [
                pair("False", Reason::InstanceNotAvailable),
                pair("True", Reason::InstanceNotAvailable),
                pair("False", Reason::NotStalled)
            ]
        );
    }

    #[test]
    fn stalled_and_reconciling_are_never_both_true() {
        let findings = [
            Finding::new(
                DatabaseCheck::RetentionCompliant,
                Verdict::Drift,
                Reason::DriftDetected,
                "retention is 1 day",
            ),
            Finding::new(
                DatabaseCheck::ReplicaKeyCompliant,
                Verdict::Blocked,
                Reason::KeyNotUsable,
                "key k is Disabled",
            ),
        ];
        let progress = Progress {
            working: vec!["raised backup retention from 1 day to 7 days".into()],
            ..Progress::default()
        };
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &progress, Some(1), now());
        assert_eq!(
            summary(&c),
            [
                pair("False", Reason::KeyNotUsable),
                pair("False", Reason::Idle),
                pair("True", Reason::KeyNotUsable)
            ]
        );
    }

    #[test]
    fn suspending_keeps_the_last_look_and_says_so() {
        let findings = [Finding::pass(DatabaseCheck::BackupsEnabled, "ok")];
        let mut c = Vec::new();
        apply_findings(&mut c, &findings, &Progress::default(), Some(1), now());
        let before = c.clone();
        apply_suspended(&mut c, Some(2), now());
        assert_eq!(get(&c, ConditionType::Reconciling).1, "Suspended");
        for t in [
            DatabaseCheck::BackupsEnabled.into(),
            ConditionType::Ready,
            ConditionType::Stalled,
        ] {
            assert_eq!(find_condition(&c, t), find_condition(&before, t), "{t:?} kept");
        }
        let mut fresh = Vec::new();
        apply_suspended(&mut fresh, Some(1), now());
        assert_eq!(
            summary(&fresh),
            [
                pair("Unknown", Reason::Suspended),
                pair("False", Reason::Suspended),
                pair("False", Reason::NotStalled)
            ]
        );
    }
}
