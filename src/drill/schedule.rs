//! When a drill is due, and how one ends: pure.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};

use crate::api::drill::{DrillResult, RestoreDrillStatus};

/// When the next drill is due: after the last one's start plus the interval; the first at
/// a point within the first interval after the object's creation that differs per object
/// (from its uid), so that a fleet declared at once does not drill at once.
pub fn due_at(status: &RestoreDrillStatus, every: Duration, created: Timestamp, uid: &str) -> Timestamp {
    if let Some(next) = &status.next_at {
        return next.0;
    }
    let jitter = every.mul_f64(fraction(uid));
    created
        .checked_add(SignedDuration::try_from(jitter).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(created)
}

/// A fraction in [0, 1) that is the same for the same uid.
fn fraction(uid: &str) -> f64 {
    (fnv1a(uid) % 10_000) as f64 / 10_000.0
}

/// FNV-1a: stable across processes and versions, unlike the standard library's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The temporary instance of an object's drills: one name per object (lower-case letters,
/// digits and hyphens, as RDS wants), so that a drill retried finds the one it started.
pub fn instance_name(uid: &str) -> String {
    format!("{}{:016x}", crate::aws::drill::DRILL_PREFIX, fnv1a(uid))
}

/// The status once a drill ended: its result, no drill running, the next one due an
/// interval after this one started.
pub fn ended(
    mut status: RestoreDrillStatus,
    every: Duration,
    result: DrillResult,
    next_at: Option<Timestamp>,
) -> RestoreDrillStatus {
    let started = result.started_at.0;
    if result.succeeded() {
        status.last_success_at = Some(result.finished_at.clone());
    }
    let next = next_at.unwrap_or_else(|| {
        started
            .checked_add(SignedDuration::try_from(every).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(started)
    });
    status.next_at = Some(Time(next));
    status.running = None;
    status.last = Some(result);
    status
}

/// What RestoreVerified says: verified while the last successful drill is younger than
/// twice the interval; before the first drill could have run, not yet known.
pub enum Verified {
    Yes(String),
    NotYet(String),
    No(String),
}

pub fn verified(
    status: Option<&RestoreDrillStatus>,
    every: Duration,
    created: Timestamp,
    now: Timestamp,
) -> Verified {
    let bound = SignedDuration::try_from(every * 2).unwrap_or(SignedDuration::MAX);
    let status = status.cloned().unwrap_or_default();
    let last = status.last.as_ref();
    let failed = last.filter(|l| !l.succeeded()).map(|l| l.message.clone());
    match &status.last_success_at {
        Some(at) if now.duration_since(at.0) <= bound => Verified::Yes(format!(
            "restored at {} ({})",
            at.0,
            last.map(|l| l.message.as_str()).unwrap_or_default()
        )),
        Some(at) => Verified::No(format!(
            "the last successful restore drill was at {}, more than twice the interval ago{}",
            at.0,
            failed
                .map(|f| format!("; the last drill failed: {f}"))
                .unwrap_or_default()
        )),
        None if now.duration_since(created) <= bound => Verified::NotYet(match failed {
            Some(f) => format!("no drill has succeeded yet; the last failed: {f}"),
            None => "no restore drill has run yet".to_string(),
        }),
        None => Verified::No(match failed {
            Some(f) => format!("no restore drill has succeeded; the last failed: {f}"),
            None => "no restore drill has run".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    #[test]
    fn the_first_drill_is_spread_over_the_first_interval_and_the_same_for_one_object() {
        let created = at("2026-12-01T00:00:00Z");
        let status = RestoreDrillStatus::default();
        let a = due_at(&status, WEEK, created, "uid-a");
        let b = due_at(&status, WEEK, created, "uid-b");
        assert_ne!(a, b);
        for d in [a, b] {
            assert!(d >= created && d < created.checked_add(SignedDuration::from_hours(168)).expect("t"));
        }
        assert_eq!(a, due_at(&status, WEEK, created, "uid-a"));
    }

    #[test]
    fn instance_names_are_valid_rds_identifiers_and_one_per_object() {
        let name = instance_name("0b1c2d3e-uid");
        assert!(name.len() <= 63 && name.starts_with("bw-drill-"));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(!name.contains("--") && !name.ends_with('-'));
        assert_eq!(name, instance_name("0b1c2d3e-uid"));
        assert_ne!(name, instance_name("another"));
    }

    fn result(ok: bool, started: &str, finished: &str) -> DrillResult {
        DrillResult {
            result: if ok { "Succeeded" } else { "Failed" }.into(),
            message: "m".into(),
            started_at: Time(at(started)),
            finished_at: Time(at(finished)),
            duration_seconds: Some(60),
            recovery_point_age_seconds: Some(300),
        }
    }

    #[test]
    fn a_drill_ended_sets_the_next_one_an_interval_after_its_start() {
        let s = ended(
            RestoreDrillStatus::default(),
            WEEK,
            result(true, "2026-12-01T10:00:00Z", "2026-12-01T10:20:00Z"),
            None,
        );
        assert_eq!(s.next_at.as_ref().map(|t| t.0), Some(at("2026-12-08T10:00:00Z")));
        assert_eq!(
            s.last_success_at.as_ref().map(|t| t.0),
            Some(at("2026-12-01T10:20:00Z"))
        );
        let failed = ended(
            s,
            WEEK,
            result(false, "2026-12-08T10:00:00Z", "2026-12-08T10:05:00Z"),
            None,
        );
        assert_eq!(
            failed.last_success_at.map(|t| t.0),
            Some(at("2026-12-01T10:20:00Z")),
            "a failure keeps the last success"
        );
    }

    #[test]
    fn verified_until_twice_the_interval_after_the_last_success() {
        let created = at("2026-11-01T00:00:00Z");
        let s = ended(
            RestoreDrillStatus::default(),
            WEEK,
            result(true, "2026-12-01T10:00:00Z", "2026-12-01T10:20:00Z"),
            None,
        );
        assert!(matches!(
            verified(Some(&s), WEEK, created, at("2026-12-15T10:20:00Z")),
            Verified::Yes(_)
        ));
        assert!(matches!(
            verified(Some(&s), WEEK, created, at("2026-12-15T10:21:00Z")),
            Verified::No(_)
        ));
        let young = at("2026-12-10T00:00:00Z");
        assert!(matches!(
            verified(None, WEEK, young, at("2026-12-11T00:00:00Z")),
            Verified::NotYet(_)
        ));
        assert!(matches!(
            verified(None, WEEK, created, at("2026-12-11T00:00:00Z")),
            Verified::No(_)
        ));
    }
}
