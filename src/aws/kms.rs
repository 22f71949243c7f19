//! KMS: key facts, the aliases of a region, and the dedicated replica key backup-warden
//! creates (with a key policy that lets RDS in that region use it).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyUsageType, Tag};

use super::{AwsClients, AwsError, AwsErrorKind, Scope};
use crate::policy::database::KeyFacts;

#[async_trait]
pub trait Kms: Send + Sync {
    /// DescribeKey; `None` when the key does not exist.
    async fn describe_key(&self, scope: &Scope, key: &str) -> Result<Option<KeyFacts>, AwsError>;
    /// Every alias of the region and the key id it points to (ListAliases, all pages).
    async fn aliases(&self, scope: &Scope) -> Result<HashMap<String, String>, AwsError>;
    /// CreateKey + CreateAlias. If the alias appeared meanwhile (another replica of the
    /// controller), the key it points to is returned instead.
    async fn create_replica_key(
        &self,
        scope: &Scope,
        request: &ReplicaKeyRequest,
    ) -> Result<KeyFacts, AwsError>;
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
        state: m.key_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        key_spec: m.key_spec().map(|s| s.as_str().to_string()).unwrap_or_default(),
        key_usage: m.key_usage().map(|s| s.as_str().to_string()).unwrap_or_default(),
    }
}

/// The real thing, through aws-sdk-kms.
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

    async fn create_replica_key(
        &self,
        scope: &Scope,
        request: &ReplicaKeyRequest,
    ) -> Result<KeyFacts, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let created = {
            let _permit = c.limit.acquire().await;
            let tag = |k: &str, v: &str| Tag::builder().tag_key(k).tag_value(v).build();
            let tags = [
                tag("managed-by", "backup-warden"),
                tag("backup-warden/source-db-instance", &request.source_arn),
            ];
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
                .set_tags(Some(tags.into_iter().filter_map(Result::ok).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("CreateKey", &e))?;
            out.key_metadata().map(key_facts).ok_or_else(|| AwsError {
                operation: "CreateKey",
                kind: AwsErrorKind::Refused,
                code: "EmptyResponse".into(),
                message: "no KeyMetadata in the response".into(),
            })?
        };
        let aliased = {
            let _permit = c.limit.acquire().await;
            c.kms
                .create_alias()
                .alias_name(&request.alias)
                .target_key_id(&created.key_id)
                .send()
                .await
        };
        match aliased {
            Ok(_) => Ok(created),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                // Someone else won the race: use their key, leave ours unused (never delete keys).
                tracing::warn!(alias = %request.alias, unused_key = %created.arn, "alias appeared meanwhile; adopting it");
                let target = self
                    .aliases(scope)
                    .await?
                    .get(&request.alias)
                    .cloned()
                    .unwrap_or_default();
                self.describe_key(scope, &target).await?.ok_or_else(|| AwsError {
                    operation: "DescribeKey",
                    kind: AwsErrorKind::NotFound,
                    code: "NotFoundException".into(),
                    message: format!("{} points to a missing key", request.alias),
                })
            }
            Err(e) => Err(AwsError::from_sdk("CreateAlias", &e)),
        }
    }
}
