//! An in-process model of RDS, KMS and S3 behind backup-warden's adapter traits, for
//! benchmarks at a scale the emulator cannot serve (it saturates a core at a few thousand
//! instances). It keeps what the traits return, answers listings by pages of 100 (one
//! request each, as the SDK's paginators make them), counts every request into the same
//! `ApiCalls` the SDK interceptor fills, and throttles each (account, region) as AWS does:
//! RDS with one token bucket (12 requests/s, burst 300 by default), each KMS operation at
//! its own default quota from the KMS request-quota table (CreateKey, CreateAlias,
//! CancelKeyDeletion 5/s, ScheduleKeyDeletion 15/s, ListAliases 500/s, DescribeKey
//! 2,000/s), the tagging API at 50/s (no published figure: a guess on the low side),
//! answering `ThrottlingException` when a bucket is empty.
//!
//! In front of it stand the controller's own budgets (`aws::budget::Budgets` at the
//! defaults of `--rds-requests-per-second` and `--kms-writes-per-second`; a sharded
//! benchmark sets each replica's share), drawn where the SDK adapters draw them: per RDS request and page, per KMS key
//! write. So the requests the model counts are the ones the controller would send to AWS.
//!
//! Behaviour modelled after the emulator's extension (tests/emulator/README.md): a
//! retention change applies at once; a started replication is `pending` for
//! `replication_delay`, then `replicating`; a stopped one is `retained`; every instance with
//! backups on has one automated snapshot per retained day.
//!
//! S3 keeps, per bucket, its objects' keys and times and its lifecycle rules. ListObjectsV2
//! answers 1,000 keys a page; S3 is not throttled here (its quota, 5,500 reads per second
//! per prefix, is far above what the controller asks); PutBucketLifecycleConfiguration
//! refuses more than 1,000 rules, as S3 does.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use backup_warden::{
    aws::{
        ApiCalls, AwsError, AwsErrorKind, Scope,
        budget::{Budget, Budgets, Rate},
        kms::{AliasOutcome, Kms, ReplicaKeyRequest},
        rds::{PAGE_SIZE, Rds},
        s3::S3,
    },
    policy::{
        database::{InstanceChange, InstanceFacts, KeyFacts, ReplicaFacts, replica_key_alias},
        keys::{TaggedKey, Tags, key_id_of, ownership_tags},
        repository::{BackupObject, LifecycleRuleFacts},
    },
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

const ACCOUNT: &str = "123456789012";

#[derive(Default)]
struct Region {
    instances: BTreeMap<String, InstanceFacts>,
    /// Automated backups held in this region (replicas of other regions' instances).
    replicas: Vec<(ReplicaFacts, Instant)>,
    /// The newest automated snapshot of each instance with backups on.
    snapshots: HashMap<String, Timestamp>,
    keys: BTreeMap<String, (KeyFacts, Tags)>,
    aliases: BTreeMap<String, String>,
}

type Bucket = Arc<Budget>;

/// An S3 bucket: its objects (key and when written) and its lifecycle rules.
#[derive(Default)]
struct S3Bucket {
    objects: BTreeMap<String, Timestamp>,
    rules: Vec<LifecycleRuleFacts>,
}

pub struct AwsModel {
    regions: Mutex<HashMap<(String, String), Region>>,
    /// S3 bucket names are global.
    buckets: Mutex<HashMap<String, S3Bucket>>,
    /// Per (quota, account, region).
    throttles: Mutex<HashMap<(&'static str, String, String), Bucket>>,
    rate: Rate,
    /// The controller's budgets, drawn before a request reaches the model.
    client: Arc<Budgets>,
    calls: Arc<ApiCalls>,
    replication_delay: Duration,
    next_id: Mutex<u64>,
}

/// The throttle class and quota of a request in an account and region.
fn quota(service: &str, operation: &str, rds: Rate) -> (&'static str, Rate) {
    let per = |per_second: f64| Rate {
        per_second,
        burst: per_second as u32,
    };
    match (service, operation) {
        ("RDS", _) => ("RDS", rds),
        ("KMS", "CreateKey") => ("CreateKey", per(5.0)),
        ("KMS", "CreateAlias") => ("CreateAlias", per(5.0)),
        ("KMS", "CancelKeyDeletion") => ("CancelKeyDeletion", per(5.0)),
        ("KMS", "ScheduleKeyDeletion") => ("ScheduleKeyDeletion", per(15.0)),
        ("KMS", "ListAliases") => ("ListAliases", per(500.0)),
        ("KMS", "DescribeKey") => ("DescribeKey", per(2000.0)),
        _ => ("other", per(50.0)),
    }
}

/// The controller's key-write budget an operation draws from, if it is one.
fn key_write(operation: &str) -> Option<&'static str> {
    [
        "CreateKey",
        "CreateAlias",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
    ]
    .into_iter()
    .find(|w| *w == operation)
}

fn account(scope: &Scope) -> String {
    scope
        .role_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4))
        .unwrap_or(ACCOUNT)
        .to_string()
}

fn key(scope: &Scope) -> (String, String) {
    (account(scope), scope.region.clone())
}

fn instance_arn(scope: &Scope, identifier: &str) -> String {
    format!("arn:aws:rds:{}:{}:db:{identifier}", scope.region, account(scope))
}

fn pages(items: usize) -> usize {
    items.div_ceil(PAGE_SIZE as usize).max(1)
}

impl AwsModel {
    pub fn new(calls: Arc<ApiCalls>, rate: Rate, replication_delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            regions: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            throttles: Mutex::new(HashMap::new()),
            rate,
            client: Arc::new(Budgets::new(Rate::default(), Rate::KMS_WRITES)),
            calls,
            replication_delay,
            next_id: Mutex::new(0),
        })
    }

    /// The controller's budgets in front of the model (its shards' share is set here).
    pub fn client_budgets(&self) -> &Arc<Budgets> {
        &self.client
    }

    fn id(&self) -> u64 {
        let mut next = self.next_id.lock().expect("lock");
        *next += 1;
        *next
    }

    /// One request of `operation`: first drawn from the controller's budget as the SDK
    /// adapters do, then counted, and refused as AWS does when the (account, region)'s
    /// bucket is empty, after the SDK's standard retries (three attempts, backing
    /// off one then two seconds), each attempt counted.
    async fn request(&self, scope: &Scope, service: &str, operation: &str) -> Result<(), AwsError> {
        if service == "RDS" {
            self.client.rds(scope).take().await;
        } else if let Some(write) = key_write(operation) {
            self.client.kms_write(scope, write).await;
        }
        let (class, rate) = quota(service, operation, self.rate);
        let (account, region) = key(scope);
        let bucket = self
            .throttles
            .lock()
            .expect("lock")
            .entry((class, account, region))
            .or_insert_with(|| Arc::new(Budget::new(rate)))
            .clone();
        for attempt in 0..3 {
            let taken = bucket.try_take();
            self.calls.count(service, operation, !taken);
            if taken {
                return Ok(());
            }
            if attempt < 2 {
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
        }
        Err(AwsError {
            operation: leak(operation),
            kind: AwsErrorKind::Transient,
            code: "ThrottlingException".into(),
            message: "Rate exceeded".into(),
        })
    }

    /// `pages` requests of a listing.
    async fn listing(
        &self,
        scope: &Scope,
        service: &str,
        operation: &str,
        items: usize,
    ) -> Result<(), AwsError> {
        for _ in 0..pages(items) {
            self.request(scope, service, operation).await?;
        }
        Ok(())
    }

    fn with<T>(&self, scope: &Scope, f: impl FnOnce(&mut Region) -> T) -> T {
        f(self.regions.lock().expect("lock").entry(key(scope)).or_default())
    }

    /// Adds an instance with `retention_days` of automated backups.
    pub fn add_instance(&self, scope: &Scope, identifier: &str, retention_days: i32) {
        let facts = InstanceFacts {
            identifier: identifier.to_string(),
            arn: instance_arn(scope, identifier),
            resource_id: Some(format!("db-{:026X}", self.id())),
            region: scope.region.as_str().into(),
            status: "available".into(),
            engine: "postgres".into(),
            retention_days,
            latest_restorable_time: (retention_days > 0).then(Timestamp::now),
            ..Default::default()
        };
        // Today's snapshot, taken a little while ago (a fixed time, as AWS reports it).
        let snapshot = Timestamp::now() - SignedDuration::from_hours(2);
        self.with(scope, |r| {
            if retention_days > 0 {
                r.snapshots.insert(identifier.to_string(), snapshot);
            }
            r.instances.insert(identifier.to_string(), facts)
        });
    }

    /// Adds an instance already backed up as the policy asks, as backup-warden leaves one:
    /// `retention_days` of automated backups, replicated to `destination` and kept there as
    /// long, under a key made for it there (tagged as its own and aliased), replicating.
    pub fn add_backed_up_instance(
        &self,
        source: &Scope,
        destination: &Scope,
        identifier: &str,
        retention_days: i32,
    ) {
        self.add_instance(source, identifier, retention_days);
        let source_arn = instance_arn(source, identifier);
        let (key, tags) = self.new_key(destination, &source_arn);
        let alias = replica_key_alias(&source.region, identifier);
        let replica = ReplicaFacts {
            arn: self.replica_arn(destination),
            source_arn,
            dbi_resource_id: None,
            status: "replicating".into(),
            retention_days: Some(retention_days),
            kms_key_arn: Some(key.arn.clone()),
            latest_time: None,
        };
        self.with(destination, |r| {
            r.aliases.insert(alias, key.key_id.clone());
            r.keys.insert(key.key_id.clone(), (key, tags));
            r.replicas.push((replica, Instant::now()));
        });
    }

    /// A new key for replicas of `source_arn`, tagged as backup-warden tags its own.
    fn new_key(&self, scope: &Scope, source_arn: &str) -> (KeyFacts, Tags) {
        let id = format!("{:08x}-0000-4000-8000-{:012x}", self.id(), self.id());
        let facts = KeyFacts {
            arn: format!("arn:aws:kms:{}:{}:key/{id}", scope.region, account(scope)),
            key_id: id,
            state: "Enabled".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_manager: "CUSTOMER".into(),
            created: Some(Timestamp::now()),
        };
        let tags = ownership_tags(source_arn)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        (facts, tags)
    }

    fn replica_arn(&self, destination: &Scope) -> String {
        format!(
            "arn:aws:rds:{}:{}:auto-backup:ab-{:026x}",
            destination.region,
            account(destination),
            self.id()
        )
    }

    /// Creates a bucket with `rules` as its lifecycle configuration.
    pub fn add_bucket(&self, bucket: &str, rules: Vec<LifecycleRuleFacts>) {
        let mut buckets = self.buckets.lock().expect("lock");
        buckets.insert(
            bucket.to_string(),
            S3Bucket {
                rules,
                ..Default::default()
            },
        );
    }

    /// Writes an object, as a backup job would (no request counted).
    pub fn put_object(&self, bucket: &str, key: &str, written: Timestamp) {
        let mut buckets = self.buckets.lock().expect("lock");
        let bucket = buckets.get_mut(bucket).expect("the bucket exists");
        bucket.objects.insert(key.to_string(), written);
    }

    /// Drops every instance, replica, key, alias and bucket: a benchmark measures the
    /// model's own heap by what this frees.
    pub fn forget_everything(&self) {
        self.regions.lock().expect("lock").clear();
        self.buckets.lock().expect("lock").clear();
    }

    /// The bucket's lifecycle rules as they are now.
    pub fn lifecycle_rules(&self, bucket: &str) -> Vec<LifecycleRuleFacts> {
        let buckets = self.buckets.lock().expect("lock");
        buckets.get(bucket).map(|b| b.rules.clone()).unwrap_or_default()
    }

    /// Changes an instance as a person would (no request counted).
    pub fn change_instance(&self, scope: &Scope, identifier: &str, change: impl FnOnce(&mut InstanceFacts)) {
        self.with(scope, |r| r.instances.get_mut(identifier).map(change));
    }

    /// An instance as a read finds it: with backups on, restorable to a few minutes ago
    /// (AWS moves LatestRestorableTime every few minutes).
    fn instance_now(instance: &InstanceFacts) -> InstanceFacts {
        let mut instance = instance.clone();
        if instance.retention_days > 0 {
            instance.latest_restorable_time = Some(Timestamp::now() - SignedDuration::from_mins(3));
        }
        instance
    }

    /// A replica as a read finds it: pending until the replication delay has passed, then
    /// replicating, restorable to a few minutes ago (its time moves as the source's does).
    fn replica_now(&self, replica: &ReplicaFacts, started: Instant) -> ReplicaFacts {
        let mut replica = replica.clone();
        if replica.status == "pending" && started.elapsed() >= self.replication_delay {
            replica.status = "replicating".into();
        }
        if replica.status == "replicating" {
            replica.latest_time = Some(Timestamp::now() - SignedDuration::from_mins(3));
        }
        replica
    }

    fn snapshot_count(&self, scope: &Scope) -> usize {
        self.with(scope, |r| {
            r.instances
                .values()
                .map(|i| usize::try_from(i.retention_days).unwrap_or(0))
                .sum()
        })
    }
}

/// Operation names are static in `AwsError`; the model's are few and fixed.
fn leak(operation: &str) -> &'static str {
    match operation {
        "DescribeDBInstances" => "DescribeDBInstances",
        "DescribeDBInstanceAutomatedBackups" => "DescribeDBInstanceAutomatedBackups",
        "DescribeDBSnapshots" => "DescribeDBSnapshots",
        "DescribeSourceRegions" => "DescribeSourceRegions",
        "ModifyDBInstance" => "ModifyDBInstance",
        "StartDBInstanceAutomatedBackupsReplication" => "StartDBInstanceAutomatedBackupsReplication",
        "StopDBInstanceAutomatedBackupsReplication" => "StopDBInstanceAutomatedBackupsReplication",
        "DescribeKey" => "DescribeKey",
        "ListAliases" => "ListAliases",
        "GetResources" => "GetResources",
        "CreateKey" => "CreateKey",
        "CreateAlias" => "CreateAlias",
        "ScheduleKeyDeletion" => "ScheduleKeyDeletion",
        "ListObjectsV2" => "ListObjectsV2",
        "GetBucketLifecycleConfiguration" => "GetBucketLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" => "PutBucketLifecycleConfiguration",
        _ => "CancelKeyDeletion",
    }
}

#[async_trait]
impl Rds for AwsModel {
    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceFacts>, AwsError> {
        let all: Vec<InstanceFacts> =
            self.with(scope, |r| r.instances.values().map(Self::instance_now).collect());
        self.listing(scope, "RDS", "DescribeDBInstances", all.len())
            .await?;
        Ok(all)
    }

    async fn instance(&self, scope: &Scope, identifier: &str) -> Result<Option<InstanceFacts>, AwsError> {
        self.request(scope, "RDS", "DescribeDBInstances").await?;
        Ok(self.with(scope, |r| r.instances.get(identifier).map(Self::instance_now)))
    }

    async fn automated_backups(&self, scope: &Scope) -> Result<Vec<ReplicaFacts>, AwsError> {
        let all: Vec<(ReplicaFacts, Instant)> = self.with(scope, |r| r.replicas.clone());
        self.listing(scope, "RDS", "DescribeDBInstanceAutomatedBackups", all.len())
            .await?;
        Ok(all.iter().map(|(r, at)| self.replica_now(r, *at)).collect())
    }

    async fn automated_backups_of(
        &self,
        scope: &Scope,
        source_arn: &str,
    ) -> Result<Vec<ReplicaFacts>, AwsError> {
        self.request(scope, "RDS", "DescribeDBInstanceAutomatedBackups")
            .await?;
        let mine: Vec<(ReplicaFacts, Instant)> = self.with(scope, |r| {
            r.replicas
                .iter()
                .filter(|(b, _)| b.source_arn == source_arn)
                .cloned()
                .collect()
        });
        Ok(mine.iter().map(|(r, at)| self.replica_now(r, *at)).collect())
    }

    async fn newest_automated_snapshots(
        &self,
        scope: &Scope,
    ) -> Result<HashMap<String, Timestamp>, AwsError> {
        self.listing(scope, "RDS", "DescribeDBSnapshots", self.snapshot_count(scope))
            .await?;
        Ok(self.with(scope, |r| r.snapshots.clone()))
    }

    async fn newest_automated_snapshot(
        &self,
        scope: &Scope,
        identifier: &str,
    ) -> Result<Option<Timestamp>, AwsError> {
        self.request(scope, "RDS", "DescribeDBSnapshots").await?;
        Ok(self.with(scope, |r| r.snapshots.get(identifier).copied()))
    }

    async fn replication_source_regions(&self, scope: &Scope) -> Result<Vec<String>, AwsError> {
        self.request(scope, "RDS", "DescribeSourceRegions").await?;
        Ok([
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "eu-west-1",
            "eu-central-1",
        ]
        .into_iter()
        .filter(|r| *r != scope.region)
        .map(str::to_string)
        .collect())
    }

    async fn modify_instance(
        &self,
        scope: &Scope,
        identifier: &str,
        change: &InstanceChange,
    ) -> Result<InstanceFacts, AwsError> {
        self.request(scope, "RDS", "ModifyDBInstance").await?;
        self.with(scope, |r| {
            let instance = r.instances.get_mut(identifier).ok_or_else(|| AwsError {
                operation: "ModifyDBInstance",
                kind: AwsErrorKind::NotFound,
                code: "DBInstanceNotFound".into(),
                message: format!("DBInstance {identifier} not found."),
            })?;
            if let Some(days) = change.backup_retention_days {
                instance.retention_days = days;
                instance.latest_restorable_time.get_or_insert_with(Timestamp::now);
            }
            let instance = Self::instance_now(instance);
            // Backups turned on take a snapshot at once.
            r.snapshots
                .entry(identifier.to_string())
                .or_insert_with(Timestamp::now);
            Ok(instance)
        })
    }

    async fn start_replication(
        &self,
        destination: &Scope,
        source_arn: &str,
        kms_key_arn: &str,
        retention_days: i32,
    ) -> Result<ReplicaFacts, AwsError> {
        self.request(destination, "RDS", "StartDBInstanceAutomatedBackupsReplication")
            .await?;
        let replica = ReplicaFacts {
            arn: self.replica_arn(destination),
            source_arn: source_arn.to_string(),
            dbi_resource_id: None,
            status: "pending".into(),
            retention_days: Some(retention_days),
            kms_key_arn: Some(kms_key_arn.to_string()),
            latest_time: None,
        };
        self.with(destination, |r| {
            if r.replicas
                .iter()
                .any(|(b, _)| b.source_arn == source_arn && b.status != "retained")
            {
                return Err(AwsError {
                    operation: "StartDBInstanceAutomatedBackupsReplication",
                    kind: AwsErrorKind::Refused,
                    code: "DBInstanceAutomatedBackupAlreadyExistsFault".into(),
                    message: "the instance already replicates here".into(),
                });
            }
            r.replicas.push((replica.clone(), Instant::now()));
            Ok(replica)
        })
    }

    async fn stop_replication(&self, destination: &Scope, source_arn: &str) -> Result<(), AwsError> {
        self.request(destination, "RDS", "StopDBInstanceAutomatedBackupsReplication")
            .await?;
        self.with(destination, |r| {
            for (b, _) in r.replicas.iter_mut().filter(|(b, _)| b.source_arn == source_arn) {
                b.status = "retained".into();
            }
        });
        Ok(())
    }
}

#[async_trait]
impl Kms for AwsModel {
    async fn describe_key(&self, scope: &Scope, key: &str) -> Result<Option<KeyFacts>, AwsError> {
        self.request(scope, "KMS", "DescribeKey").await?;
        Ok(self.with(scope, |r| r.keys.get(key_id_of(key)).map(|(k, _)| k.clone())))
    }

    async fn aliases(&self, scope: &Scope) -> Result<HashMap<String, String>, AwsError> {
        let all: HashMap<String, String> = self.with(scope, |r| r.aliases.clone().into_iter().collect());
        self.listing(scope, "KMS", "ListAliases", all.len()).await?;
        Ok(all)
    }

    async fn tagged_keys(&self, scope: &Scope, tags: &[(&str, &str)]) -> Result<Vec<TaggedKey>, AwsError> {
        let found: Vec<TaggedKey> = self.with(scope, |r| {
            r.keys
                .values()
                .filter(|(_, t)| tags.iter().all(|(k, v)| t.get(k).is_some_and(|x| x == v)))
                .map(|(k, t)| TaggedKey {
                    arn: k.arn.clone(),
                    tags: t.clone(),
                })
                .collect()
        });
        self.listing(scope, "Resource Groups Tagging API", "GetResources", found.len())
            .await?;
        Ok(found)
    }

    async fn create_key(&self, scope: &Scope, request: &ReplicaKeyRequest) -> Result<KeyFacts, AwsError> {
        self.request(scope, "KMS", "CreateKey").await?;
        let (facts, tags) = self.new_key(scope, &request.source_arn);
        self.with(scope, |r| {
            r.keys.insert(facts.key_id.clone(), (facts.clone(), tags))
        });
        Ok(facts)
    }

    async fn create_alias(&self, scope: &Scope, alias: &str, key_id: &str) -> Result<AliasOutcome, AwsError> {
        self.request(scope, "KMS", "CreateAlias").await?;
        Ok(self.with(scope, |r| {
            if r.aliases.contains_key(alias) {
                return AliasOutcome::Exists;
            }
            r.aliases.insert(alias.to_string(), key_id_of(key_id).to_string());
            AliasOutcome::Created
        }))
    }

    async fn schedule_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        self.request(scope, "KMS", "ScheduleKeyDeletion").await?;
        self.with(scope, |r| {
            if let Some((k, _)) = r.keys.get_mut(key_id_of(key)) {
                k.state = "PendingDeletion".into();
            }
        });
        Ok(())
    }

    async fn cancel_deletion(&self, scope: &Scope, key: &str) -> Result<(), AwsError> {
        self.request(scope, "KMS", "CancelKeyDeletion").await?;
        self.with(scope, |r| {
            if let Some((k, _)) = r.keys.get_mut(key_id_of(key)) {
                k.state = "Enabled".into();
            }
        });
        Ok(())
    }
}

#[async_trait]
impl S3 for AwsModel {
    async fn newest_object(
        &self,
        _scope: &Scope,
        bucket: &str,
        prefix: &str,
    ) -> Result<Option<BackupObject>, AwsError> {
        let found = {
            let buckets = self.buckets.lock().expect("lock");
            buckets.get(bucket).map(|b| {
                let under: Vec<(&String, &Timestamp)> = b
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .collect();
                let newest = under
                    .iter()
                    .max_by_key(|(_, written)| **written)
                    .map(|(key, written)| BackupObject {
                        key: (*key).clone(),
                        last_modified: **written,
                    });
                (under.len().div_ceil(1000).max(1), newest)
            })
        };
        let Some((pages, newest)) = found else {
            // NoSuchBucket: one request, answered.
            self.calls.count("S3", "ListObjectsV2", true);
            return Ok(None);
        };
        for _ in 0..pages {
            self.calls.count("S3", "ListObjectsV2", false);
        }
        Ok(newest)
    }

    async fn lifecycle(
        &self,
        _scope: &Scope,
        bucket: &str,
    ) -> Result<Option<Vec<LifecycleRuleFacts>>, AwsError> {
        self.calls.count("S3", "GetBucketLifecycleConfiguration", false);
        Ok(self
            .buckets
            .lock()
            .expect("lock")
            .get(bucket)
            .map(|b| b.rules.clone()))
    }

    async fn add_expiration_rule(
        &self,
        _scope: &Scope,
        bucket: &str,
        id: &str,
        prefix: &str,
        days: i32,
    ) -> Result<(), AwsError> {
        // As SdkS3: the whole configuration read, then written back with the rule.
        self.calls.count("S3", "GetBucketLifecycleConfiguration", false);
        self.calls.count("S3", "PutBucketLifecycleConfiguration", false);
        let refused = |code: &str, message: String| AwsError {
            operation: "PutBucketLifecycleConfiguration",
            kind: AwsErrorKind::Refused,
            code: code.into(),
            message,
        };
        let mut buckets = self.buckets.lock().expect("lock");
        let Some(b) = buckets.get_mut(bucket) else {
            return Err(refused("NoSuchBucket", format!("bucket {bucket} does not exist")));
        };
        let mut rules: Vec<LifecycleRuleFacts> = b.rules.iter().filter(|r| r.id != id).cloned().collect();
        rules.push(LifecycleRuleFacts {
            id: id.to_string(),
            enabled: true,
            prefix: prefix.to_string(),
            narrowed: false,
            expiration_days: Some(days),
        });
        if rules.len() > 1000 {
            return Err(refused(
                "InvalidRequest",
                "Configuration exceeds the maximum number of rules (1000)".into(),
            ));
        }
        b.rules = rules;
        Ok(())
    }
}
