//! The dedicated replica key of one database. Before creating a key, the one backup-warden
//! made earlier for the same source instance in this region and never aliased (a crash, a
//! network error or a lost race between CreateKey and CreateAlias) is adopted, found by its
//! tags; then the per-database alias is pointed at it.

use std::{collections::HashSet, time::Duration};

use super::Context;
use crate::{
    aws::{
        AwsError, AwsErrorKind, Scope,
        kms::{AliasOutcome, ReplicaKeyRequest},
    },
    policy::{
        database::KeyFacts,
        keys::{KnownKey, MANAGED_BY, SOURCE_TAG, adoptable},
    },
};

/// A key under `request.alias`, and whether it was adopted rather than created.
pub(crate) async fn adopt_or_create(
    ctx: &Context,
    destination: &Scope,
    request: &ReplicaKeyRequest,
) -> Result<(KeyFacts, bool), AwsError> {
    let (key, adopted) = match made_earlier(ctx, destination, &request.source_arn).await? {
        Some(key) => (key, true),
        None => (ctx.kms.create_key(destination, request).await?, false),
    };
    match ctx
        .kms
        .create_alias(destination, &request.alias, &key.key_id)
        .await?
    {
        AliasOutcome::Created => Ok((key, adopted)),
        AliasOutcome::Exists => {
            // Another controller got there first: use the key the alias points to. A key
            // made here stays unaliased and unused: the cleanup schedules its deletion.
            let target = ctx
                .inventory
                .alias_target(destination, &request.alias, Duration::ZERO)
                .await?
                .ok_or_else(|| AwsError {
                    operation: "ListAliases",
                    kind: AwsErrorKind::Transient,
                    code: "AliasChanged".into(),
                    message: format!(
                        "{} existed for CreateAlias and was gone right after",
                        request.alias
                    ),
                })?;
            if target != key.key_id {
                tracing::warn!(alias = %request.alias, unused_key = %key.arn, "the alias appeared meanwhile; using its key");
            }
            let key = ctx
                .inventory
                .key(destination, &target, Duration::ZERO)
                .await?
                .ok_or_else(|| AwsError {
                    operation: "DescribeKey",
                    kind: AwsErrorKind::NotFound,
                    code: "NotFoundException".into(),
                    message: format!("{} points to a missing key", request.alias),
                })?;
            Ok((key, true))
        }
    }
}

/// The key backup-warden made for `source_arn` in this region that may be adopted, if any:
/// one GetResources call, then DescribeKey of each key it finds (normally none).
async fn made_earlier(
    ctx: &Context,
    destination: &Scope,
    source_arn: &str,
) -> Result<Option<KeyFacts>, AwsError> {
    let tagged = ctx
        .kms
        .tagged_keys(destination, &[MANAGED_BY, (SOURCE_TAG, source_arn)])
        .await?;
    if tagged.is_empty() {
        return Ok(None);
    }
    let aliased: HashSet<String> = ctx
        .inventory
        .aliases(destination, ctx.timing.resync)
        .await?
        .values()
        .cloned()
        .collect();
    let backups = ctx
        .inventory
        .automated_backups(destination, ctx.timing.resync)
        .await?;
    let mut known = Vec::with_capacity(tagged.len());
    for key in tagged {
        // Afresh: only a key enabled now is adopted.
        if let Some(facts) = ctx.inventory.key(destination, &key.arn, Duration::ZERO).await? {
            known.push(KnownKey { tagged: key, facts });
        }
    }
    let chosen = adoptable(source_arn, &known, &aliased, &backups).cloned();
    if let Some(key) = &chosen {
        tracing::info!(key = %key.arn, source = %source_arn, "adopting the replica key made earlier instead of creating another");
    }
    Ok(chosen)
}
