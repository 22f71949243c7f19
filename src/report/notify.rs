//! When to tell people: one message when an object goes into drift, one when it is
//! resolved, nothing on a reconcile that changed nothing. What was notified is kept in the
//! object's status, so a restarted controller neither repeats nor loses a message. Pure.

use crate::{
    api::ConditionType,
    policy::{Finding, Verdict},
    report::slack::{CheckLine, Notification, Transition},
};

/// What changed since the last message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// These checks went into drift (and are still failing after this reconcile).
    Drift(Vec<ConditionType>),
    /// Every check passes again; these were the ones notified as drifting.
    Resolved(Vec<ConditionType>),
    /// These checks drifted and were fixed within this reconcile.
    Healed(Vec<ConditionType>),
}

fn failing(findings: &[Finding]) -> Vec<ConditionType> {
    findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Drift | Verdict::Blocked | Verdict::Pending))
        .map(|f| f.check)
        .collect()
}

/// What `status.notifiedDrift` holds, read (names no longer known are dropped: a check
/// removed in an upgrade is not announced as resolved)...
pub fn parse_notified(stored: &[String]) -> Vec<ConditionType> {
    stored
        .iter()
        .filter_map(|name| ConditionType::parse(name))
        .collect()
}

/// ...and written.
pub fn store_notified(checks: &[ConditionType]) -> Vec<String> {
    checks.iter().map(|check| check.as_str().to_string()).collect()
}

/// Decides the message for one reconcile. `notified` is what status says was last notified
/// as drifting; `found` are the findings before acting, `after` those after acting. Returns
/// the message to send, if any, and what status records as notified from now on.
pub fn decide(
    notified: &[ConditionType],
    found: &[Finding],
    after: &[Finding],
) -> (Option<Change>, Vec<ConditionType>) {
    let compliant = after.iter().all(Finding::is_pass);
    if compliant {
        return match (notified.is_empty(), failing(found)) {
            (false, _) => (Some(Change::Resolved(notified.to_vec())), Vec::new()),
            (true, healed) if !healed.is_empty() => (Some(Change::Healed(healed)), Vec::new()),
            _ => (None, Vec::new()),
        };
    }
    let mut drifting = failing(found);
    for check in failing(after) {
        if !drifting.contains(&check) {
            drifting.push(check);
        }
    }
    let new: Vec<ConditionType> = drifting.into_iter().filter(|c| !notified.contains(c)).collect();
    if new.is_empty() {
        return (None, notified.to_vec());
    }
    let mut state = notified.to_vec();
    state.extend(new.iter().copied());
    (Some(Change::Drift(new)), state)
}

/// The Slack notification for a change of one object. `desired` says what the policy
/// wants of a check; the observed side is the finding's message.
pub fn notification(
    kind: &'static str,
    namespace: &str,
    name: &str,
    change: &Change,
    findings: &[&[Finding]],
    desired: impl Fn(ConditionType) -> String,
    link: Option<(String, String)>,
) -> Notification {
    let (transition, checks) = match change {
        Change::Drift(checks) => (Transition::Drift, checks),
        Change::Resolved(checks) => (Transition::Resolved, checks),
        Change::Healed(checks) => (Transition::Healed, checks),
    };
    let message = |check: ConditionType, passing: bool| {
        findings
            .iter()
            .flat_map(|list| list.iter())
            .find(|f| f.check == check && f.is_pass() == passing)
            .map(|f| f.message.clone())
            .unwrap_or_default()
    };
    // Healed: what was found, then what is now (nobody was told of the drift).
    let observed = |check: ConditionType| match transition {
        Transition::Drift => message(check, false),
        Transition::Resolved => message(check, true),
        Transition::Healed => format!("{}; fixed, now: {}", message(check, false), message(check, true)),
    };
    Notification {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        transition,
        checks: checks
            .iter()
            .map(|&check| CheckLine {
                check: check.as_str().to_string(),
                desired: desired(check),
                observed: observed(check),
            })
            .collect(),
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DatabaseCheck, Reason};

    fn pass(check: DatabaseCheck) -> Finding {
        Finding::pass(check, "ok")
    }

    fn drift(check: DatabaseCheck) -> Finding {
        Finding::new(check, Verdict::Drift, Reason::DriftDetected, "drift")
    }

    fn names(checks: &[DatabaseCheck]) -> Vec<ConditionType> {
        checks.iter().map(|&c| c.into()).collect()
    }

    const RETENTION: DatabaseCheck = DatabaseCheck::RetentionCompliant;
    const REPLICATION: DatabaseCheck = DatabaseCheck::ReplicationActive;

    #[test]
    fn notified_drift_is_parsed_at_the_status_boundary() {
        let stored = vec!["RetentionCompliant".to_string(), "NoSuchCheck".to_string()];
        let parsed = parse_notified(&stored);
        assert_eq!(parsed, names(&[RETENTION]), "an unknown name is dropped");
        assert_eq!(store_notified(&parsed), ["RetentionCompliant"]);
    }

    #[test]
    fn drift_is_told_once_and_resolution_once() {
        let drifting = [drift(RETENTION), drift(REPLICATION)];
        let (change, state) = decide(&[], &drifting, &drifting);
        assert_eq!(
            change,
            Some(Change::Drift(names(&[RETENTION, REPLICATION]))),
            "checks drifting together: one message"
        );

        for _ in 0..10 {
            let (again, same) = decide(&state, &drifting, &drifting);
            assert_eq!((again, &same), (None, &state), "nothing new, nothing sent");
        }

        let fixed = [pass(RETENTION), pass(REPLICATION)];
        let (change, state) = decide(&state, &fixed, &fixed);
        assert_eq!(change, Some(Change::Resolved(names(&[RETENTION, REPLICATION]))));
        assert!(state.is_empty());
        assert_eq!(decide(&state, &fixed, &fixed).0, None, "compliant stays quiet");
    }

    #[test]
    fn a_new_check_drifting_later_is_told_alone() {
        let (_, state) = decide(
            &[],
            &[drift(RETENTION), pass(REPLICATION)],
            &[drift(RETENTION), pass(REPLICATION)],
        );
        let both = [drift(RETENTION), drift(REPLICATION)];
        let (change, state) = decide(&state, &both, &both);
        assert_eq!(change, Some(Change::Drift(names(&[REPLICATION]))));
        assert_eq!(state, names(&[RETENTION, REPLICATION]));
    }

    #[test]
    fn drift_fixed_within_one_reconcile_is_one_message() {
        let (change, state) = decide(
            &[],
            &[drift(RETENTION), pass(REPLICATION)],
            &[pass(RETENTION), pass(REPLICATION)],
        );
        assert_eq!(change, Some(Change::Healed(names(&[RETENTION]))));
        assert!(state.is_empty());
    }

    #[test]
    fn a_healed_drift_says_what_was_found_and_what_is_now() {
        let found = [Finding::new(
            RETENTION,
            Verdict::Drift,
            Reason::DriftDetected,
            "retention is 1 day",
        )];
        let after = [Finding::pass(RETENTION, "retention is 7 days")];
        let n = notification(
            "BackedUpDatabase",
            "ns",
            "db",
            &Change::Healed(names(&[RETENTION])),
            &[&after, &found],
            |_| "at least 7 days".into(),
            None,
        );
        assert_eq!(n.transition, Transition::Healed);
        assert_eq!(
            n.checks[0].observed,
            "retention is 1 day; fixed, now: retention is 7 days"
        );
    }

    #[test]
    fn unknown_checks_are_not_drift() {
        let unknown = [Finding::new(
            REPLICATION,
            Verdict::Unknown,
            Reason::NotYetChecked,
            "no replica yet",
        )];
        assert_eq!(decide(&[], &unknown, &unknown), (None, Vec::new()));
    }
}
