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
    let created = crate::controller::database::created(object.meta(), now);
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

/// Whether the pipeline acts on the object: its namespace may use what it names (the
/// tenancy), and its status does not say it was refused (a second claim on one resource,
/// a spec the controller cannot read).
pub fn admitted<K: crate::controller::admission::Claimant + crate::controller::decoded::HasConditions>(
    object: &K,
    tenancy: &crate::tenancy::Tenancy,
) -> bool {
    let refused = crate::api::conditions::find_condition(object.conditions(), ConditionType::Stalled)
        .is_some_and(|c| {
            c.status == "True"
                && [Reason::NotAllowed, Reason::Conflict, Reason::InvalidSpec]
                    .iter()
                    .any(|r| c.reason.as_str() == r.as_str())
        });
    object.allowed(tenancy).is_ok() && !refused
}

/// What `RestoreVerified` wants, in words.
pub fn desired(every: &crate::api::PositiveDuration) -> String {
    format!("a successful restore drill every {every} (at most twice that apart)")
}

/// Without drills, no `RestoreVerified` condition (one left from when they were on goes).
pub fn drop_condition(conditions: &mut Vec<crate::api::conditions::Condition>) {
    conditions.retain(|c| c.type_.as_str() != ConditionType::RestoreVerified.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackedUpDatabase, ConditionStatus, set_condition};

    fn database(role: Option<&str>) -> BackedUpDatabase {
        let mut spec = serde_json::json!({"instance": {"identifier": "orders-db", "region": "us-east-1"}});
        if let Some(role) = role {
            spec["instance"]["roleArn"] = role.into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
            "metadata": {"name": "orders", "namespace": "team"}, "spec": spec,
        }))
        .expect("object")
    }

    #[test]
    fn a_drill_acts_only_for_an_admitted_object() {
        let tenancy = crate::tenancy::Tenancy::single_team();
        assert!(admitted(&database(None), &tenancy));
        assert!(
            !admitted(&database(Some("arn:aws:iam::123456789012:role/other")), &tenancy),
            "a role the namespace may not use is never assumed for a drill"
        );
        let mut second = database(None);
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Stalled,
            ConditionStatus::True,
            Reason::Conflict,
            "another object manages orders-db",
            None,
            Timestamp::now(),
        );
        second.status = Some(crate::api::BackedUpDatabaseStatus {
            conditions,
            ..Default::default()
        });
        assert!(
            !admitted(&second, &tenancy),
            "a refused second claim runs no drill"
        );
    }
}
