//! The cleanup of backup-warden's own orphan replica keys: keys it made (its tags, customer
//! managed) that no alias points to, that encrypt no automated backup of their region, and
//! that are older than a grace period get their deletion scheduled with the longest waiting
//! period (30 days, cancellable with CancelKeyDeletion). One of the two exceptions to "never
//! delete" in DESIGN.md section 1: it never touches a key it did not make.
//!
//! It runs at most once per resync interval per (role, destination region) that an object
//! in Enforce mode names. Its AWS calls there: one GetResources per 100 keys carrying
//! backup-warden's tags; only when one of them has no alias in the cached alias list, one
//! ListAliases and one DescribeDBInstanceAutomatedBackups (both afresh, and they refresh
//! the shared inventory) and DescribeKey of each such key, then ScheduleKeyDeletion of
//! each orphan and, when it scheduled any, one more ListAliases to undo a race.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

use super::Context;
use crate::{
    aws::{AwsError, Scope},
    policy::{
        database::KeyFacts,
        keys::{KnownKey, MANAGED_BY, TaggedKey, key_id_of, orphan},
    },
};

/// A key found disabled or pending deletion is looked at again once a day, not every resync.
const SETTLED_KEY_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyCleanupSettings {
    pub enabled: bool,
    /// A key younger than this is left alone: it may be between CreateKey and CreateAlias.
    pub grace: Duration,
}

impl Default for KeyCleanupSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// The settings, and when each scope was last cleaned.
pub struct KeyCleanup {
    pub settings: KeyCleanupSettings,
    last_run: Mutex<HashMap<Scope, Instant>>,
}

impl KeyCleanup {
    pub fn new(settings: KeyCleanupSettings) -> Self {
        Self {
            settings,
            last_run: Mutex::new(HashMap::new()),
        }
    }

    /// True at most once per `interval` for a scope: the caller runs the cleanup there.
    fn claim(&self, scope: &Scope, interval: Duration) -> bool {
        let mut last = self.last_run.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(scope) {
            Some(at) if at.elapsed() < interval => false,
            _ => {
                last.insert(scope.clone(), Instant::now());
                true
            }
        }
    }
}

/// Cleans `destination` if it is due there. Failures are logged and retried at the next
/// resync; they never fail the reconcile that triggered the cleanup.
pub(crate) async fn run_if_due(ctx: &Context, destination: &Scope) {
    let cleanup = &ctx.key_cleanup;
    if !cleanup.settings.enabled || ctx.policy.audit_only || !cleanup.claim(destination, ctx.timing.resync) {
        return;
    }
    if let Err(error) = sweep(ctx, destination).await {
        tracing::warn!(region = %destination.region, role = ?destination.role_arn, %error,
            "orphan key cleanup failed; trying again at the next resync");
    }
}

async fn sweep(ctx: &Context, scope: &Scope) -> Result<(), AwsError> {
    let ours = ctx.kms.tagged_keys(scope, &[MANAGED_BY]).await?;
    let cached = aliased_ids(ctx, scope, ctx.timing.resync).await?;
    if unaliased(&ours, &cached).next().is_none() {
        return Ok(());
    }
    // Something may be an orphan: look afresh before deleting anything.
    let aliased = aliased_ids(ctx, scope, Duration::ZERO).await?;
    let backups = ctx.inventory.automated_backups(scope, Duration::ZERO).await?;
    let grace = ctx.key_cleanup.settings.grace;
    let mut scheduled = Vec::new();
    for tagged in unaliased(&ours, &aliased) {
        let is_orphan = |facts: KeyFacts| {
            let key = KnownKey {
                tagged: tagged.clone(),
                facts,
            };
            orphan(&key, &aliased, &backups, Timestamp::now(), grace).map(|()| key)
        };
        // A key seen disabled or pending deletion within the day is not described again...
        let Some(facts) = ctx.inventory.key(scope, &tagged.arn, SETTLED_KEY_MAX_AGE).await? else {
            continue;
        };
        if is_orphan(facts).is_err() {
            continue;
        }
        // ...and one about to be deleted is described afresh.
        let Some(facts) = ctx.inventory.key(scope, &tagged.arn, Duration::ZERO).await? else {
            continue;
        };
        let key = match is_orphan(facts) {
            Ok(key) => key,
            Err(keep) => {
                tracing::debug!(key = %tagged.arn, ?keep, "key kept");
                continue;
            }
        };
        if let Err(error) = ctx.kms.schedule_deletion(scope, &key.facts.arn).await {
            tracing::warn!(key = %key.facts.arn, %error, "could not schedule the deletion of an orphan replica key");
            continue;
        }
        tracing::warn!(
            key = %key.facts.arn,
            source = key.tagged.made_for().unwrap_or_default(),
            region = %scope.region,
            created = ?key.facts.created,
            "scheduled the deletion of an orphan replica key backup-warden made (no alias, no backup uses it); \
             CancelKeyDeletion within 30 days keeps it"
        );
        ctx.metrics
            .orphan_keys_scheduled
            .with_label_values(&[scope.region.as_str()])
            .inc();
        let pending = KeyFacts {
            state: "PendingDeletion".into(),
            ..key.facts
        };
        scheduled.push(pending.clone());
        ctx.inventory.record_key_facts(scope, pending).await;
    }
    if !scheduled.is_empty() {
        undo_if_adopted(ctx, scope, scheduled).await?;
    }
    Ok(())
}

/// Another controller (without leader election) may have adopted a key between the fresh
/// look and the scheduling: a key that has an alias now gets its deletion cancelled.
async fn undo_if_adopted(ctx: &Context, scope: &Scope, scheduled: Vec<KeyFacts>) -> Result<(), AwsError> {
    let aliased = aliased_ids(ctx, scope, Duration::ZERO).await?;
    for key in scheduled.into_iter().filter(|k| aliased.contains(&k.key_id)) {
        ctx.kms.cancel_deletion(scope, &key.arn).await?;
        tracing::warn!(key = %key.arn, "an alias appeared on a key just scheduled for deletion; deletion cancelled");
        let enabled = KeyFacts {
            state: "Enabled".into(),
            ..key
        };
        ctx.inventory.record_key_facts(scope, enabled).await;
    }
    Ok(())
}

async fn aliased_ids(ctx: &Context, scope: &Scope, max_age: Duration) -> Result<HashSet<String>, AwsError> {
    Ok(ctx
        .inventory
        .aliases(scope, max_age)
        .await?
        .values()
        .map(|target| key_id_of(target).to_string())
        .collect())
}

fn unaliased<'a>(keys: &'a [TaggedKey], aliased: &'a HashSet<String>) -> impl Iterator<Item = &'a TaggedKey> {
    keys.iter().filter(|k| !aliased.contains(key_id_of(&k.arn)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_claimed_at_most_once_per_interval() {
        let cleanup = KeyCleanup::new(KeyCleanupSettings::default());
        let a = Scope::new(None, "us-west-2");
        let b = Scope::new(Some("arn:aws:iam::123456789012:role/x"), "us-west-2");
        assert!(cleanup.claim(&a, Duration::from_secs(60)));
        assert!(
            !cleanup.claim(&a, Duration::from_secs(60)),
            "again within the interval"
        );
        assert!(
            cleanup.claim(&b, Duration::from_secs(60)),
            "another role is another scope"
        );
        assert!(
            cleanup.claim(&a, Duration::ZERO),
            "due once the interval has passed"
        );
    }
}
