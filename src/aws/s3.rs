//! S3: the newest backup under a prefix, and the bucket's lifecycle rules, read whole and
//! written back whole with one rule added (PutBucketLifecycleConfiguration replaces the set).

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};

use super::{AwsClients, AwsError, AwsErrorKind, Scope, rds::timestamp};
use crate::policy::repository::{BackupObject, LifecycleRuleFacts};

#[async_trait]
pub trait S3: Send + Sync {
    /// The newest object under `prefix` (ListObjectsV2, all pages); `Ok(None)` when empty.
    async fn newest_object(
        &self,
        scope: &Scope,
        bucket: &str,
        prefix: &str,
    ) -> Result<Option<BackupObject>, AwsError>;
    /// The bucket's lifecycle rules; `Ok(None)` when the bucket does not exist.
    async fn lifecycle(
        &self,
        scope: &Scope,
        bucket: &str,
    ) -> Result<Option<Vec<LifecycleRuleFacts>>, AwsError>;
    /// Adds an expiration rule for `prefix`, keeping every other rule as it is. A rule with
    /// the same id (an earlier one of ours) is replaced.
    async fn add_expiration_rule(
        &self,
        scope: &Scope,
        bucket: &str,
        id: &str,
        prefix: &str,
        days: i32,
    ) -> Result<(), AwsError>;
}

fn rule_facts(rule: &LifecycleRule) -> LifecycleRuleFacts {
    #[allow(deprecated)] // the top-level Prefix is deprecated but still found in old configurations
    let legacy_prefix = rule.prefix();
    let (prefix, narrowed) = match rule.filter() {
        Some(filter) => match (filter.prefix(), filter.and()) {
            (Some(p), _) => (
                p.to_string(),
                filter.tag().is_some()
                    || filter.object_size_greater_than().is_some()
                    || filter.object_size_less_than().is_some(),
            ),
            (None, Some(and)) => (
                and.prefix().unwrap_or_default().to_string(),
                !and.tags().is_empty()
                    || and.object_size_greater_than().is_some()
                    || and.object_size_less_than().is_some(),
            ),
            (None, None) => (
                String::new(),
                filter.tag().is_some()
                    || filter.object_size_greater_than().is_some()
                    || filter.object_size_less_than().is_some(),
            ),
        },
        None => (legacy_prefix.unwrap_or_default().to_string(), false),
    };
    LifecycleRuleFacts {
        id: rule.id().unwrap_or_default().to_string(),
        enabled: rule.status() == &ExpirationStatus::Enabled,
        prefix,
        narrowed,
        expiration_days: rule.expiration().and_then(|e| e.days()),
    }
}

pub struct SdkS3 {
    pub clients: std::sync::Arc<AwsClients>,
}

/// All rules as S3 holds them; an empty list for NoSuchLifecycleConfiguration, `None`
/// without the bucket.
pub(crate) async fn lifecycle_rules(
    c: &super::Clients,
    bucket: &str,
) -> Result<Option<Vec<LifecycleRule>>, AwsError> {
    match c
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out.rules().to_vec())),
        Err(e) => {
            let err = AwsError::from_sdk("GetBucketLifecycleConfiguration", &e);
            match err.code.as_str() {
                "NoSuchLifecycleConfiguration" => Ok(Some(Vec::new())),
                "NoSuchBucket" => Ok(None),
                _ => Err(err),
            }
        }
    }
}

#[async_trait]
impl S3 for SdkS3 {
    async fn newest_object(
        &self,
        scope: &Scope,
        bucket: &str,
        prefix: &str,
    ) -> Result<Option<BackupObject>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let mut pages =
            c.s3.list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
        let mut newest: Option<BackupObject> = None;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let err = AwsError::from_sdk("ListObjectsV2", &e);
                    return if err.code == "NoSuchBucket" {
                        Ok(None)
                    } else {
                        Err(err)
                    };
                }
            };
            for object in page.contents() {
                let (Some(key), Some(modified)) = (object.key(), object.last_modified().and_then(timestamp))
                else {
                    continue;
                };
                if newest.as_ref().is_none_or(|n| modified > n.last_modified) {
                    newest = Some(BackupObject {
                        key: key.to_string(),
                        last_modified: modified,
                    });
                }
            }
        }
        Ok(newest)
    }

    async fn lifecycle(
        &self,
        scope: &Scope,
        bucket: &str,
    ) -> Result<Option<Vec<LifecycleRuleFacts>>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        Ok(lifecycle_rules(&c, bucket)
            .await?
            .map(|rules| rules.iter().map(rule_facts).collect()))
    }

    async fn add_expiration_rule(
        &self,
        scope: &Scope,
        bucket: &str,
        id: &str,
        prefix: &str,
        days: i32,
    ) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let refused = |code: &str, message: String| AwsError {
            operation: "PutBucketLifecycleConfiguration",
            kind: AwsErrorKind::Refused,
            code: code.to_string(),
            message,
        };
        // Read the whole configuration right before writing it, so that every other rule survives.
        let mut rules = lifecycle_rules(&c, bucket)
            .await?
            .ok_or_else(|| refused("NoSuchBucket", format!("bucket {bucket} does not exist")))?;
        rules.retain(|r| r.id() != Some(id));
        let rule = LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .map_err(|e| refused("InvalidRule", e.to_string()))?;
        rules.push(rule);
        let configuration = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| refused("InvalidConfiguration", e.to_string()))?;
        c.s3.put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutBucketLifecycleConfiguration", &e))?;
        Ok(())
    }
}
