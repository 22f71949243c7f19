//! Restore drills: backups proved restorable on a schedule. A database's replicated
//! automated backups are restored to a temporary instance, probed and deleted
//! (`database`); a repository's newest backup is downloaded and verified (`bundle`).
pub mod bundle;
pub mod database;
pub mod report;
pub mod repository;
pub mod schedule;

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::{ConditionType, Reason},
    policy::{Finding, Verdict},
};

/// The `RestoreVerified` finding of an object with drills every `every`.
/// In Audit no drill runs: what is not verified says so (`AuditOnly`).
pub fn finding<K: report::Drilled>(
    object: &K,
    every: std::time::Duration,
    audit: bool,
    now: Timestamp,
) -> Finding {
    let created = object.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
    let status = object.drill_status();
    match schedule::verified(Some(&status), every, created, now) {
        schedule::Verified::Yes(message) => Finding::pass(ConditionType::RestoreVerified, message),
        schedule::Verified::NotYet(message) => Finding::new(
            ConditionType::RestoreVerified,
            Verdict::Unknown,
            Reason::DrillNotRunYet,
            message,
        ),
        schedule::Verified::No(message) if audit => Finding::new(
            ConditionType::RestoreVerified,
            Verdict::Drift,
            Reason::AuditOnly,
            format!("{message}; no restore drill runs in Audit mode"),
        ),
        schedule::Verified::No(message) => Finding::new(
            ConditionType::RestoreVerified,
            Verdict::Drift,
            Reason::DrillFailed,
            message,
        ),
    }
}

/// Adds the `RestoreVerified` finding to an object's, when it has drills (`every`).
pub fn add_finding<K: report::Drilled>(
    findings: &mut Vec<Finding>,
    object: &K,
    every: Option<&crate::api::PositiveDuration>,
    audit: bool,
    now: Timestamp,
) {
    if let Some(every) = every {
        findings.push(finding(object, every.as_duration(), audit, now));
    }
}

/// What `RestoreVerified` wants, in words.
pub fn desired(every: &crate::api::PositiveDuration) -> String {
    format!("a successful restore drill every {every} (at most twice that apart)")
}

/// Without drills, no `RestoreVerified` condition (one left from when they were on goes).
pub fn drop_condition(conditions: &mut Vec<crate::api::conditions::Condition>) {
    conditions.retain(|c| c.type_.as_str() != ConditionType::RestoreVerified.as_str());
}
