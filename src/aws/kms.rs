//! KMS: key facts, the aliases of a region, the dedicated replica keys backup-warden
//! creates (with a key policy that lets RDS in that region use them), finding them again by
//! their tags, and scheduling the deletion of the ones it made that nothing uses.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyUsageType, Tag};
use aws_sdk_resourcegroupstagging::types::TagFilter;

use super::{AwsClients, AwsError, AwsErrorKind, Scope, rds::timestamp};
use crate::policy::{
    database::KeyFacts,
    keys::{TaggedKey, ownership_tags},
};

/// The longest waiting period KMS allows: the deletion can be cancelled for 30 days.
pub const DELETION_WINDOW_DAYS: i32 = 30;

#[async_trait]
pub trait Kms: Send + Sync {
    /// DescribeKey; `None` when the key does not exist.
    async fn describe_key(&self, scope: &Scope, key: &str) -> Result<Option<KeyFacts>, AwsError>;
    /// Every alias of the region and the key id it points to (ListAliases, all pages).
    async fn aliases(&self, scope: &Scope) -> Result<HashMap<String, String>, AwsError>;
    /// The region's KMS keys that carry every one of `tags` (Resource Groups Tagging API
    /// GetResources, all pages: one call per 100 keys).
    async fn tagged_keys(&self, scope: &Scope, tags: &[(&str, &str)]) -> Result<Vec<TaggedKey>, AwsError>;
    /// CreateKey: a symmetric key tagged as backup-warden's replica key of `request.source_arn`.
    async fn create_key(&self, scope: &Scope, request: &ReplicaKeyRequest) -> Result<KeyFacts, AwsError>;
    /// CreateAlias. `Exists` when the alias is already there (pointing to any key).
    async fn create_alias(&self, scope: &Scope, alias: &str, key_id: &str) -> Result<AliasOutcome, AwsError>;
    /// ScheduleKeyDeletion with [`DELETION_WINDOW_DAYS`].
    async fn schedule_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError>;
    /// CancelKeyDeletion, then EnableKey (a cancelled key is left disabled).
    async fn cancel_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AliasOutcome {
    Created,
    Exists,
}

/// What the dedicated key is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaKeyRequest {
    pub alias: String,
    /// The account of the source instance (the key's administrators and users).
    pub account_id: String,
    /// aws, aws-cn, aws-us-gov, ...
    pub partition: String,
    pub source_arn: String,
}

impl ReplicaKeyRequest {
    /// The key policy: the account administers the key (as with any customer managed
    /// key), and principals of the account may use it only through RDS in this region.
    pub fn key_policy(&self, region: &str) -> String {
        serde_json::json!({
            "Version": "2012-10-17",
            "Id": "backup-warden-replica-key",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:{}:iam::{}:root", self.partition, self.account_id)},
                    "Action": "kms:*",
                    "Resource": "*"
                },
                {
                    "Sid": "RdsUsesTheKeyForReplicatedBackups",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                               "kms:CreateGrant", "kms:ListGrants", "kms:DescribeKey"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {
                        "kms:CallerAccount": self.account_id,
                        "kms:ViaService": format!("rds.{region}.amazonaws.com")
                    }}
                }
            ]
        })
        .to_string()
    }
}

fn key_facts(m: &KeyMetadata) -> KeyFacts {
    KeyFacts {
        arn: m.arn().unwrap_or_default().to_string(),
        key_id: m.key_id().to_string(),
        state: m.key_state().map(|s| s.as_str().into()).unwrap_or_default(),
        key_spec: m.key_spec().map(|s| s.as_str().into()).unwrap_or_default(),
        key_usage: m.key_usage().map(|s| s.as_str().into()).unwrap_or_default(),
        key_manager: m.key_manager().map(|s| s.as_str().into()).unwrap_or_default(),
        created: m.creation_date().and_then(timestamp),
    }
}

/// The real thing, through aws-sdk-kms and aws-sdk-resourcegroupstagging.
pub struct SdkKms {
    pub clients: std::sync::Arc<AwsClients>,
}

#[async_trait]
impl Kms for SdkKms {
    async fn describe_key(&self, scope: &Scope, key: &str) -> Result<Option<KeyFacts>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        match c.kms.describe_key().key_id(key).send().await {
            Ok(out) => Ok(out.key_metadata().map(key_facts)),
            Err(e) => {
                let err = AwsError::from_sdk("DescribeKey", &e);
                if err.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn aliases(&self, scope: &Scope) -> Result<HashMap<String, String>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let mut pages = c.kms.list_aliases().limit(100).into_paginator().send();
        let mut out = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListAliases", &e))?;
            for alias in page.aliases() {
                if let (Some(name), Some(target)) = (alias.alias_name(), alias.target_key_id()) {
                    out.insert(name.to_string(), target.to_string());
                }
            }
        }
        Ok(out)
    }

    async fn tagged_keys(&self, scope: &Scope, tags: &[(&str, &str)]) -> Result<Vec<TaggedKey>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let filters = tags
            .iter()
            .map(|(k, v)| TagFilter::builder().key(*k).values(*v).build())
            .collect();
        let mut pages = c
            .tagging
            .get_resources()
            .resource_type_filters("kms:key")
            .set_tag_filters(Some(filters))
            .resources_per_page(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("GetResources", &e))?;
            out.extend(page.resource_tag_mapping_list().iter().filter_map(|r| {
                Some(TaggedKey {
                    arn: r.resource_arn()?.to_string(),
                    tags: r
                        .tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string()))
                        .collect(),
                })
            }));
        }
        Ok(out)
    }

    async fn create_key(&self, scope: &Scope, request: &ReplicaKeyRequest) -> Result<KeyFacts, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        self.clients.kms_write(scope, "CreateKey").await;
        let tags = ownership_tags(&request.source_arn)
            .into_iter()
            .filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok())
            .collect();
        let out = c
            .kms
            .create_key()
            .description(format!(
                "backup-warden: replicated automated backups of {}",
                request.source_arn
            ))
            .key_usage(KeyUsageType::EncryptDecrypt)
            .key_spec(KeySpec::SymmetricDefault)
            .policy(request.key_policy(&scope.region))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateKey", &e))?;
        out.key_metadata().map(key_facts).ok_or_else(|| AwsError {
            operation: "CreateKey",
            kind: AwsErrorKind::Refused,
            code: "EmptyResponse".into(),
            message: "no KeyMetadata in the response".into(),
        })
    }

    async fn create_alias(&self, scope: &Scope, alias: &str, key_id: &str) -> Result<AliasOutcome, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        self.clients.kms_write(scope, "CreateAlias").await;
        match c
            .kms
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(AliasOutcome::Created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(AliasOutcome::Exists)
            }
            Err(e) => Err(AwsError::from_sdk("CreateAlias", &e)),
        }
    }

    async fn schedule_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        self.clients.kms_write(scope, "ScheduleKeyDeletion").await;
        c.kms
            .schedule_key_deletion()
            .key_id(key)
            .pending_window_in_days(DELETION_WINDOW_DAYS)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ScheduleKeyDeletion", &e))?;
        Ok(())
    }

    async fn cancel_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        self.clients.kms_write(scope, "CancelKeyDeletion").await;
        c.kms
            .cancel_key_deletion()
            .key_id(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CancelKeyDeletion", &e))?;
        c.kms
            .enable_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("EnableKey", &e))?;
        Ok(())
    }
}
