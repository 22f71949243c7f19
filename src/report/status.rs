//! Builds the status conditions from the findings: one condition per check plus the
//! kstatus trio (`Ready`, `Reconciling`, `Stalled`). Pure: the caller writes the result.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};

use crate::{
    api::{ConditionStatus, ConditionType, Reason, set_condition},
    policy::{Finding, Verdict},
};

/// What the reconcile did or waits for, beyond the findings themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Actions taken and changes under way, for `Reconciling`.
    pub working: Vec<String>,
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

/// Sets every check's condition and the summary conditions.
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
    let blocked = findings.iter().find(|f| f.verdict == Verdict::Blocked);
    let (ready, reason, message) = if failing.is_empty() {
        (
            ConditionStatus::True,
            Reason::AllChecksPassed,
            format!("all {} checks pass", findings.len()),
        )
    } else {
        let reason = match (blocked, progress.stalled.as_ref()) {
            (_, Some((reason, _))) => *reason,
            (Some(b), None) => b.reason,
            (None, None) if failing.iter().all(|f| f.verdict == Verdict::Pending) => Reason::Progressing,
            (None, None) => Reason::DriftDetected,
        };
        (
            ConditionStatus::False,
            reason,
            distinct(failing.iter().map(|f| f.message.as_str())),
        )
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

    let mut working = progress.working.clone();
    working.extend(
        findings
            .iter()
            .filter(|f| f.verdict == Verdict::Pending)
            .map(|f| f.message.clone()),
    );
    if working.is_empty() {
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
        let message = distinct(working.iter().map(String::as_str));
        set_condition(
            conditions,
            ConditionType::Reconciling,
            ConditionStatus::True,
            Reason::Progressing,
            message,
            generation,
            now,
        );
    }

    let stalled = progress
        .stalled
        .clone()
        .or_else(|| blocked.map(|b| (b.reason, b.message.clone())));
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
    let patch =
        serde_json::json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
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
    use crate::api::conditions::find_condition;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("ts")
    }

    fn get(conditions: &[Condition], t: impl Into<ConditionType>) -> (String, String, String) {
        let c = find_condition(conditions, t).expect("condition");
        (c.status.clone(), c.reason.clone(), c.message.clone())
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
            stalled: None,
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
}
