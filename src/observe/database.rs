//! How the database checks' facts are read: from the shared inventories (the controller's
//! cached ones, or `check`'s fresh ones). I/O only; the policy judges.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::BackedUpDatabase,
    aws::{AwsError, Scope, inventory::Inventory},
    policy::{
        database::{DatabaseObservation, KeyLookup, ReplicaFacts, replica_key_alias},
        keys::key_id_of,
    },
};

/// Reads what the policy needs from the shared inventories. `fresh` bounds the age of what
/// a change in progress moves (the instance and its replication); keys, aliases and
/// snapshots are read once per resync, or afresh too when `fresh` is zero (a reconcile
/// someone asked for); the source regions a destination supports, once a day.
pub async fn database(
    db: &BackedUpDatabase,
    inv: &Inventory,
    resync: Duration,
    fresh: Duration,
) -> Result<DatabaseObservation, AwsError> {
    let max_age = super::once_per(resync, fresh);
    let spec = &db.spec;
    let role = spec.instance.role_arn.as_deref();
    let source = Scope::new(role, &spec.instance.region);
    let destination = Scope::new(role, &spec.replication.destination_region);

    // A change settling, or a reconcile asked for, reads just this instance and its
    // replication (or the whole region, when that is cheaper); a sweep, the whole region.
    let settling = fresh < resync;
    let identifier = &spec.instance.identifier;
    let instance = if settling {
        inv.instance_now(&source, identifier, fresh).await?
    } else {
        inv.instance(&source, identifier, fresh).await?
    };
    let alias = replica_key_alias(&spec.instance.region, &spec.instance.identifier);
    let desired_key = desired_key(
        inv,
        &destination,
        spec.replication.kms_key.arn.as_deref(),
        &alias,
        max_age,
    )
    .await?;
    let now = Timestamp::now();
    let Some(instance) = instance else {
        return Ok(DatabaseObservation {
            instance: None,
            newest_snapshot: None,
            replica: None,
            replica_key: None,
            desired_key,
            source_region_supported: true,
            other_key_users: Vec::new(),
            quota_exhausted_at: None,
            now,
        });
    };

    let backups = if settling {
        inv.automated_backups_now(&destination, &instance.arn, fresh)
            .await?
    } else {
        inv.automated_backups(&destination, fresh).await?
    };
    let replica = pick_replica(&backups, &instance.arn);
    let replica_key = match replica
        .as_ref()
        .filter(|r| r.is_active())
        .and_then(|r| r.kms_key_arn.as_deref())
    {
        Some(arn) => Some(match inv.key(&destination, arn, max_age).await? {
            Some(key) => KeyLookup::Found(key),
            None => KeyLookup::NotFound(arn.to_string()),
        }),
        None => None,
    };
    let other_key_users = other_key_users(
        &backups,
        &instance.arn,
        [Some(&desired_key), replica_key.as_ref()],
    );
    Ok(DatabaseObservation {
        other_key_users,
        quota_exhausted_at: inv.quota_exhausted_at(&destination, &backups),
        newest_snapshot: inv
            .newest_snapshot(&source, &instance.identifier, max_age)
            .await?,
        source_region_supported: inv.replication_supported(&destination, &instance.region).await?,
        instance: Some(instance),
        replica,
        replica_key,
        desired_key,
        now,
    })
}

/// The replication of `source_arn` held in the destination: an active one first, else the newest.
fn pick_replica(backups: &[Arc<ReplicaFacts>], source_arn: &str) -> Option<ReplicaFacts> {
    let mine: Vec<&ReplicaFacts> = backups
        .iter()
        .map(Arc::as_ref)
        .filter(|b| b.source_arn == source_arn)
        .collect();
    mine.iter()
        .find(|b| b.is_active())
        .or_else(|| mine.last())
        .map(|b| (*b).clone())
}

/// The automated backups of other sources encrypted with one of `keys`.
fn other_key_users<'a>(
    backups: &[Arc<ReplicaFacts>],
    source_arn: &str,
    keys: impl IntoIterator<Item = Option<&'a KeyLookup>>,
) -> Vec<ReplicaFacts> {
    let ids: Vec<&str> = keys
        .into_iter()
        .filter_map(|k| match k {
            Some(KeyLookup::Found(key)) => Some(key.key_id.as_str()),
            _ => None,
        })
        .collect();
    backups
        .iter()
        .filter(|b| b.source_arn != source_arn)
        .filter(|b| {
            b.kms_key_arn
                .as_deref()
                .is_some_and(|k| ids.contains(&key_id_of(k)))
        })
        .map(|b| ReplicaFacts::clone(b))
        .collect()
}

async fn desired_key(
    inv: &Inventory,
    destination: &Scope,
    arn: Option<&str>,
    alias: &str,
    max_age: Duration,
) -> Result<KeyLookup, AwsError> {
    let reference = match arn {
        Some(arn) => arn.to_string(),
        None => match inv.alias_target(destination, alias, max_age).await? {
            Some(target) => target,
            None => return Ok(KeyLookup::AliasMissing(alias.to_string())),
        },
    };
    Ok(match inv.key(destination, &reference, max_age).await? {
        Some(key) => KeyLookup::Found(key),
        None => KeyLookup::NotFound(reference),
    })
}
