//! Inventories shared by every object of one (role, region): one paginated read serves all
//! the databases in it. An entry is read again only when it is older than the age the
//! caller accepts (the resync interval, or a short settle time while work is pending),
//! and concurrent callers wait for one read instead of each making their own. Actions
//! write what AWS answered back into the inventory, so nothing is read twice to see them.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

use super::{AwsError, Scope, kms::Kms, rds::Rds};
use crate::policy::{
    database::{InstanceFacts, KeyFacts, ReplicaFacts},
    keys::key_id_of,
    repository::{BackupObject, LifecycleRuleFacts},
};

/// Source regions rarely change: DescribeSourceRegions is read once a day per destination.
const SOURCE_REGIONS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Automated snapshots are taken once a day: a newer one than the newest known is not
/// looked for before this has passed since it.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Repository backups are made once a day: a newer one than the newest known is not
/// looked for before this has passed since it.
const BACKUP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How long a quota refusal holds back new keys in a destination whose count of active
/// replications has not dropped (the quota may have been raised meanwhile).
const QUOTA_REFUSAL_MEMORY: Duration = Duration::from_secs(3600);

type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// A map of single-flight, time-stamped entries.
struct Cached<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cached<K, V> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &K) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    async fn get<F, Fut>(&self, key: &K, max_age: Duration, fetch: F) -> Result<V, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        self.get_noting(key, max_age, fetch, |_, _| {}).await
    }

    /// As `get`; when it reads, `note` sees the value it replaces (if any) and the new one.
    async fn get_noting<F, Fut>(
        &self,
        key: &K,
        max_age: Duration,
        fetch: F,
        note: impl FnOnce(&V, &V),
    ) -> Result<V, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        if let Some((at, value)) = entry.as_ref()
            && at.elapsed() <= max_age
        {
            return Ok(value.clone());
        }
        let value = fetch().await?;
        if let Some((_, old)) = entry.as_ref() {
            note(old, &value);
        }
        *entry = Some((Instant::now(), value.clone()));
        Ok(value)
    }

    /// Drops the entries `drop` names: their next `get` reads, whatever its `max_age`.
    fn forget(&self, drop: impl Fn(&K) -> bool) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|k, _| !drop(k));
    }

    /// Changes a cached value in place (no read); does nothing if it was never read.
    async fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        if let Some((_, value)) = entry.as_mut() {
            change(value);
        }
    }

    async fn put(&self, key: &K, value: V) {
        *self.slot(key).lock().await = Some((Instant::now(), value));
    }

    /// The cached value, however old, without reading.
    async fn peek(&self, key: &K) -> Option<V> {
        self.peek_aged(key).await.map(|(_, v)| v)
    }

    /// The cached value and its age, without reading.
    async fn peek_aged(&self, key: &K) -> Option<(Duration, V)> {
        self.slot(key)
            .lock()
            .await
            .as_ref()
            .map(|(at, v)| (at.elapsed(), v.clone()))
    }
}

/// Where one entry of a scope read on its own is fresh enough, or how to read it.
enum Read {
    /// The last read, of the scope or of the entry alone, is young enough.
    Cached,
    /// Read the entry alone (one request).
    Alone,
    /// Read the whole scope: it has never been read, or a quarter as many entries were
    /// read alone within the age asked for as a whole read has pages (at least one).
    Whole,
}

/// Entries of a scope read on their own since the scope's last whole read, and when.
struct Alone<K> {
    reads: Mutex<HashMap<(Scope, K), Instant>>,
}

impl<K: Eq + Hash + Clone> Alone<K> {
    fn new() -> Self {
        Self {
            reads: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Scope, K), Instant>> {
        self.reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How to read `key` of `scope` no older than `max_age`, given the age and entry count of
    /// the scope's last whole read (`None`: never read).
    fn choose(&self, scope: &Scope, key: &K, max_age: Duration, whole: Option<(Duration, usize)>) -> Read {
        let Some((age, len)) = whole else {
            return Read::Whole;
        };
        if age <= max_age {
            return Read::Cached;
        }
        let reads = self.lock();
        if reads
            .get(&(scope.clone(), key.clone()))
            .is_some_and(|at| at.elapsed() <= max_age)
        {
            return Read::Cached;
        }
        let recent = reads
            .iter()
            .filter(|((s, _), at)| s == scope && at.elapsed() <= max_age)
            .count();
        // Reads alone stop well before they cost what the whole read would: while many
        // changes settle, the region's read serves them all for a quarter more at most.
        let pages = len.div_ceil(super::rds::PAGE_SIZE as usize);
        if recent < (pages / 4).max(1) {
            Read::Alone
        } else {
            Read::Whole
        }
    }

    fn read(&self, scope: &Scope, key: &K) {
        self.lock().insert((scope.clone(), key.clone()), Instant::now());
    }

    /// A whole read of `scope` supersedes the reads of its entries alone.
    fn superseded(&self, scope: &Scope) {
        self.lock().retain(|(s, _), _| s != scope);
    }
}

/// The automated backups held in a region. Each entry is shared, so that changing one (a
/// replication started, or read alone) while a reconcile holds the list copies pointers,
/// not every replica's strings: at 10,000 replicas that copy was megabytes per change.
pub type Replicas = Arc<Vec<Arc<ReplicaFacts>>>;

fn by_arn(backups: &[Arc<ReplicaFacts>]) -> HashMap<&str, &ReplicaFacts> {
    backups.iter().map(|r| (r.arn.as_str(), r.as_ref())).collect()
}

fn active_replications(backups: &[Arc<ReplicaFacts>]) -> usize {
    backups.iter().filter(|b| b.is_active()).count()
}

/// The newest automated snapshot one instance's own read found, and when it was read.
type SnapshotRead = (Option<Timestamp>, Instant);

/// Instances one read found changed: (region, identifier) each.
pub type Changed = Vec<(String, String)>;

pub struct Inventory {
    rds: Arc<dyn Rds>,
    kms: Arc<dyn Kms>,
    instances: Cached<Scope, Arc<HashMap<String, InstanceFacts>>>,
    automated_backups: Cached<Scope, Replicas>,
    /// Instances and replications read on their own while a change settles.
    instances_alone: Alone<String>,
    backups_alone: Alone<String>,
    /// One listing of a region's automated snapshots, at first need; after it, an instance's
    /// snapshots are read on their own (here) once its next snapshot is due.
    snapshots: Cached<Scope, Arc<HashMap<String, Timestamp>>>,
    snapshots_alone: Mutex<HashMap<(Scope, String), SnapshotRead>>,
    source_regions: Cached<Scope, Arc<Vec<String>>>,
    aliases: Cached<Scope, Arc<HashMap<String, String>>>,
    keys: Cached<(Scope, String), Option<KeyFacts>>,
    /// Per destination: when RDS last refused a start for the quota, and how many
    /// replications were active there then.
    quota_refusals: Mutex<HashMap<Scope, (Instant, usize)>>,
    /// Where a read that finds instances or their replications changed says so, once per
    /// read: (each instance's region, its identifier), so that the objects concerned are
    /// looked at now rather than at their next resync.
    changes: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Changed>>>,
    /// The instance tags kept (what coverages select and exempt by); an instance's other
    /// tags are dropped as it is read, as every instance of a region is held here.
    tag_keys: Mutex<Arc<Vec<String>>>,
}

impl Inventory {
    pub fn new(rds: Arc<dyn Rds>, kms: Arc<dyn Kms>) -> Self {
        Self {
            rds,
            kms,
            instances: Cached::new(),
            automated_backups: Cached::new(),
            instances_alone: Alone::new(),
            backups_alone: Alone::new(),
            snapshots: Cached::new(),
            snapshots_alone: Mutex::new(HashMap::new()),
            source_regions: Cached::new(),
            aliases: Cached::new(),
            keys: Cached::new(),
            quota_refusals: Mutex::new(HashMap::new()),
            changes: Mutex::new(Vec::new()),
            tag_keys: Mutex::new(Arc::default()),
        }
    }

    /// Keeps these instance tags from now on. Whether any of them was not kept before: the
    /// instances read earlier lack it, and a caller that needs it reads them again.
    pub fn keep_tags(&self, keys: impl IntoIterator<Item = String>) -> bool {
        let mut kept = self.tag_keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<String> = kept.as_ref().clone();
        let before = all.len();
        for key in keys {
            if !all.contains(&key) {
                all.push(key);
            }
        }
        let added = all.len() > before;
        if added {
            *kept = Arc::new(all);
        }
        added
    }

    /// `facts` with only the tags kept.
    fn trimmed(&self, mut facts: InstanceFacts) -> InstanceFacts {
        let kept = self.tag_keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
        facts.tags.retain(|key| kept.iter().any(|k| k == key));
        facts
    }

    /// The instances each read finds changed from the previous read (new ones and gone
    /// ones included), as (region, identifier); the restorable times, which move every few
    /// minutes, do not count. Each caller gets every batch (the databases, the coverages).
    pub fn changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<Changed> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.changes.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    fn changed(&self, batch: Changed) {
        if batch.is_empty() {
            return;
        }
        // A receiver dropped (its controller stopped) is forgotten.
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tx| tx.send(batch.clone()).is_ok());
    }

    pub async fn instance(
        &self,
        scope: &Scope,
        identifier: &str,
        max_age: Duration,
    ) -> Result<Option<InstanceFacts>, AwsError> {
        Ok(self.instances(scope, max_age).await?.get(identifier).cloned())
    }

    /// Every instance of the scope, read no longer than `max_age` ago (one read serves all
    /// the objects of the scope, and the coverages scanning it).
    pub async fn instances(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<Arc<HashMap<String, InstanceFacts>>, AwsError> {
        let note = |old: &Arc<HashMap<String, InstanceFacts>>, new: &Arc<HashMap<String, InstanceFacts>>| {
            let ids: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            let changed = ids
                .into_iter()
                .filter(|id| match (old.get(*id), new.get(*id)) {
                    (Some(a), Some(b)) => !a.same_but_times(b),
                    _ => true,
                })
                .map(|id| (scope.region.clone(), id.clone()))
                .collect();
            self.changed(changed);
        };
        self.instances
            .get_noting(
                scope,
                max_age,
                || async {
                    self.instances_alone.superseded(scope);
                    let list = self.rds.instances(scope).await?;
                    Ok(Arc::new(
                        list.into_iter()
                            .map(|i| (i.identifier.clone(), self.trimmed(i)))
                            .collect(),
                    ))
                },
                note,
            )
            .await
    }

    /// As `instances`, with how old the read is: a caller that looks again once it is
    /// `max_age` old reads nothing another caller read since.
    pub async fn instances_aged(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<(Arc<HashMap<String, InstanceFacts>>, Duration), AwsError> {
        let all = self.instances(scope, max_age).await?;
        let age = self
            .instances
            .peek_aged(scope)
            .await
            .map_or(Duration::ZERO, |(age, _)| age);
        Ok((all, age))
    }

    /// The instance, no older than `max_age` (a change settling, or a reconcile asked for):
    /// read on its own, unless a quarter as many of the region's instances were read so
    /// within `max_age` as a read of the whole region has pages, and then the whole region is
    /// read. So the reads while N changes settle are bounded by both N and 1.25 times the
    /// region's pages per `max_age`.
    pub async fn instance_now(
        &self,
        scope: &Scope,
        identifier: &str,
        max_age: Duration,
    ) -> Result<Option<InstanceFacts>, AwsError> {
        let whole = self.instances.peek_aged(scope).await;
        let id = identifier.to_string();
        let read = self.instances_alone.choose(
            scope,
            &id,
            max_age,
            whole.as_ref().map(|(age, all)| (*age, all.len())),
        );
        match read {
            Read::Cached => Ok(whole.and_then(|(_, all)| all.get(identifier).cloned())),
            Read::Whole => self.instance(scope, identifier, max_age).await,
            Read::Alone => {
                // Not held across the update: the region's map would be copied for it.
                drop(whole);
                let facts = self
                    .rds
                    .instance(scope, identifier)
                    .await?
                    .map(|f| self.trimmed(f));
                self.instances
                    .update(scope, |all| {
                        let all = Arc::make_mut(all);
                        match &facts {
                            Some(f) => all.insert(id.clone(), f.clone()),
                            None => all.remove(&id),
                        };
                    })
                    .await;
                self.instances_alone.read(scope, &id);
                Ok(facts)
            }
        }
    }

    /// The automated backups in the destination `scope` of the instance `source_arn`, and
    /// all the others as last read, with that instance's no older than `max_age`; read on
    /// their own or with the whole region's, as `instance_now` chooses.
    pub async fn automated_backups_now(
        &self,
        scope: &Scope,
        source_arn: &str,
        max_age: Duration,
    ) -> Result<Replicas, AwsError> {
        let whole = self.automated_backups.peek_aged(scope).await;
        let key = source_arn.to_string();
        let read = self.backups_alone.choose(
            scope,
            &key,
            max_age,
            whole.as_ref().map(|(age, all)| (*age, all.len())),
        );
        match read {
            Read::Cached => Ok(whole.map(|(_, all)| all).unwrap_or_default()),
            Read::Whole => self.automated_backups(scope, max_age).await,
            Read::Alone => {
                // Not held across the update: the list would be copied for this holder.
                drop(whole);
                let mine = self.rds.automated_backups_of(scope, source_arn).await?;
                self.automated_backups
                    .update(scope, |all| {
                        let all = Arc::make_mut(all);
                        all.retain(|r| r.source_arn != source_arn);
                        all.extend(mine.into_iter().map(Arc::new));
                    })
                    .await;
                self.backups_alone.read(scope, &key);
                Ok(self.automated_backups.peek(scope).await.unwrap_or_default())
            }
        }
    }

    /// Every automated backup held in the scope's region (replicas of other regions' instances included).
    pub async fn automated_backups(&self, scope: &Scope, max_age: Duration) -> Result<Replicas, AwsError> {
        let note = |old: &Replicas, new: &Replicas| {
            // A replica not found with the same facts on the other side changed (or came, or went).
            let (before, after) = (by_arn(old), by_arn(new));
            let unmatched = |r: &&Arc<ReplicaFacts>, other: &HashMap<&str, &ReplicaFacts>| {
                other.get(r.arn.as_str()).is_none_or(|o| !o.same_but_times(r))
            };
            let came = new.iter().filter(|r| unmatched(r, &before));
            let went = old.iter().filter(|r| unmatched(r, &after));
            // arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER
            let changed = came
                .chain(went)
                .filter_map(|r| {
                    let parts: Vec<&str> = r.source_arn.split(':').collect();
                    Some((parts.get(3)?.to_string(), parts.get(6)?.to_string()))
                })
                .collect();
            self.changed(changed);
        };
        self.automated_backups
            .get_noting(
                scope,
                max_age,
                || async {
                    self.backups_alone.superseded(scope);
                    let list = self.rds.automated_backups(scope).await?;
                    Ok(Arc::new(list.into_iter().map(Arc::new).collect()))
                },
                note,
            )
            .await
    }

    /// The newest automated snapshot of the instance. The region's snapshots are listed
    /// once; after that an instance's are read on their own, and only once its next daily
    /// snapshot is due (or it has none yet), at most once per `max_age`: the reads do not
    /// grow with retention days, and a quiet day costs one read per instance.
    pub async fn newest_snapshot(
        &self,
        scope: &Scope,
        identifier: &str,
        max_age: Duration,
    ) -> Result<Option<Timestamp>, AwsError> {
        let listed = self
            .snapshots
            .get(scope, Duration::MAX, || async {
                Ok(Arc::new(self.rds.newest_automated_snapshots(scope).await?))
            })
            .await?;
        let key = (scope.clone(), identifier.to_string());
        let alone = self
            .snapshots_alone
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .copied();
        let (newest, read_at) = match alone {
            Some((newest, at)) => (newest, Some(at)),
            None => (listed.get(identifier).copied(), None),
        };
        let due =
            newest.is_none_or(|t| Timestamp::now().duration_since(t).unsigned_abs() >= SNAPSHOT_INTERVAL);
        let recent = read_at.is_some_and(|at| at.elapsed() <= max_age);
        if recent || !(due || max_age.is_zero()) {
            return Ok(newest);
        }
        let read = self.rds.newest_automated_snapshot(scope, identifier).await?;
        self.snapshots_alone
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, (read, Instant::now()));
        Ok(read)
    }

    /// Whether `destination` can replicate automated backups from `source_region`.
    pub async fn replication_supported(
        &self,
        destination: &Scope,
        source_region: &str,
    ) -> Result<bool, AwsError> {
        let regions = self
            .source_regions
            .get(destination, SOURCE_REGIONS_MAX_AGE, || async {
                Ok(Arc::new(self.rds.replication_source_regions(destination).await?))
            })
            .await?;
        Ok(regions.iter().any(|r| r == source_region))
    }

    /// Every alias of the region and the key id it points to.
    pub async fn aliases(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<Arc<HashMap<String, String>>, AwsError> {
        self.aliases
            .get(scope, max_age, || async {
                Ok(Arc::new(self.kms.aliases(scope).await?))
            })
            .await
    }

    /// The key id an alias points to.
    pub async fn alias_target(
        &self,
        scope: &Scope,
        alias: &str,
        max_age: Duration,
    ) -> Result<Option<String>, AwsError> {
        Ok(self.aliases(scope, max_age).await?.get(alias).cloned())
    }

    /// DescribeKey, once per distinct key per `max_age`, whether it is named by its id (an
    /// alias' target) or its ARN (a replica's key): both are cached under the id.
    pub async fn key(
        &self,
        scope: &Scope,
        key: &str,
        max_age: Duration,
    ) -> Result<Option<KeyFacts>, AwsError> {
        self.keys
            .get(&(scope.clone(), key_id_of(key).to_string()), max_age, || {
                self.kms.describe_key(scope, key)
            })
            .await
    }

    /// A change event says the key changed (disabled, scheduled for deletion, its policy):
    /// the next look reads it.
    pub fn forget_key(&self, scope: &Scope, key: &str) {
        let id = key_id_of(key);
        self.keys.forget(|(s, k)| s == scope && k == id);
    }

    /// A change event says an alias of the region moved or went: the next look lists them.
    pub fn forget_aliases(&self, scope: &Scope) {
        self.aliases.forget(|s| s == scope);
    }

    /// What ModifyDBInstance answered.
    pub async fn record_instance(&self, scope: &Scope, facts: InstanceFacts) {
        let facts = self.trimmed(facts);
        self.instances
            .update(scope, |all| {
                Arc::make_mut(all).insert(facts.identifier.clone(), facts);
            })
            .await;
    }

    /// StartDBInstanceAutomatedBackupsReplication was refused for the quota: until the
    /// destination's count of active replications drops (or an hour passes), no key is made
    /// for a replication there.
    pub async fn record_quota_refused(&self, destination: &Scope) {
        let active = self
            .automated_backups
            .peek(destination)
            .await
            .map_or(0, |all| active_replications(&all));
        self.quota_refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(destination.clone(), (Instant::now(), active));
    }

    /// The count of active replications at the last quota refusal in `destination`, while
    /// `backups` (what it holds now) still count as many.
    pub fn quota_exhausted_at(&self, destination: &Scope, backups: &[Arc<ReplicaFacts>]) -> Option<usize> {
        let refusals = self
            .quota_refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (at, count) = refusals.get(destination)?;
        (at.elapsed() < QUOTA_REFUSAL_MEMORY && active_replications(backups) >= *count).then_some(*count)
    }

    /// What StartDBInstanceAutomatedBackupsReplication answered.
    pub async fn record_replica(&self, destination: &Scope, replica: ReplicaFacts) {
        // A start went through: the quota had room.
        self.quota_refusals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(destination);
        self.automated_backups
            .update(destination, |all| {
                let all = Arc::make_mut(all);
                all.retain(|r| r.arn != replica.arn || replica.arn.is_empty());
                all.push(Arc::new(replica));
            })
            .await;
    }

    /// StopDBInstanceAutomatedBackupsReplication succeeded: the replica is retained.
    pub async fn record_stopped(&self, destination: &Scope, source_arn: &str) {
        self.automated_backups
            .update(destination, |all| {
                for r in Arc::make_mut(all)
                    .iter_mut()
                    .filter(|r| r.source_arn == source_arn && r.is_active())
                {
                    Arc::make_mut(r).status = "retained".into();
                }
            })
            .await;
    }

    /// A key created under `alias`.
    pub async fn record_key(&self, scope: &Scope, alias: &str, key: KeyFacts) {
        self.aliases
            .update(scope, |all| {
                Arc::make_mut(all).insert(alias.to_string(), key.key_id.clone());
            })
            .await;
        self.record_key_facts(scope, key).await;
    }

    /// What DescribeKey would now say of `key` (after CreateKey, ScheduleKeyDeletion).
    pub async fn record_key_facts(&self, scope: &Scope, key: KeyFacts) {
        self.keys
            .put(&(scope.clone(), key.key_id.clone()), Some(key))
            .await;
    }
}

type BucketLock = Arc<tokio::sync::Mutex<()>>;

/// S3 facts shared by every repository: a bucket's lifecycle is read once per sweep
/// however many repositories back up into it; the newest object once per prefix.
pub struct BucketInventory {
    s3: Arc<dyn super::s3::S3>,
    lifecycle: Cached<(Scope, String), Option<Vec<LifecycleRuleFacts>>>,
    newest: Cached<(Scope, String, String), Option<BackupObject>>,
    /// One lifecycle write per bucket at a time: each reads the configuration and writes it
    /// back whole, so two at once would each drop the other's rule.
    writes: Mutex<HashMap<(Scope, String), BucketLock>>,
}

impl BucketInventory {
    pub fn new(s3: Arc<dyn super::s3::S3>) -> Self {
        Self {
            s3,
            lifecycle: Cached::new(),
            newest: Cached::new(),
            writes: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket's lifecycle rules; `None` when the bucket does not exist.
    pub async fn lifecycle(
        &self,
        scope: &Scope,
        bucket: &str,
        max_age: Duration,
    ) -> Result<Option<Vec<LifecycleRuleFacts>>, AwsError> {
        self.lifecycle
            .get(&(scope.clone(), bucket.to_string()), max_age, || {
                self.s3.lifecycle(scope, bucket)
            })
            .await
    }

    /// A change event says the bucket's lifecycle changed: the next look reads it.
    pub fn forget_lifecycle(&self, bucket: &str) {
        self.lifecycle.forget(|(_, b)| b == bucket);
    }

    /// The newest backup under the prefix. A quiet sweep (`fresh` is the resync interval)
    /// lists the prefix again only when the next daily backup is due (the newest is a day
    /// old, or there is none), at most once per resync, or once a day: a listing per
    /// repository per sweep would be on the S3 bill. A change settling, or a reconcile
    /// asked for, reads as fresh as `fresh`.
    pub async fn newest_object(
        &self,
        scope: &Scope,
        bucket: &str,
        prefix: &str,
        fresh: Duration,
        resync: Duration,
    ) -> Result<Option<BackupObject>, AwsError> {
        let key = (scope.clone(), bucket.to_string(), prefix.to_string());
        let max_age = match self.newest.peek_aged(&key).await {
            Some((_, newest)) if fresh >= resync => {
                let due = newest.as_ref().is_none_or(|o| {
                    Timestamp::now().duration_since(o.last_modified).unsigned_abs() >= BACKUP_INTERVAL
                });
                // Half a resync: a sweep that comes a little early does not skip a due read.
                if due { resync / 2 } else { BACKUP_INTERVAL }
            }
            _ => fresh,
        };
        self.newest
            .get(&key, max_age, || self.s3.newest_object(scope, bucket, prefix))
            .await
    }

    /// Adds the rule (merging with the others) and records it, so the next look sees it.
    pub async fn add_expiration_rule(
        &self,
        scope: &Scope,
        bucket: &str,
        id: &str,
        prefix: &str,
        days: i32,
    ) -> Result<(), AwsError> {
        let lock = self
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((scope.clone(), bucket.to_string()))
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        self.s3
            .add_expiration_rule(scope, bucket, id, prefix, days)
            .await?;
        let rule = LifecycleRuleFacts {
            id: id.to_string(),
            enabled: true,
            prefix: prefix.to_string(),
            narrowed: false,
            expiration_days: Some(days),
        };
        self.lifecycle
            .update(&(scope.clone(), bucket.to_string()), |rules| {
                if let Some(rules) = rules {
                    rules.retain(|r| r.id != rule.id);
                    rules.push(rule);
                }
            })
            .await;
        Ok(())
    }
}
