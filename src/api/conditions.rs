//! Status conditions (`metav1.Condition`) for both kinds: the condition types and reasons
//! as enums, and the one helper that sets a condition with kstatus/Flux semantics.

use k8s_openapi::jiff::Timestamp;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub use crate::word::Word;

use crate::policy::{database::DatabaseCheck, repository::RepositoryCheck, trail::TrailCheck};

/// Declares a fieldless enum whose variants are their own wire names (CamelCase), with `ALL`
/// in declaration order, `as_str` and `parse`: one declaration, no hand-kept lists.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}
pub(crate) use wire_enum;

/// Every condition type either kind reports: the three kstatus ones and each kind's checks,
/// which its policy module declares (`DatabaseCheck`, `RepositoryCheck`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The summary: every check passes.
    Ready,
    /// Work toward the desired state is in progress (kstatus).
    Reconciling,
    /// The controller cannot make progress without a human (kstatus).
    Stalled,
    Database(DatabaseCheck),
    Repository(RepositoryCheck),
    Trail(TrailCheck),
    /// A restore drill proved the backups restore, recently enough (only with
    /// `spec.restoreDrill`, for databases and repositories).
    RestoreVerified,
}

impl From<DatabaseCheck> for ConditionType {
    fn from(check: DatabaseCheck) -> Self {
        Self::Database(check)
    }
}

impl From<RepositoryCheck> for ConditionType {
    fn from(check: RepositoryCheck) -> Self {
        Self::Repository(check)
    }
}

impl From<TrailCheck> for ConditionType {
    fn from(check: TrailCheck) -> Self {
        Self::Trail(check)
    }
}

impl ConditionType {
    pub const DATABASE_CHECKS: [Self; DatabaseCheck::ALL.len()] = {
        let mut all = [Self::Ready; DatabaseCheck::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::Database(DatabaseCheck::ALL[i]);
            i += 1;
        }
        all
    };

    pub const REPOSITORY_CHECKS: [Self; RepositoryCheck::ALL.len()] = {
        let mut all = [Self::Ready; RepositoryCheck::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::Repository(RepositoryCheck::ALL[i]);
            i += 1;
        }
        all
    };

    pub const TRAIL_CHECKS: [Self; TrailCheck::ALL.len()] = {
        let mut all = [Self::Ready; TrailCheck::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::Trail(TrailCheck::ALL[i]);
            i += 1;
        }
        all
    };

    /// Every kind's checks.
    pub fn all_checks() -> impl Iterator<Item = Self> {
        Self::DATABASE_CHECKS
            .into_iter()
            .chain(Self::REPOSITORY_CHECKS)
            .chain(Self::TRAIL_CHECKS)
            .chain([Self::RestoreVerified])
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
            Self::Database(check) => check.as_str(),
            Self::Repository(check) => check.as_str(),
            Self::Trail(check) => check.as_str(),
            Self::RestoreVerified => "RestoreVerified",
        }
    }

    /// The condition type named `text` (as status and `notifiedDrift` store it).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Ready" => Some(Self::Ready),
            "Reconciling" => Some(Self::Reconciling),
            "Stalled" => Some(Self::Stalled),
            "RestoreVerified" => Some(Self::RestoreVerified),
            _ => DatabaseCheck::parse(text)
                .map(Self::Database)
                .or_else(|| RepositoryCheck::parse(text).map(Self::Repository))
                .or_else(|| TrailCheck::parse(text).map(Self::Trail)),
        }
    }
}

wire_enum! {
    /// Why a condition has its status; CamelCase on the wire, as API conventions ask.
    pub enum Reason {
        /// The check passes.
        Compliant,
        /// The check fails and Enforce would fix it.
        DriftDetected,
        /// Not evaluated: an earlier fact is missing (no replica yet, no workflow file yet).
        NotYetChecked,
        /// An action was taken and its effect is not visible yet.
        ActionPending,
        /// Audit mode: the drift is reported, nothing is changed.
        AuditOnly,
        /// The resource cannot comply by its nature (Aurora member, read replica, ...).
        Unsupported,
        /// AWS Backup manages the instance's backups; RDS refuses retention changes.
        ManagedByAwsBackup,
        /// The instance exists but is not `available`: act once it is.
        InstanceNotAvailable,
        /// The referenced RDS instance does not exist.
        InstanceNotFound,
        /// The referenced KMS key does not exist.
        KeyNotFound,
        /// The KMS key exists but cannot serve (disabled, asymmetric, wrong region, source key).
        KeyNotUsable,
        /// The KMS key is not the replica's own: AWS managed, or it encrypts another source's backups.
        KeyNotDedicated,
        /// The referenced GitHub repository does not exist or is not visible to the token.
        RepositoryNotFound,
        /// The GitHub repository is archived (read only).
        RepositoryArchived,
        /// Credentials lack a permission; the message says which.
        AccessDenied,
        /// The backups are older than the freshness threshold.
        Stale,
        /// A pull request with the fix is open and waits for review.
        PullRequestOpen,
        /// All checks pass.
        AllChecksPassed,
        /// At least one check fails.
        ChecksFailing,
        /// Reconciling: work in progress.
        Progressing,
        /// Nothing blocks progress.
        NotStalled,
        /// An external API failed; retried with backoff.
        ApiError,
        /// The destination region already holds as many replications as RDS allows.
        QuotaExceeded,
        /// The fix needs stopping and restarting replication, which the spec does not allow.
        RestartRequired,
        /// Nothing to do.
        Idle,
        /// The object's spec cannot be read (the message names the field); edit it.
        InvalidSpec,
        /// backup-warden failed on this object (a bug); retried with backoff.
        InternalError,
        /// AWS or GitHub could not be read (a timeout, an outage): the checks are unknown until it can.
        ObservationFailed,
        /// The namespace may not use the AWS role or GitHub repository the spec names.
        NotAllowed,
        /// Another, older object manages the same RDS instance or repository.
        Conflict,
        /// The AWS endpoint of the region cannot be reached: a region that does not exist, is
        /// not enabled for the account, or a network that blocks it.
        RegionUnreachable,
        /// A pull request with the fix waits for a person to review and merge it: nothing
        /// else will change until then (`Ready` and `Stalled`).
        AwaitingReview,
        /// The controller is not configured for this kind (no GitHub credentials): nothing is
        /// checked until it is.
        CredentialsMissing,
        /// `spec.suspend` is true: nothing is observed or changed (`Reconciling`).
        Suspended,
        /// The referenced CloudTrail trail does not exist in its home region.
        TrailNotFound,
        /// The last restore drill failed, or none succeeded within twice its interval
        /// (`RestoreVerified`).
        DrillFailed,
        /// No restore drill has run yet (`RestoreVerified` Unknown).
        DrillNotRunYet,
        /// Drift backup-warden does not fix: the message says what a person must change.
        ManualFixRequired,
        /// CloudTrail reports an error delivering log files (bucket policy, KMS key).
        DeliveryFailed,
        /// A coverage: every resource in scope is declared or exempt.
        Covered,
        /// A coverage: some resource in scope has no object and no exemption.
        Uncovered,
        // Event reasons: transitions and the actions taken.
        /// A check that failed passes again.
        DriftResolved,
        RetentionRaised,
        ReplicaKeyCreated,
        ReplicationStarted,
        ReplicationStopped,
        PullRequestOpened,
        WorkflowCommitted,
        WorkflowEnabled,
        LifecycleRuleAdded,
        LoggingStarted,
        TrailUpdated,
        LifecycleRaised,
        LogRetentionRaised,
        /// A restore drill restored and verified the backups.
        DrillSucceeded,
        /// A restore drill was stopped by a restart of the controller; its instance deleted.
        DrillInterrupted,
        /// An action was refused or failed; the event's note says why.
        ActionFailed,
    }
}

/// `metav1.Condition.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(ok: bool) -> Self {
        if ok { Self::True } else { Self::False }
    }
}

/// `metav1.Condition`, as the status of both kinds holds it. The object store keeps one
/// status per object, ten conditions each, so every field is as small as its JSON allows:
/// type, status and reason are [`Word`]s (no allocation), the time is whole seconds, the
/// message has no spare capacity. 88 bytes, where k8s-openapi's `Condition` is 128.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: Word,
    pub status: Word,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub last_transition_time: TransitionTime,
    pub reason: Word,
    pub message: Box<str>,
}

/// `metav1.Time` as conditions carry it: RFC 3339 to the second, kept as seconds since the
/// epoch (8 bytes, where a `Timestamp` is 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransitionTime(i64);

impl TransitionTime {
    /// `t` without its fraction of a second, as the API server stores it.
    pub fn at(t: Timestamp) -> Self {
        Self(t.as_second())
    }

    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_second(self.0).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl Serialize for TransitionTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.timestamp())
    }
}

impl<'de> Deserialize<'de> for TransitionTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse::<Timestamp>()
            .map(Self::at)
            .map_err(serde::de::Error::custom)
    }
}

/// Sets one condition in place. Always records `observed_generation`; moves
/// `lastTransitionTime` only when status, reason or message change, so the time says
/// when the state last changed, not when it was last looked at. Returns whether
/// anything besides `observedGeneration` changed.
///
/// The time is kept to whole seconds, as the API server stores it, so a status read back
/// compares equal to the one written.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: impl Into<ConditionType>,
    status: ConditionStatus,
    reason: Reason,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let message = message.into();
    let now = TransitionTime::at(now);
    let type_ = type_.into();
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(existing) => {
            existing.observed_generation = observed_generation;
            let same = existing.status == status.as_str()
                && existing.reason == reason.as_str()
                && *existing.message == *message;
            if !same {
                existing.status = status.into();
                existing.reason = reason.into();
                existing.message = message.into_boxed_str();
                existing.last_transition_time = now;
            }
            !same
        }
        None => {
            conditions.push(Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into_boxed_str(),
                observed_generation,
                last_transition_time: now,
            });
            true
        }
    }
}

/// Drops sub-second precision: `metav1.Time` is serialized with whole seconds.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Looks up a condition by type.
pub fn find_condition(conditions: &[Condition], type_: impl Into<ConditionType>) -> Option<&Condition> {
    let type_ = type_.into();
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Schema of `status.conditions`: a list-map keyed by `type`, so server-side apply merges
/// conditions by type instead of replacing the list.
pub(crate) fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    // The schema is metav1.Condition's own, which this type reads and writes.
    let item = generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn first_set_adds_the_condition_with_the_given_time() {
        let mut conditions = Vec::new();
        let changed = set_condition(
            &mut conditions,
            ConditionType::Ready,
            ConditionStatus::False,
            Reason::DriftDetected,
            "retention is 1 day",
            Some(3),
            at(100),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        let c = &conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Ready", "False", "DriftDetected")
        );
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, TransitionTime::at(at(100)));
    }

    #[test]
    fn same_state_keeps_transition_time_but_updates_generation() {
        let mut conditions = Vec::new();
        let set = |conditions: &mut Vec<Condition>, generation, secs| {
            set_condition(
                conditions,
                ConditionType::Ready,
                ConditionStatus::True,
                Reason::AllChecksPassed,
                "ok",
                Some(generation),
                at(secs),
            )
        };
        set(&mut conditions, 1, 100);
        let changed = set(&mut conditions, 2, 500);
        assert!(!changed);
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, TransitionTime::at(at(100)));
    }

    #[test]
    fn transition_time_is_kept_to_whole_seconds() {
        let mut conditions = Vec::new();
        let precise = Timestamp::new(100, 123_456_789).expect("valid timestamp");
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            ConditionStatus::True,
            Reason::AllChecksPassed,
            "",
            None,
            precise,
        );
        assert_eq!(conditions[0].last_transition_time, TransitionTime::at(at(100)));
    }

    #[test]
    fn status_reason_or_message_change_moves_transition_time() {
        let cases = [
            (ConditionStatus::False, Reason::Compliant, "ok"),
            (ConditionStatus::True, Reason::ActionPending, "ok"),
            (ConditionStatus::True, Reason::Compliant, "retention is 7 days"),
        ];
        for (status, reason, message) in cases {
            let mut conditions = Vec::new();
            set_condition(
                &mut conditions,
                DatabaseCheck::RetentionCompliant,
                ConditionStatus::True,
                Reason::Compliant,
                "ok",
                Some(1),
                at(100),
            );
            let changed = set_condition(
                &mut conditions,
                DatabaseCheck::RetentionCompliant,
                status,
                reason,
                message,
                Some(1),
                at(200),
            );
            assert!(changed, "{status:?} {reason:?} {message}");
            assert_eq!(conditions[0].last_transition_time, TransitionTime::at(at(200)));
            assert_eq!(conditions[0].status, status.as_str());
            assert_eq!(conditions[0].reason, reason.as_str());
            assert_eq!(&*conditions[0].message, message);
        }
    }

    #[test]
    fn conditions_of_other_types_are_left_alone() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            ConditionStatus::True,
            Reason::AllChecksPassed,
            "",
            Some(1),
            at(1),
        );
        set_condition(
            &mut conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            Reason::NotStalled,
            "",
            Some(1),
            at(2),
        );
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            ConditionStatus::False,
            Reason::ChecksFailing,
            "x",
            Some(2),
            at(3),
        );
        assert_eq!(conditions.len(), 2);
        let stalled = find_condition(&conditions, ConditionType::Stalled).expect("stalled");
        assert_eq!(stalled.observed_generation, Some(1));
        assert_eq!(stalled.last_transition_time, TransitionTime::at(at(2)));
    }

    #[test]
    fn reasons_and_types_are_camel_case() {
        let camel = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_alphanumeric())
        };
        for t in ConditionType::all_checks() {
            assert!(camel(t.as_str()), "{}", t.as_str());
        }
        for r in [
            Reason::Compliant,
            Reason::DriftDetected,
            Reason::ManagedByAwsBackup,
            Reason::NotYetChecked,
        ] {
            assert!(camel(r.as_str()), "{}", r.as_str());
        }
    }

    #[test]
    fn a_condition_reads_and_writes_the_json_of_metav1_condition() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition as Metav1;
        let json = serde_json::json!({
            "type": "ReplicaKeyCompliant", "status": "False", "observedGeneration": 4,
            "lastTransitionTime": "2026-12-01T04:00:00Z", "reason": "SomeoneElsesReason",
            "message": "the key encrypts another source's backups",
        });
        let ours: Condition = serde_json::from_value(json.clone()).expect("ours reads it");
        let theirs: Metav1 = serde_json::from_value(json.clone()).expect("metav1 reads it");
        assert_eq!(serde_json::to_value(&ours).unwrap(), json);
        assert_eq!(serde_json::to_value(&theirs).unwrap(), json);

        // Another client may write an offset or a fraction: read as the same second, written
        // back in the API server's own form.
        for other in ["2026-12-01T05:00:00+01:00", "2026-12-01T04:00:00.75Z"] {
            let mut written = json.clone();
            written["lastTransitionTime"] = other.into();
            let ours: Condition = serde_json::from_value(written).expect("ours reads it");
            assert_eq!(serde_json::to_value(&ours).unwrap(), json, "{other}");
        }
        let mut bad = json.clone();
        bad["lastTransitionTime"] = "yesterday".into();
        assert!(serde_json::from_value::<Condition>(bad).is_err());
        // Ten per stored object: every byte here is ten there.
        assert_eq!(std::mem::size_of::<Condition>(), 88);
    }
}
