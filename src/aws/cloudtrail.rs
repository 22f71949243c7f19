//! The audit trail's AWS side: the trail (CloudTrail), its bucket (S3: lifecycle,
//! versioning, Object Lock) and its log group (CloudWatch Logs). Reads, and the few writes
//! Enforce makes, none of which deletes anything.

use async_trait::async_trait;
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, EventSelector, ReadWriteType};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, LifecycleExpiration, LifecycleRule,
    NoncurrentVersionExpiration,
};

use super::{AwsClients, AwsError, AwsErrorKind, Scope, rds::timestamp, s3::lifecycle_rules};
use crate::policy::trail::{
    BucketFacts, ExpirationRule, LogGroupFacts, ManagementEvents, RuleRaise, TrailFacts, Versioning,
};

#[async_trait]
pub trait AuditTrails: Send + Sync {
    /// The trail named (name or ARN) in the scope's region, its status and selectors;
    /// `Ok(None)` when it does not exist there.
    async fn trail(&self, scope: &Scope, name: &str) -> Result<Option<TrailFacts>, AwsError>;
    async fn start_logging(&self, scope: &Scope, arn: &str) -> Result<(), AwsError>;
    /// Every region (with global service events) and log file validation on.
    async fn update_trail(&self, scope: &Scope, arn: &str) -> Result<(), AwsError>;
    /// The bucket's region (GetBucketLocation, asked in the scope's region).
    async fn bucket_region(&self, scope: &Scope, bucket: &str) -> Result<Option<String>, AwsError>;
    /// The bucket's lifecycle rules, versioning and Object Lock default retention, read in
    /// its own region; `Ok(None)` when it does not exist.
    async fn bucket(&self, scope: &Scope, bucket: &str) -> Result<Option<BucketFacts>, AwsError>;
    /// Raises the expirations of the named rules (never lowers them), writing back every
    /// other rule and field as read.
    async fn raise_lifecycle(
        &self,
        scope: &Scope,
        bucket: &str,
        raises: &[RuleRaise],
    ) -> Result<(), AwsError>;
    /// The log group named; `Ok(None)` when it does not exist.
    async fn log_group(&self, scope: &Scope, name: &str) -> Result<Option<LogGroupFacts>, AwsError>;
    /// Sets the retention, unless it is already at least `days` (or never expires).
    async fn raise_log_retention(&self, scope: &Scope, name: &str, days: i32) -> Result<(), AwsError>;
}

pub struct SdkAuditTrails {
    pub clients: std::sync::Arc<AwsClients>,
}

fn refused(operation: &'static str, code: &str, message: String) -> AwsError {
    AwsError {
        operation,
        kind: AwsErrorKind::Refused,
        code: code.to_string(),
        message,
    }
}

/// Which management events the selectors record. Basic selectors: `ReadWriteType` and
/// `IncludeManagementEvents` (default true). Advanced ones: a selector on
/// `eventCategory = Management`, narrowed by `readOnly` and `eventSource NotEquals`.
pub fn management_events(basic: &[EventSelector], advanced: &[AdvancedEventSelector]) -> ManagementEvents {
    let mut m = ManagementEvents::default();
    let exclude = |sources: &[String], m: &mut ManagementEvents| {
        for s in sources {
            if !m.excluded_sources.contains(s) {
                m.excluded_sources.push(s.clone());
            }
        }
    };
    for s in basic
        .iter()
        .filter(|s| s.include_management_events().unwrap_or(true))
    {
        match s.read_write_type().unwrap_or(&ReadWriteType::All) {
            ReadWriteType::ReadOnly => m.read = true,
            ReadWriteType::WriteOnly => m.write = true,
            _ => (m.read, m.write) = (true, true),
        }
        exclude(s.exclude_management_event_sources(), &mut m);
    }
    for s in advanced {
        let fields = s.field_selectors();
        let management = fields
            .iter()
            .any(|f| f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management"));
        if !management {
            continue;
        }
        match fields
            .iter()
            .find(|f| f.field() == "readOnly")
            .and_then(|f| f.equals().first())
            .map(String::as_str)
        {
            Some("true") => m.read = true,
            Some("false") => m.write = true,
            _ => (m.read, m.write) = (true, true),
        }
        for f in fields.iter().filter(|f| f.field() == "eventSource") {
            exclude(f.not_equals(), &mut m);
        }
    }
    m.excluded_sources.sort();
    m
}

fn expiration_rule(rule: &LifecycleRule) -> ExpirationRule {
    #[allow(deprecated)] // the top-level Prefix is deprecated but still found in old configurations
    let legacy = rule.prefix();
    let prefix = match rule.filter() {
        Some(f) => f
            .prefix()
            .or_else(|| f.and().and_then(|a| a.prefix()))
            .unwrap_or_default(),
        None => legacy.unwrap_or_default(),
    };
    ExpirationRule {
        id: rule.id().unwrap_or_default().to_string(),
        enabled: rule.status() == &aws_sdk_s3::types::ExpirationStatus::Enabled,
        prefix: prefix.to_string(),
        expiration_days: rule.expiration().and_then(|e| e.days()),
        expiration_date: rule.expiration().and_then(|e| e.date()).map(|d| d.to_string()),
        noncurrent_days: rule
            .noncurrent_version_expiration()
            .and_then(|e| e.noncurrent_days()),
    }
}

/// The rules with the named ones' expirations raised; every other rule and field as given.
pub fn raised(rules: Vec<LifecycleRule>, raises: &[RuleRaise]) -> Vec<LifecycleRule> {
    rules
        .into_iter()
        .map(|rule| {
            let Some(raise) = raises.iter().find(|r| Some(r.id.as_str()) == rule.id()) else {
                return rule;
            };
            let mut out = rule.clone();
            if let (Some(to), Some(e)) = (raise.expiration_days, rule.expiration())
                && e.days().is_some_and(|d| d < to)
            {
                out.expiration = Some(LifecycleExpiration::builder().days(to).build());
            }
            if let (Some(to), Some(e)) = (raise.noncurrent_days, rule.noncurrent_version_expiration())
                && e.noncurrent_days().is_some_and(|d| d < to)
            {
                out.noncurrent_version_expiration = Some(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(to)
                        .set_newer_noncurrent_versions(e.newer_noncurrent_versions())
                        .build(),
                );
            }
            out
        })
        .collect()
}

#[async_trait]
impl AuditTrails for SdkAuditTrails {
    async fn trail(&self, scope: &Scope, name: &str) -> Result<Option<TrailFacts>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let described = c
            .cloudtrail
            .describe_trails()
            .trail_name_list(name)
            // An organization trail seen from a member account is listed as a shadow.
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTrails", &e))?;
        // By ARN, that trail; by name, the one whose home is this region (a multi-region
        // trail of another region may share the name).
        let Some(trail) = described.trail_list().iter().find(|t| {
            t.trail_arn() == Some(name)
                || (t.name() == Some(name) && t.home_region().is_none_or(|r| r == scope.region))
        }) else {
            return Ok(None);
        };
        let arn = trail.trail_arn().unwrap_or(name).to_string();
        let status = c
            .cloudtrail
            .get_trail_status()
            .name(&arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetTrailStatus", &e))?;
        let selectors = c
            .cloudtrail
            .get_event_selectors()
            .trail_name(&arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetEventSelectors", &e))?;
        Ok(Some(TrailFacts {
            bucket: trail.s3_bucket_name().unwrap_or_default().to_string(),
            prefix: trail.s3_key_prefix().map(str::to_string),
            multi_region: trail.is_multi_region_trail().unwrap_or(false),
            log_file_validation: trail.log_file_validation_enabled().unwrap_or(false),
            organization: trail.is_organization_trail().unwrap_or(false),
            log_group_arn: trail
                .cloud_watch_logs_log_group_arn()
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            logging: status.is_logging().unwrap_or(false),
            latest_delivery: status.latest_delivery_time().and_then(timestamp),
            latest_delivery_error: status
                .latest_delivery_error()
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            management: management_events(selectors.event_selectors(), selectors.advanced_event_selectors()),
            arn,
        }))
    }

    async fn start_logging(&self, scope: &Scope, arn: &str) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.cloudtrail
            .start_logging()
            .name(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("StartLogging", &e))?;
        Ok(())
    }

    async fn update_trail(&self, scope: &Scope, arn: &str) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.cloudtrail
            .update_trail()
            .name(arn)
            .is_multi_region_trail(true)
            .include_global_service_events(true)
            .enable_log_file_validation(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateTrail", &e))?;
        Ok(())
    }

    async fn bucket_region(&self, scope: &Scope, bucket: &str) -> Result<Option<String>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        match c.s3.get_bucket_location().bucket(bucket).send().await {
            // No constraint is us-east-1; "EU" is the old name of eu-west-1.
            Ok(out) => Ok(Some(match out.location_constraint().map(|l| l.as_str()) {
                None | Some("") => "us-east-1".to_string(),
                Some("EU") => "eu-west-1".to_string(),
                Some(region) => region.to_string(),
            })),
            Err(e) => {
                let err = AwsError::from_sdk("GetBucketLocation", &e);
                if err.code == "NoSuchBucket" {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn bucket(&self, scope: &Scope, bucket: &str) -> Result<Option<BucketFacts>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let Some(rules) = lifecycle_rules(&c, bucket).await? else {
            return Ok(None);
        };
        let versioning =
            c.s3.get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("GetBucketVersioning", &e))?;
        let object_lock = match c.s3.get_object_lock_configuration().bucket(bucket).send().await {
            Ok(out) => out
                .object_lock_configuration()
                .and_then(|l| l.rule())
                .and_then(|r| r.default_retention())
                .and_then(|d| {
                    let days = d.days().or_else(|| d.years().map(|y| y * 365))?;
                    Some((d.mode()?.as_str().to_string(), days))
                }),
            Err(e) => {
                let err = AwsError::from_sdk("GetObjectLockConfiguration", &e);
                if err.code == "ObjectLockConfigurationNotFoundError" {
                    None
                } else {
                    return Err(err);
                }
            }
        };
        Ok(Some(BucketFacts {
            region: scope.region.clone(),
            rules: rules.iter().map(expiration_rule).collect(),
            versioning: match versioning.status() {
                Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
                Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
                _ => Versioning::Off,
            },
            object_lock,
        }))
    }

    async fn raise_lifecycle(
        &self,
        scope: &Scope,
        bucket: &str,
        raises: &[RuleRaise],
    ) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        const PUT: &str = "PutBucketLifecycleConfiguration";
        // Read the whole configuration right before writing it, so that every other rule
        // (and a rule changed meanwhile) is written back as it is now.
        let rules = lifecycle_rules(&c, bucket)
            .await?
            .ok_or_else(|| refused(PUT, "NoSuchBucket", format!("bucket {bucket} does not exist")))?;
        let configuration = BucketLifecycleConfiguration::builder()
            .set_rules(Some(raised(rules, raises)))
            .build()
            .map_err(|e| refused(PUT, "InvalidConfiguration", e.to_string()))?;
        c.s3.put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(PUT, &e))?;
        Ok(())
    }

    async fn log_group(&self, scope: &Scope, name: &str) -> Result<Option<LogGroupFacts>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let out = c
            .logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .limit(1)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeLogGroups", &e))?;
        Ok(out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name))
            .map(|g| LogGroupFacts {
                name: name.to_string(),
                region: scope.region.clone(),
                retention_days: g.retention_in_days(),
            }))
    }

    async fn raise_log_retention(&self, scope: &Scope, name: &str, days: i32) -> Result<(), AwsError> {
        // Held again right before the call: a retention is never lowered.
        match self.log_group(scope, name).await? {
            None => {
                return Err(refused(
                    "PutRetentionPolicy",
                    "ResourceNotFoundException",
                    format!("log group {name} does not exist"),
                ));
            }
            Some(group) if group.retention_days.is_none_or(|d| d >= days) => return Ok(()),
            Some(_) => {}
        }
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(days)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutRetentionPolicy", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::{ExpirationStatus, LifecycleRuleFilter, Transition, TransitionStorageClass};

    fn rule(id: &str, prefix: &str, days: Option<i32>, noncurrent: Option<i32>) -> LifecycleRule {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .set_expiration(days.map(|d| LifecycleExpiration::builder().days(d).build()))
            .set_noncurrent_version_expiration(
                noncurrent.map(|d| NoncurrentVersionExpiration::builder().noncurrent_days(d).build()),
            )
            .transitions(
                Transition::builder()
                    .days(7)
                    .storage_class(TransitionStorageClass::StandardIa)
                    .build(),
            )
            .build()
            .expect("rule")
    }

    #[test]
    fn only_the_named_rules_are_raised_and_never_lowered() {
        let other = rule("tmp", "tmp/", Some(1), None);
        let long = rule("long", "", Some(400), Some(400));
        let short = rule("logs", "trail/AWSLogs/", Some(30), Some(10));
        let rules = vec![other.clone(), short, long.clone()];
        let raises = [
            RuleRaise {
                id: "logs".into(),
                expiration_days: Some(365),
                noncurrent_days: Some(365),
            },
            // Asked to "raise" to less than it has: stays 400.
            RuleRaise {
                id: "long".into(),
                expiration_days: Some(365),
                noncurrent_days: Some(365),
            },
        ];
        let out = raised(rules, &raises);
        assert_eq!(out[0], other, "another rule is kept as it was");
        assert_eq!(out[2], long, "a 400-day expiration stays 400");
        assert_eq!(out[1].expiration().and_then(|e| e.days()), Some(365));
        assert_eq!(
            out[1]
                .noncurrent_version_expiration()
                .and_then(|e| e.noncurrent_days()),
            Some(365)
        );
        // The raised rule keeps its id, filter, status and transitions.
        assert_eq!(out[1].id(), Some("logs"));
        assert_eq!(out[1].filter(), rule("x", "trail/AWSLogs/", None, None).filter());
        assert_eq!(out[1].transitions().len(), 1);
        assert_eq!(out[1].status(), &ExpirationStatus::Enabled);
    }

    #[test]
    fn management_events_from_basic_and_advanced_selectors() {
        let basic = |rw: Option<ReadWriteType>, management: Option<bool>, excluded: &[&str]| {
            EventSelector::builder()
                .set_read_write_type(rw)
                .set_include_management_events(management)
                .set_exclude_management_event_sources(Some(excluded.iter().map(|s| s.to_string()).collect()))
                .build()
        };
        let all = management_events(&[basic(None, None, &[])], &[]);
        assert!(all.read && all.write && all.excluded_sources.is_empty());
        let split = management_events(
            &[
                basic(Some(ReadWriteType::ReadOnly), Some(true), &[]),
                basic(Some(ReadWriteType::WriteOnly), Some(true), &["kms.amazonaws.com"]),
            ],
            &[],
        );
        assert!(split.read && split.write);
        assert_eq!(split.excluded_sources, ["kms.amazonaws.com"]);
        let data_only = management_events(&[basic(Some(ReadWriteType::All), Some(false), &[])], &[]);
        assert!(!data_only.read && !data_only.write);
        assert_eq!(management_events(&[], &[]), ManagementEvents::default());

        let field = |name: &str, equals: &[&str], not_equals: &[&str]| {
            aws_sdk_cloudtrail::types::AdvancedFieldSelector::builder()
                .field(name)
                .set_equals(Some(equals.iter().map(|s| s.to_string()).collect()))
                .set_not_equals(Some(not_equals.iter().map(|s| s.to_string()).collect()))
                .build()
                .expect("field")
        };
        let advanced = |fields: Vec<aws_sdk_cloudtrail::types::AdvancedFieldSelector>| {
            AdvancedEventSelector::builder()
                .set_field_selectors(Some(fields))
                .build()
                .expect("selector")
        };
        let write_only = management_events(
            &[],
            &[advanced(vec![
                field("eventCategory", &["Management"], &[]),
                field("readOnly", &["false"], &[]),
            ])],
        );
        assert!(!write_only.read && write_only.write);
        let all_but_kms = management_events(
            &[],
            &[advanced(vec![
                field("eventCategory", &["Management"], &[]),
                field("eventSource", &[], &["kms.amazonaws.com"]),
            ])],
        );
        assert!(all_but_kms.read && all_but_kms.write);
        assert_eq!(all_but_kms.excluded_sources, ["kms.amazonaws.com"]);
        let data = management_events(&[], &[advanced(vec![field("eventCategory", &["Data"], &[])])]);
        assert!(!data.read && !data.write);
    }
}
