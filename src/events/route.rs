//! From what an event says changed to the objects concerned, of every kind: each is marked
//! urgent (its next reconcile reads afresh) and woken.

use std::sync::{Arc, Mutex, OnceLock};

use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::sync::mpsc;

use super::{Target, Urgent};
use crate::{
    api::{BackedUpDatabase, BackedUpRepository, RetainedAuditTrail},
    controller::Decoded,
    policy::database::replica_key_alias,
};

/// The objects of one kind events wake: what is urgent, and the wakes its controller reads.
pub struct Wakes<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    pub urgent: Urgent,
    /// The kind's objects, as its controller's reflector holds them (set when it starts).
    pub store: OnceLock<Store<Decoded<K>>>,
    tx: mpsc::UnboundedSender<ObjectRef<Decoded<K>>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<Decoded<K>>>>>,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Default for Wakes<K> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            urgent: Urgent::default(),
            store: OnceLock::new(),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Wakes<K> {
    /// The objects events are matched against: the controller's own store.
    pub fn set_store(&self, store: Store<Decoded<K>>) {
        let _ = self.store.set(store);
    }

    /// The wakes, for the kind's controller (the first caller; later ones get none).
    pub fn stream(&self) -> impl Stream<Item = ObjectRef<Decoded<K>>> + Send + 'static {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            rx.recv().await.map(|item| (item, Some(rx)))
        })
    }

    /// Looks at the object soon, without reading AWS afresh for it (its status changed, say).
    pub fn wake_for_status(&self, namespace: &str, name: &str) {
        let _ = self.tx.send(ObjectRef::new(name).within(namespace));
    }

    fn wake(&self, object: &K, source: &'static str, at: Timestamp) {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        self.urgent.mark(format!("{namespace}/{name}"), source, at);
        let _ = self.tx.send(ObjectRef::new(&name).within(&namespace));
    }
}

/// Whether an object naming `role` may be in the event's account: an object without a role
/// acts with the controller's own identity, whose account the event alone does not tell.
fn same_account(role: Option<&str>, account: &Option<String>) -> bool {
    match (role.and_then(|r| r.split(':').nth(4)), account) {
        (Some(ours), Some(theirs)) => ours == theirs,
        _ => true,
    }
}

/// Whether `key` (an id or an ARN, as the event names it) is the key `arn`.
fn same_key(arn: &str, key: &str) -> bool {
    arn == key || arn.rsplit_once('/').is_some_and(|(_, id)| id == key)
}

pub fn concerns_database(db: &BackedUpDatabase, target: &Target) -> bool {
    let (instance, replication) = (&db.spec.instance, &db.spec.replication);
    let role = instance.role_arn.as_deref();
    match target {
        Target::Instance {
            account,
            region,
            identifier,
        } => {
            same_account(role, account)
                && instance.region == *region
                && instance.identifier.eq_ignore_ascii_case(identifier)
        }
        Target::ReplicasIn { account, region } => {
            same_account(role, account) && replication.destination_region == *region
        }
        Target::Key { account, region, key } => {
            let observed = db
                .status
                .as_ref()
                .and_then(|s| s.replica.as_ref())
                .and_then(|r| r.kms_key_arn.as_deref());
            let given = replication.kms_key.arn.as_deref();
            same_account(role, account)
                && replication.destination_region == *region
                && observed.into_iter().chain(given).any(|arn| same_key(arn, key))
        }
        Target::Alias {
            account,
            region,
            alias,
        } => {
            same_account(role, account)
                && replication.destination_region == *region
                && alias.eq_ignore_ascii_case(&replica_key_alias(&instance.region, &instance.identifier))
        }
        _ => false,
    }
}

pub fn concerns_repository(repo: &BackedUpRepository, target: &Target) -> bool {
    match target {
        Target::Repository { name } => repo.spec.repository.eq_ignore_ascii_case(name),
        Target::Bucket { name } => repo.spec.storage.bucket == *name,
        _ => false,
    }
}

pub fn concerns_trail(trail: &RetainedAuditTrail, target: &Target) -> bool {
    let spec = &trail.spec.trail;
    match target {
        Target::Trail {
            account,
            region,
            name,
        } => {
            let wanted = name.rsplit_once(":trail/").map_or(name.as_str(), |(_, n)| n);
            same_account(spec.role_arn.as_deref(), account)
                && spec.region == *region
                && spec.trail_name() == wanted
        }
        Target::Bucket { name } => {
            trail
                .status
                .as_ref()
                .and_then(|s| s.trail.as_ref())
                .and_then(|t| t.bucket.as_deref())
                == Some(name.as_str())
        }
        _ => false,
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Wakes<K> {
    /// Wakes the objects the targets concern; how many.
    fn route(
        &self,
        targets: &[Target],
        concerns: fn(&K, &Target) -> bool,
        source: &'static str,
        at: Timestamp,
    ) -> usize {
        let Some(store) = self.store.get() else { return 0 };
        let mut woken = 0;
        for object in store.state() {
            if let Some(object) = object.valid()
                && targets.iter().any(|t| concerns(object, t))
            {
                self.wake(object, source, at);
                woken += 1;
            }
        }
        woken
    }
}

/// Every kind the controller runs: the contexts whose cached facts an event makes stale.
#[derive(Default)]
pub struct Router {
    /// The databases, and the inventory the coverages count from.
    pub databases: Option<Arc<crate::controller::Context>>,
    pub repositories: Option<Arc<crate::controller::repository::RepoContext>>,
    pub trails: Option<Arc<Wakes<RetainedAuditTrail>>>,
}

/// Drops the cached facts a key or alias event changed, for the databases it concerns: an
/// urgent look reads the instance and its replication afresh, and what is cached for a
/// resync otherwise (keys, aliases) only when an event said it changed.
fn forget_keys(ctx: &crate::controller::Context, targets: &[Target]) {
    let Some(store) = ctx.wakes.store.get() else {
        return;
    };
    for target in targets
        .iter()
        .filter(|t| matches!(t, Target::Key { .. } | Target::Alias { .. }))
    {
        for db in store.state() {
            let Some(db) = db.valid().filter(|db| concerns_database(db, target)) else {
                continue;
            };
            let scope = crate::aws::Scope::new(
                db.spec.instance.role_arn.as_deref(),
                &db.spec.replication.destination_region,
            );
            match target {
                Target::Key { key, .. } => ctx.inventory.forget_key(&scope, key),
                _ => ctx.inventory.forget_aliases(&scope),
            }
        }
    }
}

/// The (role, region) scans of the coverages that count instances of `account` in `region`.
pub fn coverage_scans(
    coverage: &crate::api::BackupCoverage,
    account: &Option<String>,
    region: &str,
) -> Vec<Option<String>> {
    coverage
        .spec
        .databases
        .iter()
        .flat_map(|d| &d.accounts)
        .filter(|a| same_account(a.role_arn.as_deref(), account) && a.regions.iter().any(|r| r == region))
        .map(|a| a.role_arn.clone())
        .collect()
}

/// Reads the regions again where coverages count the instances a creation or deletion
/// changed: the read's change notice wakes the coverages. How many coverages.
fn rescan(ctx: &Arc<crate::controller::Context>, targets: &[Target]) -> usize {
    let Some(store) = ctx.coverages.get() else {
        return 0;
    };
    let mut scans = std::collections::BTreeSet::new();
    let mut concerned = 0;
    for coverage in store.state() {
        let Some(coverage) = coverage.valid() else {
            continue;
        };
        let mut any = false;
        for target in targets {
            if let Target::Instances { account, region } = target {
                for role in coverage_scans(coverage, account, region) {
                    any = true;
                    scans.insert(crate::aws::Scope::new(role.as_deref(), region));
                }
            }
        }
        concerned += usize::from(any);
    }
    for scope in scans {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = ctx.inventory.instances(&scope, std::time::Duration::ZERO).await {
                tracing::warn!(region = %scope.region, error = %e, "cannot read the instances a change event concerns");
            }
        });
    }
    concerned
}

impl Router {
    /// Wakes every object the targets concern; how many.
    pub fn route(&self, targets: &[Target], source: &'static str, at: Timestamp) -> usize {
        let databases = self.databases.as_ref().map_or(0, |ctx| {
            forget_keys(ctx, targets);
            let mut listed = 0;
            for target in targets {
                if let Target::Listed { repository, gone } = target
                    && ctx.coverages.get().is_some()
                {
                    ctx.listings.push(repository.clone(), *gone);
                    listed += 1;
                }
            }
            ctx.wakes.route(targets, concerns_database, source, at) + rescan(ctx, targets) + listed
        });
        let repositories = self.repositories.as_ref().map_or(0, |ctx| {
            for target in targets {
                if let Target::Bucket { name } = target {
                    ctx.buckets.forget_lifecycle(name);
                }
            }
            ctx.wakes.route(targets, concerns_repository, source, at)
        });
        databases
            + repositories
            + self
                .trails
                .as_ref()
                .map_or(0, |w| w.route(targets, concerns_trail, source, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db(extra: serde_json::Value) -> BackedUpDatabase {
        let mut spec = json!({"instance": {"identifier": "orders-db", "region": "us-east-1"}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
            "metadata": {"name": "orders", "namespace": "team"}, "spec": spec,
        }))
        .expect("db")
    }

    #[test]
    fn a_database_is_concerned_by_its_instance_its_replica_key_and_alias() {
        let plain = db(json!({}));
        let instance = |account: Option<&str>, id: &str| Target::Instance {
            account: account.map(str::to_string),
            region: "us-east-1".into(),
            identifier: id.into(),
        };
        assert!(concerns_database(
            &plain,
            &instance(Some("111122223333"), "orders-db")
        ));
        assert!(concerns_database(&plain, &instance(None, "ORDERS-DB")));
        assert!(!concerns_database(&plain, &instance(None, "other-db")));
        let in_account = db(json!({"instance": {
            "identifier": "orders-db", "region": "us-east-1",
            "roleArn": "arn:aws:iam::444455556666:role/backup-warden"}}));
        assert!(!concerns_database(
            &in_account,
            &instance(Some("111122223333"), "orders-db")
        ));
        assert!(concerns_database(
            &in_account,
            &instance(Some("444455556666"), "orders-db")
        ));

        let mut keyed = db(json!({}));
        keyed.status = serde_json::from_value(json!({"replica": {
            "kmsKeyArn": "arn:aws:kms:us-west-2:111122223333:key/1234abcd"}}))
        .ok();
        let key = |region: &str, key: &str| Target::Key {
            account: None,
            region: region.into(),
            key: key.into(),
        };
        assert!(concerns_database(&keyed, &key("us-west-2", "1234abcd")));
        assert!(concerns_database(
            &keyed,
            &key("us-west-2", "arn:aws:kms:us-west-2:111122223333:key/1234abcd")
        ));
        assert!(!concerns_database(&keyed, &key("us-west-2", "5678")));
        assert!(!concerns_database(&keyed, &key("us-east-1", "1234abcd")));
        let alias = |alias: &str| Target::Alias {
            account: None,
            region: "us-west-2".into(),
            alias: alias.into(),
        };
        assert!(concerns_database(
            &plain,
            &alias("alias/backup-warden/us-east-1/orders-db")
        ));
        assert!(!concerns_database(
            &plain,
            &alias("alias/backup-warden/us-east-1/other")
        ));
        assert!(concerns_database(
            &plain,
            &Target::ReplicasIn {
                account: None,
                region: "us-west-2".into()
            }
        ));
        assert!(!concerns_database(
            &plain,
            &Target::Bucket {
                name: "orders-db".into()
            }
        ));
    }

    #[test]
    fn repositories_and_trails_by_name_and_bucket() {
        let repo: BackedUpRepository = serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
            "metadata": {"name": "r", "namespace": "team"},
            "spec": {"repository": "Narrative-IO/marketplace", "storage": {"bucket": "backups"}},
        }))
        .expect("repo");
        let named = |name: &str| Target::Repository { name: name.into() };
        assert!(concerns_repository(&repo, &named("narrative-io/marketplace")));
        assert!(!concerns_repository(&repo, &named("narrative-io/other")));
        assert!(concerns_repository(
            &repo,
            &Target::Bucket {
                name: "backups".into()
            }
        ));

        let mut trail: RetainedAuditTrail = serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "RetainedAuditTrail",
            "metadata": {"name": "t", "namespace": "security"},
            "spec": {"trail": {"name": "org", "region": "us-east-1"}},
        }))
        .expect("trail");
        let t = |region: &str, name: &str| Target::Trail {
            account: None,
            region: region.into(),
            name: name.into(),
        };
        assert!(concerns_trail(&trail, &t("us-east-1", "org")));
        assert!(concerns_trail(
            &trail,
            &t("us-east-1", "arn:aws:cloudtrail:us-east-1:111122223333:trail/org")
        ));
        assert!(!concerns_trail(&trail, &t("eu-west-1", "org")));
        assert!(!concerns_trail(&trail, &Target::Bucket { name: "logs".into() }));
        trail.status = serde_json::from_value(json!({"trail": {"bucket": "logs"}})).ok();
        assert!(concerns_trail(&trail, &Target::Bucket { name: "logs".into() }));
    }
}
