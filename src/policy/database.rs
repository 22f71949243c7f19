//! The RDS backup policy: what was observed of one DB instance → one finding per check,
//! and → the actions Enforce may take. Pure: the facts come in, nothing goes out.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::{Finding, Tense, Verdict, at, days, keys::key_id_of};
use crate::{
    api::{ConditionType, Mode, Reason, conditions::wire_enum, database::BackedUpDatabaseSpec},
    word::Word,
};

wire_enum! {
    /// The database checks, in the order status lists them.
    pub enum DatabaseCheck {
        /// Automated backups are on (retention above 0).
        BackupsEnabled,
        /// The retention is at least the spec's and the policy's floor.
        RetentionCompliant,
        /// Automated backups replicate to the destination region.
        ReplicationActive,
        /// The replica is encrypted with an enabled key of its own in the destination.
        ReplicaKeyCompliant,
        /// The replica keeps backups at least as long as the spec and the policy ask.
        ReplicaRetentionCompliant,
        /// The instance is restorable recently and has a recent automated snapshot.
        BackupsFresh,
        /// The replica is restorable recently.
        ReplicaFresh,
    }
}
use DatabaseCheck::*;

/// Controller-wide policy settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The retention floor in days (the company policy says 7).
    pub min_retention_days: i32,
    /// Plan nothing that writes, whatever the object's mode.
    pub audit_only: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_retention_days: 7,
            audit_only: false,
        }
    }
}

/// RDS keeps automated backups at most 35 days.
pub const MAX_RETENTION_DAYS: i32 = 35;

/// The source DB instance as DescribeDBInstances shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceFacts {
    pub identifier: String,
    pub arn: String,
    pub resource_id: Option<String>,
    pub region: Word,
    /// `DBInstanceStatus`, such as available, modifying, backing-up.
    pub status: Word,
    pub engine: Word,
    pub retention_days: i32,
    /// `PendingModifiedValues.BackupRetentionPeriod`: waits for the maintenance window.
    pub pending_retention_days: Option<i32>,
    pub latest_restorable_time: Option<Timestamp>,
    /// Set for Aurora and Multi-AZ DB cluster members.
    pub cluster_identifier: Option<String>,
    /// Set for read replicas.
    pub read_replica_source: Option<String>,
    /// Set when AWS Backup manages the instance's backups.
    pub aws_backup_recovery_point_arn: Option<String>,
    /// The storage encryption key (an ARN).
    pub kms_key_id: Option<String>,
    /// ARNs from `DBInstanceAutomatedBackupsReplications`.
    pub replications: Vec<String>,
    /// The tags a coverage looks at (its selectors' and its exemption tag); the others are
    /// not kept.
    pub tags: crate::policy::keys::Tags,
}

impl InstanceFacts {
    /// The same facts but for the latest restorable time, which moves every few minutes.
    /// (Compared by reference: a whole-region read compares every instance.)
    pub fn same_but_times(&self, other: &Self) -> bool {
        self.untimed() == other.untimed()
    }

    /// Every field but the restorable time. Each is named, so that a new field must be
    /// added here to compile.
    #[allow(clippy::type_complexity)]
    fn untimed(
        &self,
    ) -> (
        (&str, &str, &Option<String>, &str, &str, &str, i32),
        (
            &Option<i32>,
            &Option<String>,
            &Option<String>,
            &Option<String>,
            &Option<String>,
            &[String],
            &crate::policy::keys::Tags,
        ),
    ) {
        let Self {
            identifier,
            arn,
            resource_id,
            region,
            status,
            engine,
            retention_days,
            pending_retention_days,
            latest_restorable_time: _,
            cluster_identifier,
            read_replica_source,
            aws_backup_recovery_point_arn,
            kms_key_id,
            replications,
            tags,
        } = self;
        (
            (
                identifier,
                arn,
                resource_id,
                region,
                status,
                engine,
                *retention_days,
            ),
            (
                pending_retention_days,
                cluster_identifier,
                read_replica_source,
                aws_backup_recovery_point_arn,
                kms_key_id,
                replications,
                tags,
            ),
        )
    }
}

/// Replicated automated backups in the destination region
/// (DescribeDBInstanceAutomatedBackups there).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaFacts {
    pub arn: String,
    /// The source instance's ARN.
    pub source_arn: String,
    pub dbi_resource_id: Option<String>,
    /// `replicating`, `pending`, `retained`, ...
    pub status: Word,
    pub retention_days: Option<i32>,
    pub kms_key_arn: Option<String>,
    /// `RestoreWindow.LatestTime`.
    pub latest_time: Option<Timestamp>,
}

impl ReplicaFacts {
    /// The same facts but for the restorable time, which moves every few minutes.
    pub fn same_but_times(&self, other: &Self) -> bool {
        self.untimed() == other.untimed()
    }

    /// Every field but the restorable time, each named as for instances.
    #[allow(clippy::type_complexity)]
    fn untimed(&self) -> (&str, &str, &Option<String>, &str, &Option<i32>, &Option<String>) {
        let Self {
            arn,
            source_arn,
            dbi_resource_id,
            status,
            retention_days,
            kms_key_arn,
            latest_time: _,
        } = self;
        (
            arn,
            source_arn,
            dbi_resource_id,
            status,
            retention_days,
            kms_key_arn,
        )
    }

    fn status_is(&self, status: &str) -> bool {
        self.status.eq_ignore_ascii_case(status)
    }

    /// Replicating now or about to (a start was accepted).
    pub fn is_active(&self) -> bool {
        self.status_is("replicating") || self.status_is("pending")
    }
}

/// A KMS key as DescribeKey shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyFacts {
    pub arn: String,
    pub key_id: String,
    /// `KeyState`: Enabled, Disabled, PendingDeletion, ...
    pub state: Word,
    /// `KeySpec`: SYMMETRIC_DEFAULT for keys RDS can use.
    pub key_spec: Word,
    pub key_usage: Word,
    /// `KeyManager`: CUSTOMER, or AWS for the AWS managed keys (`alias/aws/rds`, ...).
    pub key_manager: Word,
    /// `CreationDate`.
    pub created: Option<Timestamp>,
}

impl KeyFacts {
    pub fn region(&self) -> Option<&str> {
        self.arn.split(':').nth(3)
    }
}

/// What looking up a key found.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyLookup {
    Found(KeyFacts),
    /// DescribeKey said NotFound for this reference.
    NotFound(String),
    /// `create: true` and the per-database alias does not exist yet.
    AliasMissing(String),
}

/// Everything evaluate needs about one database, gathered by observe.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseObservation {
    pub instance: Option<InstanceFacts>,
    /// Creation time of the newest automated snapshot of the instance.
    pub newest_snapshot: Option<Timestamp>,
    /// The replication of this source in the destination region (active first, else the newest).
    pub replica: Option<ReplicaFacts>,
    /// The key the existing replica is encrypted with.
    pub replica_key: Option<KeyLookup>,
    /// The key the spec asks for (the given ARN, or the per-database alias).
    pub desired_key: KeyLookup,
    /// Whether DescribeSourceRegions lists the source region for the destination.
    pub source_region_supported: bool,
    /// Automated backups in the destination, of other sources, encrypted with the desired key
    /// or the replica's key: a replica key is dedicated to one source.
    pub other_key_users: Vec<ReplicaFacts>,
    /// Set while the destination is known to hold as many replications as RDS allows: the
    /// number of active replications there when RDS last refused a start.
    pub quota_exhausted_at: Option<usize>,
    pub now: Timestamp,
}

/// The alias of the key backup-warden creates for one database's replica.
pub fn replica_key_alias(source_region: &str, identifier: &str) -> String {
    format!("alias/backup-warden/{source_region}/{identifier}")
}

/// The retention a check requires: the spec's value raised to the policy floor.
pub fn required_retention(spec_days: i32, policy: &Policy) -> i32 {
    spec_days
        .max(policy.min_retention_days)
        .clamp(1, MAX_RETENTION_DAYS)
}

/// The sources of the automated backups in `others` that `key` encrypts.
fn other_users<'a>(key: &KeyFacts, others: &'a [ReplicaFacts]) -> Vec<&'a str> {
    let mut users: Vec<&str> = others
        .iter()
        .filter(|b| {
            b.kms_key_arn
                .as_deref()
                .is_some_and(|k| key_id_of(k) == key.key_id)
        })
        .map(|b| b.source_arn.as_str())
        .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// Why a key cannot encrypt this replica, if it cannot: the reason and what to do.
fn key_problem(
    key: &KeyFacts,
    destination: &str,
    source_key: Option<&str>,
    others: &[ReplicaFacts],
) -> Option<(Reason, String)> {
    let unusable = |message: String| Some((Reason::KeyNotUsable, message));
    let region = key.region().unwrap_or("?");
    if region != destination {
        return unusable(format!(
            "KMS key {} is in {region}, not in the destination region {destination}",
            key.arn
        ));
    }
    if !key.state.eq_ignore_ascii_case("Enabled") {
        return unusable(format!(
            "KMS key {} is {}: enable it or name another key",
            key.arn, key.state
        ));
    }
    if !key.key_spec.is_empty() && key.key_spec != "SYMMETRIC_DEFAULT" {
        return unusable(format!(
            "KMS key {} is {} but RDS needs a symmetric key",
            key.arn, key.key_spec
        ));
    }
    if !key.key_usage.is_empty() && key.key_usage != "ENCRYPT_DECRYPT" {
        return unusable(format!(
            "KMS key {} has usage {}; RDS needs ENCRYPT_DECRYPT",
            key.arn, key.key_usage
        ));
    }
    // A multi-Region replica (mrk-...) of the source key has the same key id: the same key.
    if source_key.is_some_and(|s| key_id_of(s) == key.key_id) {
        return unusable(format!(
            "KMS key {} is the source instance's own key; the replica needs a key of its own",
            key.arn
        ));
    }
    if key.key_manager.eq_ignore_ascii_case("AWS") {
        return Some((
            Reason::KeyNotDedicated,
            format!(
                "KMS key {} is AWS managed (shared by every resource of the account that uses it); \
                 the replica needs a customer managed key of its own",
                key.arn
            ),
        ));
    }
    let users = other_users(key, others);
    if let Some(first) = users.first() {
        let more = match users.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return Some((
            Reason::KeyNotDedicated,
            format!(
                "KMS key {} already encrypts the automated backups of {first}{more} in {destination}; \
                 the replica needs a key of its own",
                key.arn
            ),
        ));
    }
    None
}

fn age(now: Timestamp, then: Timestamp) -> Duration {
    now.duration_since(then).unsigned_abs()
}

/// What the checks read, once the instance is known.
pub struct Facts<'a> {
    pub spec: &'a BackedUpDatabaseSpec,
    pub obs: &'a DatabaseObservation,
    pub policy: &'a Policy,
    pub instance: &'a InstanceFacts,
    /// The replication to the destination, if one runs.
    pub active: Option<&'a ReplicaFacts>,
}

impl<'a> Facts<'a> {
    fn new(
        spec: &'a BackedUpDatabaseSpec,
        obs: &'a DatabaseObservation,
        policy: &'a Policy,
        instance: &'a InstanceFacts,
    ) -> Self {
        let active = obs.replica.as_ref().filter(|r| r.is_active());
        Self {
            spec,
            obs,
            policy,
            instance,
            active,
        }
    }
}

/// What a check needs before it can be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The instance, with backups of its own (not a read replica).
    Instance,
    /// That too, and RDS able to replicate it to the destination.
    Replication,
}

/// One database check: how it is judged, what the policy wants of it (for people), and,
/// when one ModifyDBInstance fixes its drift, which change.
pub struct Check {
    pub check: DatabaseCheck,
    pub needs: Needs,
    pub evaluate: fn(&Facts) -> Finding,
    pub desired: fn(&BackedUpDatabaseSpec, &Policy) -> String,
    pub fix: Option<fn(&Facts) -> InstanceChange>,
}

/// What one ModifyDBInstance changes: a field per attribute a check fixes, `None` leaves it
/// as it is. The RDS adapter sends each field; `describe` says each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceChange {
    /// BackupRetentionPeriod: only ever raised.
    pub backup_retention_days: Option<i32>,
    /// ApplyImmediately: RDS then applies every other pending change of the instance too, so
    /// only when the spec asks for it.
    pub apply_immediately: bool,
}

impl InstanceChange {
    /// The instance's values of the fields this change sets, to say what it changes.
    fn before(&self, instance: &InstanceFacts) -> Self {
        Self {
            backup_retention_days: self.backup_retention_days.map(|_| instance.retention_days),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.backup_retention_days.is_none()
    }

    /// Both changes in one call (the higher of two retentions).
    fn merge(self, other: Self) -> Self {
        Self {
            backup_retention_days: self.backup_retention_days.max(other.backup_retention_days),
            apply_immediately: self.apply_immediately || other.apply_immediately,
        }
    }

    /// The change, read against the instance's values before it (`from`), for people.
    fn describe(&self, from: &Self, tense: Tense) -> String {
        let mut parts = Vec::new();
        if let Some(to) = self.backup_retention_days {
            // From 0 (backups off), RDS waits for the maintenance window unless told otherwise.
            parts.push(match from.backup_retention_days.unwrap_or_default() {
                0 if !self.apply_immediately => {
                    format!(
                        "{} automated backups ({}) at the next maintenance window",
                        tense.verb("enabled", "enable"),
                        days(to)
                    )
                }
                was => format!(
                    "{} backup retention from {} to {}",
                    tense.verb("raised", "raise"),
                    days(was),
                    days(to)
                ),
            });
        }
        parts.join(", ")
    }
}

/// Raise the retention to what the spec and the policy require.
// `..default()` keeps this literal as it is when InstanceChange gets a field.
#[allow(clippy::needless_update)]
fn raise_retention(f: &Facts) -> InstanceChange {
    let required = required_retention(f.spec.backups.retention_days, f.policy);
    InstanceChange {
        backup_retention_days: (required > f.instance.retention_days).then_some(required),
        apply_immediately: f.spec.backups.apply_immediately,
        ..InstanceChange::default()
    }
}

/// The database checks, in the order status lists them (that of `DatabaseCheck`).
pub const CHECKS: [Check; 7] = [
    Check {
        check: BackupsEnabled,
        needs: Needs::Instance,
        evaluate: |f| backups_enabled(f.spec, f.instance),
        desired: |_, _| "automated backups enabled".to_string(),
        fix: Some(raise_retention),
    },
    Check {
        check: RetentionCompliant,
        needs: Needs::Instance,
        evaluate: |f| retention(f.spec, f.instance, f.policy),
        desired: |spec, policy| {
            format!(
                "retention of at least {} days",
                required_retention(spec.backups.retention_days, policy)
            )
        },
        fix: Some(raise_retention),
    },
    Check {
        check: ReplicationActive,
        needs: Needs::Replication,
        evaluate: |f| replication_active(f.obs, f.instance, &f.spec.replication.destination_region),
        desired: |spec, _| {
            format!(
                "automated backups replicating to {}",
                spec.replication.destination_region
            )
        },
        fix: None,
    },
    Check {
        check: ReplicaKeyCompliant,
        needs: Needs::Replication,
        evaluate: |f| replica_key(f.spec, f.obs, f.instance, f.active),
        desired: |spec, _| {
            format!(
                "an enabled symmetric KMS key of the replica's own in {}",
                spec.replication.destination_region
            )
        },
        fix: None,
    },
    Check {
        check: ReplicaRetentionCompliant,
        needs: Needs::Replication,
        evaluate: |f| replica_retention(f.spec, f.active, f.policy),
        desired: |spec, policy| {
            format!(
                "replica retention of at least {} days",
                required_retention(spec.replication.retention_days, policy)
            )
        },
        fix: None,
    },
    Check {
        check: BackupsFresh,
        needs: Needs::Instance,
        evaluate: |f| backups_fresh(f.spec, f.obs, f.instance),
        desired: |spec, _| {
            format!(
                "restorable within {}, an automated snapshot within {}",
                spec.freshness.max_restore_lag, spec.freshness.max_snapshot_age
            )
        },
        fix: None,
    },
    Check {
        check: ReplicaFresh,
        needs: Needs::Replication,
        evaluate: |f| replica_fresh(f.spec, f.obs, f.active),
        desired: |spec, _| format!("replica restorable within {}", spec.freshness.max_replica_lag),
        fix: None,
    },
];

/// What the policy wants of `check`, for people.
/// (Empty for another kind's check: status and notifications name only their own.)
pub fn desired(check: ConditionType, spec: &BackedUpDatabaseSpec, policy: &Policy) -> String {
    CHECKS
        .iter()
        .find(|c| ConditionType::from(c.check) == check)
        .map_or_else(String::new, |c| (c.desired)(spec, policy))
}

/// One finding per database check, in `CHECKS` order.
pub fn evaluate(spec: &BackedUpDatabaseSpec, obs: &DatabaseObservation, policy: &Policy) -> Vec<Finding> {
    let blocked = |reason: Reason, message: String| {
        CHECKS
            .iter()
            .map(|c| Finding::new(c.check, Verdict::Blocked, reason, message.clone()))
            .collect()
    };
    let Some(instance) = &obs.instance else {
        return blocked(
            Reason::InstanceNotFound,
            format!(
                "RDS instance {} not found in {}: check spec.instance.identifier and spec.instance.region",
                spec.instance.identifier, spec.instance.region
            ),
        );
    };
    if let Some(source) = &instance.read_replica_source {
        return blocked(
            Reason::Unsupported,
            format!(
                "{} is a read replica of {source}: it has no automated backups of its own; protect the source instead",
                instance.identifier
            ),
        );
    }
    let unsupported = replication_unsupported(spec, obs, instance);
    let facts = Facts::new(spec, obs, policy, instance);
    CHECKS
        .iter()
        .map(|c| match (c.needs, &unsupported) {
            (Needs::Replication, Some(message)) => {
                Finding::new(c.check, Verdict::Blocked, Reason::Unsupported, message.clone())
            }
            _ => (c.evaluate)(&facts),
        })
        .collect()
}

/// Why RDS cannot replicate this instance's automated backups to the destination, if so.
fn replication_unsupported(
    spec: &BackedUpDatabaseSpec,
    obs: &DatabaseObservation,
    instance: &InstanceFacts,
) -> Option<String> {
    let destination = &spec.replication.destination_region;
    if let Some(cluster) = &instance.cluster_identifier {
        Some(format!(
            "{} is a member of DB cluster {cluster}: RDS does not replicate automated backups of Aurora or Multi-AZ DB clusters",
            instance.identifier
        ))
    } else if !obs.source_region_supported {
        Some(format!(
            "RDS cannot replicate automated backups from {} to {destination}",
            instance.region
        ))
    } else {
        None
    }
}

fn backups_enabled(spec: &BackedUpDatabaseSpec, instance: &InstanceFacts) -> Finding {
    if instance.retention_days > 0 {
        return Finding::pass(BackupsEnabled, "automated backups are enabled");
    }
    if instance.pending_retention_days.is_some_and(|d| d > 0) {
        let when = if spec.backups.apply_immediately {
            "now"
        } else {
            "in the next maintenance window"
        };
        return Finding::new(
            BackupsEnabled,
            Verdict::Pending,
            Reason::ActionPending,
            format!("enabling automated backups is scheduled {when}"),
        );
    }
    if let Some(blocked) = not_ours_to_change(instance) {
        return Finding::new(
            BackupsEnabled,
            Verdict::Blocked,
            blocked.0,
            format!("automated backups are disabled; {}", blocked.1),
        );
    }
    Finding::new(
        BackupsEnabled,
        Verdict::Drift,
        Reason::DriftDetected,
        "automated backups are disabled (retention 0)",
    )
}

/// Retention that RDS will not let backup-warden change, and what to do instead.
fn not_ours_to_change(instance: &InstanceFacts) -> Option<(Reason, String)> {
    if let Some(point) = &instance.aws_backup_recovery_point_arn {
        return Some((
            Reason::ManagedByAwsBackup,
            format!(
                "AWS Backup manages this instance's backups (recovery point {point}): change the retention in the backup plan"
            ),
        ));
    }
    instance.cluster_identifier.as_ref().map(|cluster| {
        (
            Reason::Unsupported,
            format!("the retention belongs to DB cluster {cluster}: set it on the cluster"),
        )
    })
}

fn retention(spec: &BackedUpDatabaseSpec, instance: &InstanceFacts, policy: &Policy) -> Finding {
    let required = required_retention(spec.backups.retention_days, policy);
    let have = format!(
        "retention is {} (policy {})",
        days(instance.retention_days),
        days(required)
    );
    if instance.retention_days >= required {
        return Finding::pass(RetentionCompliant, have);
    }
    if instance.pending_retention_days.is_some_and(|d| d >= required) {
        return Finding::new(
            RetentionCompliant,
            Verdict::Pending,
            Reason::ActionPending,
            format!("{have}; {} pending", days(required)),
        );
    }
    if let Some((reason, what)) = not_ours_to_change(instance) {
        return Finding::new(
            RetentionCompliant,
            Verdict::Blocked,
            reason,
            format!("{have}; {what}"),
        );
    }
    Finding::new(RetentionCompliant, Verdict::Drift, Reason::DriftDetected, have)
}

fn backups_fresh(
    spec: &BackedUpDatabaseSpec,
    obs: &DatabaseObservation,
    instance: &InstanceFacts,
) -> Finding {
    if instance.retention_days == 0 {
        return Finding::new(
            BackupsFresh,
            Verdict::Drift,
            Reason::Stale,
            "no automated backups (retention 0)",
        );
    }
    let max_lag = spec.freshness.max_restore_lag.as_duration();
    let max_snapshot = spec.freshness.max_snapshot_age.as_duration();
    let Some(restorable) = instance.latest_restorable_time else {
        return Finding::new(
            BackupsFresh,
            Verdict::Drift,
            Reason::Stale,
            "the instance has no latest restorable time yet",
        );
    };
    let lag = age(obs.now, restorable);
    if lag > max_lag {
        return Finding::new(
            BackupsFresh,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "restorable only to {} (limit {})",
                at(restorable),
                spec.freshness.max_restore_lag
            ),
        );
    }
    let Some(snapshot) = obs.newest_snapshot else {
        return Finding::new(
            BackupsFresh,
            Verdict::Drift,
            Reason::Stale,
            "no automated snapshot yet",
        );
    };
    let snapshot_age = age(obs.now, snapshot);
    if snapshot_age > max_snapshot {
        return Finding::new(
            BackupsFresh,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "newest automated snapshot is from {} (limit {})",
                at(snapshot),
                spec.freshness.max_snapshot_age
            ),
        );
    }
    // The limits, not the ages: the message holds while the check does (ages are metrics).
    Finding::pass(
        BackupsFresh,
        format!(
            "restorable within {}; an automated snapshot within {}",
            spec.freshness.max_restore_lag, spec.freshness.max_snapshot_age
        ),
    )
}

/// ReplicationActive, ReplicaKeyCompliant, ReplicaRetentionCompliant, ReplicaFresh.
fn replication_active(obs: &DatabaseObservation, instance: &InstanceFacts, destination: &str) -> Finding {
    let active = obs.replica.as_ref().is_some_and(ReplicaFacts::is_active);
    // A key is made only for a replication that can start (an existing key may try again).
    if !active
        && let Some(count) = obs.quota_exhausted_at
        && !matches!(obs.desired_key, KeyLookup::Found(_))
    {
        return Finding::new(
            ReplicationActive,
            Verdict::Blocked,
            Reason::QuotaExceeded,
            format!(
                "no replication to {destination}: it holds as many automated-backup replications as the \
                 account's RDS quota allows ({count} active when RDS last refused a start); request an \
                 increase in Service Quotas; the replica key is created once replication can start"
            ),
        );
    }
    match &obs.replica {
        Some(r) if r.status_is("replicating") => {
            Finding::pass(ReplicationActive, format!("replicating to {destination}"))
        }
        Some(r) if r.status_is("pending") => Finding::new(
            ReplicationActive,
            Verdict::Pending,
            Reason::ActionPending,
            format!("replication to {destination} is starting"),
        ),
        Some(r) => Finding::new(
            ReplicationActive,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("replication to {destination} is stopped (status {})", r.status),
        ),
        None if instance.retention_days == 0 => Finding::new(
            ReplicationActive,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("no replication to {destination} (it starts once automated backups are enabled)"),
        ),
        None => Finding::new(
            ReplicationActive,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("no replication to {destination}"),
        ),
    }
}

fn replica_key(
    spec: &BackedUpDatabaseSpec,
    obs: &DatabaseObservation,
    instance: &InstanceFacts,
    active: Option<&ReplicaFacts>,
) -> Finding {
    let destination = &spec.replication.destination_region;
    let source_key = instance.kms_key_id.as_deref();
    let lookup = match (active, &obs.replica_key) {
        (Some(_), Some(in_use)) => in_use,
        _ => &obs.desired_key,
    };
    match lookup {
        KeyLookup::NotFound(reference) => Finding::new(
            ReplicaKeyCompliant,
            Verdict::Blocked,
            Reason::KeyNotFound,
            format!("KMS key {reference} not found in {destination}"),
        ),
        KeyLookup::AliasMissing(alias) => Finding::new(
            ReplicaKeyCompliant,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("no dedicated replica key yet ({alias} in {destination})"),
        ),
        KeyLookup::Found(key) => {
            if let Some((reason, problem)) = key_problem(key, destination, source_key, &obs.other_key_users) {
                // The replica runs under a key it shares, and the spec's key is fit: a restart fixes it.
                if reason == Reason::KeyNotDedicated
                    && active.is_some()
                    && let KeyLookup::Found(desired) = &obs.desired_key
                    && desired.key_id != key.key_id
                    && key_problem(desired, destination, source_key, &obs.other_key_users).is_none()
                {
                    let message = format!("{problem}; the spec's key is {}", desired.arn);
                    return restart_finding(spec, ReplicaKeyCompliant, message);
                }
                return Finding::new(ReplicaKeyCompliant, Verdict::Blocked, reason, problem);
            }
            let wanted = spec.replication.kms_key.arn.as_deref();
            if active.is_some() && wanted.is_some_and(|w| key_id_of(w) != key.key_id) {
                let message = format!(
                    "the replica is encrypted with {}, spec.replication.kmsKey.arn asks for {}",
                    key.arn,
                    wanted.unwrap_or_default()
                );
                return restart_finding(spec, ReplicaKeyCompliant, message);
            }
            let subject = if active.is_some() {
                "the replica is encrypted with"
            } else {
                "replica key ready:"
            };
            Finding::pass(ReplicaKeyCompliant, format!("{subject} {}", key.arn))
        }
    }
}

/// Drift that only a stop + start of replication fixes: Enforce acts only with the opt-in.
fn restart_finding(spec: &BackedUpDatabaseSpec, check: DatabaseCheck, message: String) -> Finding {
    if spec.replication.allow_replication_restart {
        Finding::new(
            check,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("{message}; replication will be restarted"),
        )
    } else {
        Finding::new(
            check,
            Verdict::Blocked,
            Reason::RestartRequired,
            format!(
                "{message}; fixing it restarts replication: set spec.replication.allowReplicationRestart: true"
            ),
        )
    }
}

fn replica_retention(spec: &BackedUpDatabaseSpec, active: Option<&ReplicaFacts>, policy: &Policy) -> Finding {
    let required = required_retention(spec.replication.retention_days, policy);
    let Some(replica) = active else {
        return Finding::new(
            ReplicaRetentionCompliant,
            Verdict::Unknown,
            Reason::NotYetChecked,
            "no replica yet",
        );
    };
    let have = replica.retention_days.unwrap_or(0);
    let message = format!("replica retention is {} (policy {})", days(have), days(required));
    if have >= required {
        Finding::pass(ReplicaRetentionCompliant, message)
    } else {
        restart_finding(spec, ReplicaRetentionCompliant, message)
    }
}

fn replica_fresh(
    spec: &BackedUpDatabaseSpec,
    obs: &DatabaseObservation,
    active: Option<&ReplicaFacts>,
) -> Finding {
    let Some(replica) = active else {
        return Finding::new(
            ReplicaFresh,
            Verdict::Unknown,
            Reason::NotYetChecked,
            "no replica yet",
        );
    };
    let Some(latest) = replica.latest_time else {
        return Finding::new(
            ReplicaFresh,
            Verdict::Drift,
            Reason::Stale,
            "the replica has no restorable time yet",
        );
    };
    let lag = age(obs.now, latest);
    if lag > spec.freshness.max_replica_lag.as_duration() {
        return Finding::new(
            ReplicaFresh,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "replica restorable only to {} (limit {})",
                at(latest),
                spec.freshness.max_replica_lag
            ),
        );
    }
    Finding::pass(
        ReplicaFresh,
        format!("replica restorable within {}", spec.freshness.max_replica_lag),
    )
}

/// Which key a replication start uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChoice {
    Arn(String),
    /// The key the preceding `CreateReplicaKey` made.
    Created,
}

/// A change Enforce makes. Each is safe to repeat: observe looks before acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbAction {
    /// ModifyDBInstance with `change`; `from` holds the instance's values of the changed
    /// fields before it.
    ModifyInstance {
        change: InstanceChange,
        from: InstanceChange,
    },
    /// A dedicated symmetric key in the destination region, under `alias`.
    CreateReplicaKey { alias: String },
    /// StopDBInstanceAutomatedBackupsReplication, only as the first half of an allowed restart.
    StopReplication,
    /// StartDBInstanceAutomatedBackupsReplication in the destination region.
    StartReplication { key: KeyChoice, retention_days: i32 },
}

impl DbAction {
    /// The checks this action fixes.
    pub fn fixes(&self) -> Vec<DatabaseCheck> {
        match self {
            Self::ModifyInstance { .. } => CHECKS
                .iter()
                .filter(|c| c.fix.is_some())
                .map(|c| c.check)
                .collect(),
            Self::CreateReplicaKey { .. } => vec![ReplicaKeyCompliant],
            Self::StopReplication => vec![ReplicaRetentionCompliant, ReplicaKeyCompliant],
            Self::StartReplication { .. } => {
                vec![ReplicationActive, ReplicaRetentionCompliant, ReplicaKeyCompliant]
            }
        }
    }

    /// What the action does (`Tense::Done`, for events and logs) or will do.
    pub fn describe(&self, spec: &BackedUpDatabaseSpec, tense: Tense) -> String {
        let destination = &spec.replication.destination_region;
        match self {
            Self::ModifyInstance { change, from } => change.describe(from, tense),
            Self::CreateReplicaKey { alias } => {
                format!(
                    "{} KMS key {alias} in {destination}",
                    tense.verb("created", "create")
                )
            }
            Self::StopReplication => format!(
                "{} replication to {destination} to restart it (replicated backups are kept)",
                tense.verb("stopped", "stop")
            ),
            Self::StartReplication { retention_days, .. } => format!(
                "{} replication to {destination} keeping {}",
                tense.verb("started", "start"),
                days(*retention_days)
            ),
        }
    }
}

/// The actions to take now, and why nothing (else) is done.
pub type Plan = super::Plan<DbAction>;

fn verdict_of(findings: &[Finding], check: DatabaseCheck) -> Option<Verdict> {
    findings
        .iter()
        .find(|f| f.check == check.into())
        .map(|f| f.verdict)
}

/// The actions Enforce takes for these findings. Audit (per object or controller-wide)
/// plans nothing.
pub fn plan(
    spec: &BackedUpDatabaseSpec,
    obs: &DatabaseObservation,
    findings: &[Finding],
    policy: &Policy,
) -> Plan {
    let drift = |check| verdict_of(findings, check) == Some(Verdict::Drift);
    let any_drift = findings
        .iter()
        .any(|f| f.verdict == Verdict::Drift && f.reason != Reason::Stale);
    // Audit: the findings are the report; nothing is under way.
    if spec.mode == Mode::Audit || policy.audit_only {
        return Plan::default();
    }
    let Some(instance) = &obs.instance else {
        return Plan::default();
    };
    if !instance.status.eq_ignore_ascii_case("available") {
        let holding = any_drift.then(|| {
            (
                Reason::InstanceNotAvailable,
                format!("instance is {}; acting once it is available", instance.status),
            )
        });
        return Plan {
            actions: Vec::new(),
            holding,
        };
    }

    let mut actions = Vec::new();
    let facts = Facts::new(spec, obs, policy, instance);
    // One ModifyDBInstance for every drifting check it fixes.
    let change = CHECKS
        .iter()
        .filter(|c| drift(c.check))
        .filter_map(|c| c.fix)
        .map(|fix| fix(&facts))
        .fold(InstanceChange::default(), InstanceChange::merge);
    if !change.is_empty() {
        let from = change.before(instance);
        actions.push(DbAction::ModifyInstance { change, from });
    }

    let replica_retention = required_retention(spec.replication.retention_days, policy);
    let desired_key_usable = verdict_of(findings, ReplicaKeyCompliant) != Some(Verdict::Blocked);
    if drift(ReplicationActive) && desired_key_usable && instance.retention_days > 0 {
        match &obs.desired_key {
            KeyLookup::Found(key) => actions.push(DbAction::StartReplication {
                key: KeyChoice::Arn(key.arn.clone()),
                retention_days: replica_retention,
            }),
            KeyLookup::AliasMissing(alias)
                if spec.replication.kms_key.create && obs.quota_exhausted_at.is_none() =>
            {
                actions.push(DbAction::CreateReplicaKey { alias: alias.clone() });
                actions.push(DbAction::StartReplication {
                    key: KeyChoice::Created,
                    retention_days: replica_retention,
                });
            }
            _ => {}
        }
    } else if spec.replication.allow_replication_restart
        && obs.replica.as_ref().is_some_and(ReplicaFacts::is_active)
        && (drift(ReplicaRetentionCompliant) || drift(ReplicaKeyCompliant))
        && let KeyLookup::Found(desired) = &obs.desired_key
        && key_problem(
            desired,
            &spec.replication.destination_region,
            instance.kms_key_id.as_deref(),
            &obs.other_key_users,
        )
        .is_none()
    {
        actions.push(DbAction::StopReplication);
        actions.push(DbAction::StartReplication {
            key: KeyChoice::Arn(desired.arn.clone()),
            retention_days: replica_retention,
        });
    }
    let holding = (drift(ReplicationActive) && instance.retention_days == 0).then(|| {
        (
            Reason::Progressing,
            "replication starts once automated backups are enabled".to_string(),
        )
    });
    Plan { actions, holding }
}

#[cfg(test)]
mod tests;
