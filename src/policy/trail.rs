//! The audit-trail policy: what was observed of one CloudTrail trail, its bucket and its
//! log group → one finding per check, and → the actions Enforce may take. Pure.
//!
//! CloudTrail writes its log files (and digest files) under `<prefix>/AWSLogs/` of its
//! bucket. Every enabled lifecycle rule whose prefix overlaps that one can expire some of
//! them, so every such rule must keep them at least the retention; when two rules apply,
//! S3 expires at the sooner, so a short rule is raised rather than a long one added.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::{Finding, Tense, Verdict, at, days};
use crate::api::{ConditionType, Mode, Reason, conditions::wire_enum, trail::RetainedAuditTrailSpec};

wire_enum! {
    /// The audit-trail checks, in the order status lists them.
    pub enum TrailCheck {
        /// The trail exists, logs, covers every region and records read and write
        /// management events.
        TrailLogging,
        /// Log file integrity validation is on.
        LogFileValidation,
        /// Nothing expires the logs sooner than the retention: the bucket's lifecycle rules
        /// on the logs' prefix, and the CloudWatch Logs group's retention.
        LogsRetained,
        /// The latest delivery to S3 is recent and succeeded.
        LogsDelivered,
    }
}
use TrailCheck::*;

/// Which management events the trail's selectors record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagementEvents {
    pub read: bool,
    pub write: bool,
    /// Event sources left out (`ExcludeManagementEventSources`, or an advanced selector's
    /// `eventSource NotEquals`).
    pub excluded_sources: Vec<String>,
}

/// The trail as CloudTrail describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrailFacts {
    pub arn: String,
    pub bucket: String,
    /// `S3KeyPrefix`, if any.
    pub prefix: Option<String>,
    pub multi_region: bool,
    pub log_file_validation: bool,
    pub organization: bool,
    /// The CloudWatch Logs log group's ARN, when the trail sends there too.
    pub log_group_arn: Option<String>,
    pub logging: bool,
    pub latest_delivery: Option<Timestamp>,
    /// The latest delivery error (empty: none).
    pub latest_delivery_error: Option<String>,
    pub management: ManagementEvents,
}

impl TrailFacts {
    /// Where the log files land in the bucket.
    pub fn logs_prefix(&self) -> String {
        match self.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/AWSLogs/"),
            _ => "AWSLogs/".to_string(),
        }
    }

    /// The log group's name and region, from its ARN
    /// (`arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*`).
    pub fn log_group(&self) -> Option<(String, String)> {
        let arn = self.log_group_arn.as_deref()?;
        let region = arn.split(':').nth(3)?.to_string();
        let (_, rest) = arn.split_once(":log-group:")?;
        let name = rest.strip_suffix(":*").unwrap_or(rest).to_string();
        Some((name, region))
    }
}

/// One lifecycle rule, as far as the logs' retention goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpirationRule {
    pub id: String,
    pub enabled: bool,
    /// The rule's prefix ("" for the whole bucket).
    pub prefix: String,
    pub expiration_days: Option<i32>,
    /// An expiration on a fixed date.
    pub expiration_date: Option<String>,
    pub noncurrent_days: Option<i32>,
}

/// Versioning of the bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Versioning {
    #[default]
    Off,
    Enabled,
    Suspended,
}

impl Versioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "Off",
            Self::Enabled => "Enabled",
            Self::Suspended => "Suspended",
        }
    }
}

/// The trail's bucket: its lifecycle rules, versioning and Object Lock default retention.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketFacts {
    pub region: String,
    pub rules: Vec<ExpirationRule>,
    pub versioning: Versioning,
    /// Object Lock's default retention: mode and days.
    pub object_lock: Option<(String, i32)>,
}

/// The trail's CloudWatch Logs group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogGroupFacts {
    pub name: String,
    pub region: String,
    /// `None`: never expire.
    pub retention_days: Option<i32>,
}

/// Something read that cannot be judged: why, for the check's condition.
pub type Unread = (Reason, String);

/// Everything evaluate needs about one trail, gathered by observe.
#[derive(Clone, Debug, PartialEq)]
pub struct TrailObservation {
    /// `None`: the trail does not exist in its home region.
    pub trail: Option<TrailFacts>,
    /// The bucket (absent until the trail is known).
    pub bucket: Option<Result<BucketFacts, Unread>>,
    /// The log group (absent when the trail sends to none).
    pub log_group: Option<Result<LogGroupFacts, Unread>>,
    pub now: Timestamp,
}

/// Controller-wide settings for audit trails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrailPolicy {
    /// The company keeps audit trails at least this many days (365).
    pub min_retention_days: i32,
    pub audit_only: bool,
}

impl Default for TrailPolicy {
    fn default() -> Self {
        Self {
            min_retention_days: 365,
            audit_only: false,
        }
    }
}

/// The retention the logs must have: the spec's, never below the floor.
pub fn required_retention(spec: &RetainedAuditTrailSpec, policy: &TrailPolicy) -> i32 {
    spec.retention_days.max(policy.min_retention_days)
}

/// The retention values CloudWatch Logs accepts (PutRetentionPolicy).
pub const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// The shortest retention CloudWatch Logs accepts that keeps at least `days`.
pub fn log_retention_at_least(days: i32) -> i32 {
    LOG_RETENTION_DAYS
        .iter()
        .copied()
        .find(|d| *d >= days)
        .unwrap_or(3653)
}

/// A rule's new expirations, each only ever raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRaise {
    pub id: String,
    pub expiration_days: Option<i32>,
    pub noncurrent_days: Option<i32>,
}

/// What a rule does to the logs, judged against the retention.
enum RuleEffect {
    Keeps,
    /// Its expirations would be raised to keep the logs.
    Short(RuleRaise, String),
    /// It expires on a fixed date: a person must change it.
    Dated(String),
}

/// Whether a rule can expire some of the log files.
fn applies(rule: &ExpirationRule, logs_prefix: &str) -> bool {
    rule.enabled && (logs_prefix.starts_with(&rule.prefix) || rule.prefix.starts_with(logs_prefix))
}

fn effect(rule: &ExpirationRule, required: i32, versioning: Versioning) -> RuleEffect {
    if let Some(date) = &rule.expiration_date {
        return RuleEffect::Dated(format!(
            "lifecycle rule {:?} expires objects under {:?} on {date}",
            rule.id, rule.prefix
        ));
    }
    let short = |d: Option<i32>| d.filter(|d| *d < required);
    let current = short(rule.expiration_days);
    // Noncurrent versions exist only in a bucket that is or was versioned.
    let noncurrent = short(rule.noncurrent_days).filter(|_| versioning != Versioning::Off);
    if current.is_none() && noncurrent.is_none() {
        return RuleEffect::Keeps;
    }
    let mut what = Vec::new();
    if let Some(d) = current {
        what.push(format!("objects after {}", days(d)));
    }
    if let Some(d) = noncurrent {
        what.push(format!("noncurrent versions after {}", days(d)));
    }
    RuleEffect::Short(
        RuleRaise {
            id: rule.id.clone(),
            expiration_days: current.map(|_| required),
            noncurrent_days: noncurrent.map(|_| required),
        },
        format!(
            "lifecycle rule {:?} on {:?} expires {}",
            rule.id,
            rule.prefix,
            what.join(" and ")
        ),
    )
}

/// The shortest expiration the bucket's rules give the logs (`None`: they never expire).
pub fn shortest_expiration(bucket: &BucketFacts, logs_prefix: &str) -> Option<i32> {
    bucket
        .rules
        .iter()
        .filter(|r| applies(r, logs_prefix))
        .flat_map(|r| {
            let noncurrent = r.noncurrent_days.filter(|_| bucket.versioning != Versioning::Off);
            [r.expiration_days, noncurrent]
        })
        .flatten()
        .min()
}

/// The rules to raise so that the logs are kept `required` days, in the bucket's order.
pub fn raises(bucket: &BucketFacts, logs_prefix: &str, required: i32) -> Vec<RuleRaise> {
    bucket
        .rules
        .iter()
        .filter(|r| applies(r, logs_prefix))
        .filter_map(|r| match effect(r, required, bucket.versioning) {
            RuleEffect::Short(raise, _) => Some(raise),
            _ => None,
        })
        .collect()
}

/// What the checks read, once the trail is known.
pub struct Facts<'a> {
    pub spec: &'a RetainedAuditTrailSpec,
    pub obs: &'a TrailObservation,
    pub policy: &'a TrailPolicy,
    pub trail: &'a TrailFacts,
}

/// One trail check: how it is judged, and what the policy wants of it, for people.
pub struct Check {
    pub check: TrailCheck,
    pub evaluate: fn(&Facts) -> Finding,
    pub desired: fn(&RetainedAuditTrailSpec, &TrailPolicy) -> String,
}

/// The trail checks, in the order status lists them (that of `TrailCheck`).
pub const CHECKS: [Check; 4] = [
    Check {
        check: TrailLogging,
        evaluate: |f| logging(f.trail),
        desired: |_, _| "logging, in every region, all read and write management events".to_string(),
    },
    Check {
        check: LogFileValidation,
        evaluate: |f| validation(f.trail),
        desired: |_, _| "log file integrity validation on".to_string(),
    },
    Check {
        check: LogsRetained,
        evaluate: |f| retained(f.obs, f.trail, required_retention(f.spec, f.policy)),
        desired: |spec, policy| {
            format!(
                "the logs kept at least {} in S3 and CloudWatch Logs",
                days(required_retention(spec, policy))
            )
        },
    },
    Check {
        check: LogsDelivered,
        evaluate: |f| delivered(f.spec, f.obs, f.trail),
        desired: |spec, _| format!("a successful delivery within {}", spec.freshness.max_delivery_age),
    },
];

/// What the policy wants of `check`, for people (empty for another kind's check).
pub fn desired(check: ConditionType, spec: &RetainedAuditTrailSpec, policy: &TrailPolicy) -> String {
    CHECKS
        .iter()
        .find(|c| ConditionType::from(c.check) == check)
        .map_or_else(String::new, |c| (c.desired)(spec, policy))
}

/// One finding per trail check, in `CHECKS` order.
pub fn evaluate(spec: &RetainedAuditTrailSpec, obs: &TrailObservation, policy: &TrailPolicy) -> Vec<Finding> {
    let Some(trail) = &obs.trail else {
        let message = format!(
            "trail {} not found in {}: create it (backup-warden does not create trails) or fix spec.trail",
            spec.trail.name, spec.trail.region
        );
        return CHECKS
            .iter()
            .map(|c| Finding::new(c.check, Verdict::Blocked, Reason::TrailNotFound, message.clone()))
            .collect();
    };
    let facts = Facts {
        spec,
        obs,
        policy,
        trail,
    };
    CHECKS.iter().map(|c| (c.evaluate)(&facts)).collect()
}

fn logging(trail: &TrailFacts) -> Finding {
    // What Enforce fixes (start logging, every region) and what only a person may change
    // (the event selectors decide what the trail costs and records).
    let mut fixable = Vec::new();
    if !trail.logging {
        fixable.push("logging is stopped".to_string());
    }
    if !trail.multi_region {
        fixable.push("it records one region only".to_string());
    }
    let m = &trail.management;
    let mut manual = Vec::new();
    match (m.read, m.write) {
        (true, true) => {}
        (true, false) => manual.push("its event selectors leave out write management events".to_string()),
        (false, true) => manual.push("its event selectors leave out read management events".to_string()),
        (false, false) => manual.push("its event selectors record no management events".to_string()),
    }
    if !m.excluded_sources.is_empty() {
        manual.push(format!(
            "its event selectors leave out the management events of {}",
            m.excluded_sources.join(", ")
        ));
    }
    if fixable.is_empty() && manual.is_empty() {
        return Finding::pass(
            TrailLogging,
            "logging every region's read and write management events",
        );
    }
    let all = [fixable.as_slice(), manual.as_slice()].concat().join("; ");
    if manual.is_empty() {
        Finding::new(TrailLogging, Verdict::Drift, Reason::DriftDetected, all)
    } else {
        Finding::new(
            TrailLogging,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            format!("{all}: log all read and write management events (PutEventSelectors)"),
        )
    }
}

fn validation(trail: &TrailFacts) -> Finding {
    if trail.log_file_validation {
        Finding::pass(LogFileValidation, "log file integrity validation is on")
    } else {
        Finding::new(
            LogFileValidation,
            Verdict::Drift,
            Reason::DriftDetected,
            "log file integrity validation is off",
        )
    }
}

fn retained(obs: &TrailObservation, trail: &TrailFacts, required: i32) -> Finding {
    let unread =
        |(reason, message): &Unread| Finding::new(LogsRetained, Verdict::Blocked, *reason, message.clone());
    let bucket = match &obs.bucket {
        Some(Ok(bucket)) => bucket,
        Some(Err(why)) => return unread(why),
        None => {
            return Finding::new(
                LogsRetained,
                Verdict::Unknown,
                Reason::NotYetChecked,
                "the bucket is not read yet",
            );
        }
    };
    let logs = trail.logs_prefix();
    let (mut fixable, mut manual) = (Vec::new(), Vec::new());
    for rule in bucket.rules.iter().filter(|r| applies(r, &logs)) {
        match effect(rule, required, bucket.versioning) {
            RuleEffect::Keeps => {}
            RuleEffect::Short(_, why) => fixable.push(why),
            RuleEffect::Dated(why) => manual.push(why),
        }
    }
    let mut kept = vec![match shortest_expiration(bucket, &logs) {
        Some(d) => format!("s3://{}/{logs} kept {}", trail.bucket, days(d)),
        None => format!("s3://{}/{logs} never expires", trail.bucket),
    }];
    match &obs.log_group {
        None => {}
        Some(Err(why)) => manual.push(why.1.clone()),
        Some(Ok(group)) => match group.retention_days {
            Some(d) if d < required => {
                fixable.push(format!("log group {} keeps events {}", group.name, days(d)))
            }
            Some(d) => kept.push(format!("log group {} keeps {}", group.name, days(d))),
            None => kept.push(format!("log group {} never expires", group.name)),
        },
    }
    if let Some((mode, d)) = &bucket.object_lock {
        kept.push(format!("Object Lock {mode} {}", days(*d)));
    }
    let policy = format!("(policy {})", days(required));
    if !manual.is_empty() {
        let all = [manual, fixable].concat().join("; ");
        return Finding::new(
            LogsRetained,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            format!("{all} {policy}: change it by hand"),
        );
    }
    if !fixable.is_empty() {
        return Finding::new(
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            format!("{} {policy}", fixable.join("; ")),
        );
    }
    Finding::pass(LogsRetained, format!("{} {policy}", kept.join("; ")))
}

fn delivered(spec: &RetainedAuditTrailSpec, obs: &TrailObservation, trail: &TrailFacts) -> Finding {
    if let Some(error) = trail.latest_delivery_error.as_deref().filter(|e| !e.is_empty()) {
        return Finding::new(
            LogsDelivered,
            Verdict::Blocked,
            Reason::DeliveryFailed,
            format!(
                "the latest delivery to s3://{} failed: {error} (check the bucket policy and the trail's KMS key)",
                trail.bucket
            ),
        );
    }
    let limit = spec.freshness.max_delivery_age.as_duration();
    let Some(latest) = trail.latest_delivery else {
        return Finding::new(
            LogsDelivered,
            Verdict::Drift,
            Reason::Stale,
            format!("no log file delivered to s3://{} yet", trail.bucket),
        );
    };
    let age: Duration = obs.now.duration_since(latest).unsigned_abs();
    if age > limit {
        return Finding::new(
            LogsDelivered,
            Verdict::Drift,
            Reason::Stale,
            format!(
                "the latest delivery was {} (limit {})",
                at(latest),
                spec.freshness.max_delivery_age
            ),
        );
    }
    // No time in the message: a delivery every few minutes must not rewrite the status.
    Finding::pass(
        LogsDelivered,
        format!(
            "delivered to s3://{} within {}",
            trail.bucket, spec.freshness.max_delivery_age
        ),
    )
}

/// A change Enforce makes to a trail, its bucket or its log group. None deletes anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrailAction {
    StartLogging,
    /// UpdateTrail: every region (with global service events), and validation on.
    UpdateTrail,
    /// Raise the expirations of these rules, keeping every other rule and field as it is.
    RaiseLifecycle {
        bucket: String,
        region: String,
        rules: Vec<RuleRaise>,
    },
    /// Raise the log group's retention.
    RaiseLogRetention {
        name: String,
        region: String,
        days: i32,
    },
}

impl TrailAction {
    /// The checks this action fixes.
    pub fn fixes(&self) -> &'static [TrailCheck] {
        match self {
            Self::StartLogging => &[TrailLogging, LogsDelivered],
            Self::UpdateTrail => &[TrailLogging, LogFileValidation],
            Self::RaiseLifecycle { .. } | Self::RaiseLogRetention { .. } => &[LogsRetained],
        }
    }

    /// What the action does (`Tense::Done`, for events and logs) or will do.
    pub fn describe(&self, spec: &RetainedAuditTrailSpec, tense: Tense) -> String {
        let trail = &spec.trail.name;
        match self {
            Self::StartLogging => format!("{} logging on trail {trail}", tense.verb("started", "start")),
            Self::UpdateTrail => format!(
                "{} trail {trail} to every region with log file validation",
                tense.verb("updated", "update")
            ),
            Self::RaiseLifecycle { bucket, rules, .. } => {
                let what: Vec<String> = rules
                    .iter()
                    .map(|r| {
                        let mut to = Vec::new();
                        if let Some(d) = r.expiration_days {
                            to.push(format!("expiration to {}", days(d)));
                        }
                        if let Some(d) = r.noncurrent_days {
                            to.push(format!("noncurrent expiration to {}", days(d)));
                        }
                        format!("{:?} {}", r.id, to.join(" and "))
                    })
                    .collect();
                format!(
                    "{} lifecycle rule {} of bucket {bucket}",
                    tense.verb("raised", "raise"),
                    what.join(", ")
                )
            }
            Self::RaiseLogRetention { name, days: d, .. } => format!(
                "{} the retention of log group {name} to {}",
                tense.verb("raised", "raise"),
                days(*d)
            ),
        }
    }
}

/// The actions Enforce takes for these findings; Audit plans nothing.
pub fn plan(
    spec: &RetainedAuditTrailSpec,
    obs: &TrailObservation,
    findings: &[Finding],
    policy: &TrailPolicy,
) -> Vec<TrailAction> {
    if spec.mode == Mode::Audit || policy.audit_only {
        return Vec::new();
    }
    let Some(trail) = &obs.trail else {
        return Vec::new();
    };
    let failing = |check: TrailCheck| findings.iter().any(|f| f.check == check.into() && !f.is_pass());
    let mut actions = Vec::new();
    if failing(TrailLogging) && !trail.logging {
        actions.push(TrailAction::StartLogging);
    }
    if (failing(TrailLogging) && !trail.multi_region)
        || (failing(LogFileValidation) && !trail.log_file_validation)
    {
        actions.push(TrailAction::UpdateTrail);
    }
    if failing(LogsRetained) {
        let required = required_retention(spec, policy);
        if let Some(Ok(bucket)) = &obs.bucket {
            let rules = raises(bucket, &trail.logs_prefix(), required);
            if !rules.is_empty() {
                actions.push(TrailAction::RaiseLifecycle {
                    bucket: trail.bucket.clone(),
                    region: bucket.region.clone(),
                    rules,
                });
            }
        }
        if let Some(Ok(group)) = &obs.log_group
            && group.retention_days.is_some_and(|d| d < required)
        {
            actions.push(TrailAction::RaiseLogRetention {
                name: group.name.clone(),
                region: group.region.clone(),
                days: log_retention_at_least(required),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests;
