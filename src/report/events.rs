//! Kubernetes Events on transitions: a check going into drift, a drift resolved, an action
//! taken or failed. Never one per reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::recorder::Recorder;

use crate::api::{
    ConditionType, Reason,
    conditions::{Condition, find_condition},
};

/// What one reconcile saw change: checks that went into drift (`old` → `found`, what the
/// reconcile found before acting) and checks whose drift is gone (`old` or `found` → `now`,
/// after acting). Each event's action is its check, so that three drifting checks read as
/// three events in `kubectl describe`, not as one reason with three notes.
pub struct Transitions {
    pub drifted: Vec<Event>,
    pub resolved: Vec<Event>,
}

impl Transitions {
    /// The events in the order they happened: drift found, the actions it caused, drift
    /// resolved.
    pub fn around(self, actions: Vec<Event>) -> Vec<Event> {
        let mut events = self.drifted;
        events.extend(actions);
        events.extend(self.resolved);
        events
    }
}

pub fn transitions(
    old: &[Condition],
    found: &[Condition],
    now: &[Condition],
    checks: &[ConditionType],
) -> Transitions {
    let status =
        |conditions: &[Condition], check| find_condition(conditions, check).map(|c| c.status.clone());
    let mut events = Transitions {
        drifted: Vec::new(),
        resolved: Vec::new(),
    };
    for &check in checks {
        let (before, seen, after) = (status(old, check), status(found, check), status(now, check));
        let was_false = before.as_deref() == Some("False");
        if seen.as_deref() == Some("False")
            && !was_false
            && let Some(c) = find_condition(found, check)
        {
            events.drifted.push(Event {
                type_: EventType::Warning,
                reason: c.reason.to_string(),
                note: Some(format!("{}: {}", check.as_str(), c.message)),
                action: check.as_str().into(),
                secondary: None,
            });
        }
        if after.as_deref() == Some("True")
            && (was_false || seen.as_deref() == Some("False"))
            && let Some(c) = find_condition(now, check)
        {
            events.resolved.push(Event {
                type_: EventType::Normal,
                reason: Reason::DriftResolved.as_str().into(),
                note: Some(format!("{}: {}", check.as_str(), c.message)),
                action: check.as_str().into(),
                secondary: None,
            });
        }
    }
    events
}

/// An event for an action taken (`reason` such as RetentionRaised) or failed.
pub fn action(reason: Reason, note: String, failed: bool) -> Event {
    Event {
        type_: if failed {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: if failed {
            Reason::ActionFailed.as_str().into()
        } else {
            reason.as_str().into()
        },
        note: Some(note),
        action: reason.as_str().into(),
        secondary: None,
    }
}

/// Publishes events; a failure to publish is logged, never fails the reconcile.
pub async fn publish(recorder: &Recorder, reference: &ObjectReference, events: Vec<Event>) {
    for event in events {
        if let Err(error) = recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason = %event.reason, "could not publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DatabaseCheck;
    use crate::api::{ConditionStatus, Reason, set_condition};
    use k8s_openapi::jiff::Timestamp;

    fn conditions(status: ConditionStatus, reason: Reason) -> Vec<Condition> {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            DatabaseCheck::RetentionCompliant,
            status,
            reason,
            "retention is 1 day",
            None,
            Timestamp::now(),
        );
        c
    }

    #[test]
    fn drift_found_and_resolved_each_give_one_event() {
        let drift = conditions(ConditionStatus::False, Reason::DriftDetected);
        let ok = conditions(ConditionStatus::True, Reason::Compliant);
        let checks = [DatabaseCheck::RetentionCompliant.into()];

        let found = transitions(&[], &drift, &drift, &checks).around(Vec::new());
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].type_, found[0].reason.as_str()),
            (EventType::Warning, "DriftDetected")
        );

        assert_eq!(found[0].action, "RetentionCompliant", "the check is the action");
        assert!(
            transitions(&drift, &drift, &drift, &checks)
                .around(Vec::new())
                .is_empty(),
            "no event without a transition"
        );

        let resolved = transitions(&drift, &ok, &ok, &checks).around(Vec::new());
        assert_eq!(
            (resolved[0].type_, resolved[0].reason.as_str()),
            (EventType::Normal, "DriftResolved")
        );
        assert!(transitions(&ok, &ok, &ok, &checks).around(Vec::new()).is_empty());
        assert!(
            transitions(&[], &ok, &ok, &checks).around(Vec::new()).is_empty(),
            "a first pass is no news"
        );

        // Found and fixed in one reconcile: drift, the action, resolved.
        let fix = action(Reason::RetentionRaised, "raised".into(), false);
        let both = transitions(&[], &drift, &ok, &checks).around(vec![fix]);
        let reasons: Vec<&str> = both.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["DriftDetected", "RetentionRaised", "DriftResolved"]);
    }
}
