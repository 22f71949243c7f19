//! Restore drills: backups proved restorable on a schedule. A database's replicated
//! automated backups are restored to a temporary instance, probed and deleted
//! (`database`); a repository's newest backup is downloaded and verified (`bundle`).
pub mod bundle;
pub mod database;
pub mod schedule;

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::{ConditionType, Reason, drill::RestoreDrillStatus},
    policy::{Finding, Verdict},
};

/// The `RestoreVerified` finding of an object with drills.
pub fn finding(
    status: Option<&RestoreDrillStatus>,
    every: std::time::Duration,
    created: Timestamp,
    now: Timestamp,
) -> Finding {
    match schedule::verified(status, every, created, now) {
        schedule::Verified::Yes(message) => Finding::pass(ConditionType::RestoreVerified, message),
        schedule::Verified::NotYet(message) => Finding::new(
            ConditionType::RestoreVerified,
            Verdict::Unknown,
            Reason::DrillNotRunYet,
            message,
        ),
        schedule::Verified::No(message) => Finding::new(
            ConditionType::RestoreVerified,
            Verdict::Drift,
            Reason::DrillFailed,
            message,
        ),
    }
}
