//! The seeded fault campaign, against a real API server and the emulator of the test's own
//! (so it may restart them). Databases drift and new ones appear while the controllers are
//! killed at random points (SIGKILL), stopped (SIGTERM), doubled (two without leader
//! election), cut off from AWS (the endpoint frozen past the operation timeout), while the
//! emulator and the API server restart and objects are deleted mid-fix. After every fault,
//! and at every look while healing, the test reads the emulator directly and holds it to
//! DESIGN.md's safety rules: no retention lowered, no replication stopped (no object opts
//! in to restarts), no instance replicated twice, no replica's key disabled or scheduled for
//! deletion. At the end, once the key cleanup has run: no enabled orphan key, one enabled
//! key per managed instance, the one its replica uses.
//!
//! Every run prints its seed; `BACKUP_WARDEN_CHAOS_SEED=<seed>` replays it (the faults and
//! their moments; the controllers' own timing still varies). `BACKUP_WARDEN_CHAOS_ROUNDS`
//! (default: each fault once) lengthens it: `make chaos` runs many seeds, each run ending
//! with one `CHAOS-RESULT {json}` line that hack/chaos.sh sums up.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{DESTINATION, Key, SOURCE, SOURCE_TAG, World, world_in};
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    policy::database::replica_key_alias,
};
use backup_warden_testing::{self as testing, condition, private_env::PrivateEnv, proxy::FreezableProxy};
use kube::api::DeleteParams;
use serde_json::json;

/// Databases at the start; each round adds `ADDED_PER_ROUND` more, so keys are being made
/// while the faults strike.
const INITIAL_DATABASES: usize = 24;
const ADDED_PER_ROUND: usize = 2;
const FLOOR_DAYS: i32 = 7;
const HEAL_WITHIN: Duration = Duration::from_secs(150);
/// The controllers' operation timeout; the frozen endpoint outlasts it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
const A_DAY_AND_MORE: u64 = 25 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillNine,
    Sigterm,
    FreezeAws,
    RestartEmulator,
    RestartApiServer,
    TwoControllers,
    DeleteMidFix,
}

const FAULTS: [Fault; 7] = [
    Fault::KillNine,
    Fault::Sigterm,
    Fault::FreezeAws,
    Fault::RestartEmulator,
    Fault::RestartApiServer,
    Fault::TwoControllers,
    Fault::DeleteMidFix,
];

/// splitmix64: a few lines, and the same sequence for a seed on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.next() % max)
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One database of the campaign: its instance and how it started.
#[derive(Clone, Debug)]
struct Database {
    id: String,
    /// Replicated by the team before the object existed, under a key of the team's: the
    /// controller reports it and must leave it alone (no object opts in to restarts).
    foreign_key: Option<String>,
}

/// Processes of `backup-warden run` against the private environment, logging to files.
struct Controllers {
    binary: String,
    kubeconfig: PathBuf,
    aws: String,
    namespace: String,
    logs: PathBuf,
    started: usize,
    /// (process, its log); the first is the one a fault strikes.
    running: Vec<(Child, PathBuf)>,
}

impl Controllers {
    fn start(&mut self) {
        self.started += 1;
        let path = self.logs.join(format!("controller-{}.log", self.started));
        let log = File::create(&path).expect("log");
        let addr = format!("127.0.0.1:{}", testing::free_port());
        let child = Command::new(&self.binary)
            .args(["run", "--listen-address", &addr, "--namespace", &self.namespace])
            .args(["--aws-endpoint-url", &self.aws])
            .arg("--tenancy-file")
            .arg(testing::open_tenancy_file())
            .args(["--resync-interval", "3s", "--settle-interval", "1s"])
            .args(["--connect-timeout", "1s", "--request-timeout", "2s"])
            .args([
                "--operation-timeout",
                &format!("{}s", OPERATION_TIMEOUT.as_secs()),
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", SOURCE)
            .env("BACKUP_WARDEN_LOG_FORMAT", "text")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start backup-warden run");
        self.running.push((child, path));
    }

    /// How many changes the first controller has begun so far (it logs each before making it).
    fn actions_begun(&self) -> usize {
        let log = std::fs::read_to_string(&self.running[0].1).unwrap_or_default();
        log.matches("enforcing").count()
    }

    /// Returns once the first controller has begun `more` changes beyond `since`, or after
    /// 10 s: the seeded moment a fault strikes, in the middle of a fix.
    async fn begun(&self, since: usize, more: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.actions_begun() < since + more && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends SIGTERM to the first controller and hands it over, to wait for.
    fn terminate(&mut self) -> Child {
        let (child, _) = self.running.remove(0);
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM");
        child
    }

    /// SIGKILL: the process ends wherever it was.
    fn kill(&mut self, index: usize) {
        let (mut child, _) = self.running.remove(index);
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    fn stop_all(&mut self) {
        for (mut child, _) in self.running.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// What the emulator holds, read directly (not through the controller).
struct Snapshot {
    /// Instance id -> (retention, pending retention).
    retention: HashMap<String, (i32, Option<i32>)>,
    /// Source instance id -> (replica ARN, status, key ARN) of each automated backup in
    /// the destination.
    replicas: HashMap<String, Vec<(String, String, String)>>,
    keys: Vec<Key>,
}

impl Snapshot {
    async fn read(w: &World) -> Self {
        let mut retention = HashMap::new();
        let mut pages = w.rds_source.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            for i in page.expect("describe instances").db_instances() {
                let pending = i
                    .pending_modified_values()
                    .and_then(|p| p.backup_retention_period());
                retention.insert(
                    i.db_instance_identifier().unwrap_or_default().to_string(),
                    (i.backup_retention_period().unwrap_or_default(), pending),
                );
            }
        }
        let mut replicas: HashMap<String, Vec<_>> = HashMap::new();
        let mut pages = w
            .rds_destination
            .describe_db_instance_automated_backups()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for b in page
                .expect("describe automated backups")
                .db_instance_automated_backups()
            {
                replicas
                    .entry(b.db_instance_identifier().unwrap_or_default().to_string())
                    .or_default()
                    .push((
                        b.db_instance_automated_backups_arn()
                            .unwrap_or_default()
                            .to_string(),
                        b.status().unwrap_or_default().to_string(),
                        b.kms_key_id().unwrap_or_default().to_string(),
                    ));
            }
        }
        Self {
            retention,
            replicas,
            keys: w.keys().await,
        }
    }

    /// The replications of `id` that run (pending or replicating).
    fn active(&self, id: &str) -> Vec<&(String, String, String)> {
        self.replicas
            .get(id)
            .map(|all| {
                all.iter()
                    .filter(|(_, status, _)| status == "pending" || status == "replicating")
                    .collect()
            })
            .unwrap_or_default()
    }

    fn key(&self, arn: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.arn == arn)
    }

    /// Keys backup-warden made that are enabled, have no alias and protect no backup.
    fn orphans(&self) -> Vec<&Key> {
        let used: HashSet<&str> = self
            .replicas
            .values()
            .flatten()
            .map(|(_, _, key)| key.as_str())
            .collect();
        self.keys
            .iter()
            .filter(|k| k.tags.contains_key(SOURCE_TAG) && k.state == "Enabled")
            .filter(|k| k.aliases.is_empty() && !used.contains(k.arn.as_str()))
            .collect()
    }

    fn healed(&self, databases: &[Database]) -> bool {
        databases.iter().all(|db| {
            let (retention, pending) = self.retention.get(&db.id).copied().unwrap_or_default();
            retention.max(pending.unwrap_or_default()) >= FLOOR_DAYS && self.active(&db.id).len() == 1
        })
    }
}

/// What the safety rules allow to change between two looks at the emulator.
#[derive(Default)]
struct Ledger {
    /// The lowest retention each instance may show: what it had, or what the test set.
    floor: HashMap<String, i32>,
    /// Replications that ran at the last look, and those the test itself stopped since.
    running: HashMap<String, String>,
    stopped_by_test: HashSet<String>,
    looks: usize,
}

impl Ledger {
    /// The safety rules `snapshot` breaks, named; then it becomes the reference.
    fn check(&mut self, s: &Snapshot, databases: &[Database]) -> Vec<String> {
        self.looks += 1;
        let mut broken = Vec::new();
        for db in databases {
            let id = &db.id;
            let (retention, pending) = s.retention.get(id).copied().unwrap_or_default();
            let floor = self.floor.get(id).copied().unwrap_or_default();
            if retention < floor || pending.is_some_and(|p| p < floor) {
                broken.push(format!(
                    "{id}: retention lowered below {floor} (now {retention}, pending {pending:?})"
                ));
            }
            self.floor.insert(id.clone(), floor.max(retention));
            let active = s.active(id);
            if active.len() > 1 {
                broken.push(format!("{id}: replicated {} times: {active:?}", active.len()));
            }
            if let Some(arn) = self.running.get(id)
                && !self.stopped_by_test.contains(id)
                && !active.iter().any(|(a, _, _)| a == arn)
            {
                broken.push(format!("{id}: replication {arn} stopped (no object opts in)"));
            }
            for (arn, _, key) in &active {
                match s.key(key) {
                    Some(k) if k.state == "Enabled" => {}
                    other => broken.push(format!("{id}: the key of replica {arn} is {other:?}")),
                }
            }
            if let (Some(foreign), [(_, _, key)]) = (&db.foreign_key, active.as_slice())
                && key != foreign
            {
                broken.push(format!(
                    "{id}: the team's replication now uses {key}, not {foreign}"
                ));
            }
            match active.first() {
                Some((arn, _, _)) => self.running.insert(id.clone(), arn.clone()),
                None => self.running.remove(id),
            };
        }
        self.stopped_by_test.clear();
        broken
    }
}

struct Campaign {
    w: World,
    rng: Rng,
    databases: Vec<Database>,
    ledger: Ledger,
    controllers: Controllers,
    proxy: FreezableProxy,
    /// Faults applied, and the seconds each round took to heal.
    heal_seconds: Vec<(Fault, f64)>,
}

impl Campaign {
    async fn add_database(&mut self) {
        let id = format!("chaos-{:02}-db", self.databases.len());
        let retention = [1, 3, 7, 14, 35][self.rng.below(5)];
        testing::create_instance(&self.w.rds_source, &id, retention).await;
        self.ledger.floor.insert(id.clone(), retention);
        let foreign_key = if self.rng.chance(12) {
            let key = self
                .w
                .kms_destination
                .create_key()
                .send()
                .await
                .expect("team key");
            let arn = key.key_metadata().and_then(|m| m.arn()).expect("arn").to_string();
            self.w
                .rds_destination
                .start_db_instance_automated_backups_replication()
                .source_db_instance_arn(self.w.source_arn(&id))
                .kms_key_id(&arn)
                .send()
                .await
                .expect("the team's replication");
            Some(arn)
        } else {
            None
        };
        self.apply(&id).await;
        self.databases.push(Database { id, foreign_key });
    }

    async fn apply(&self, id: &str) {
        self.w
            .apply(id, id, json!({"backups": {"applyImmediately": true}}))
            .await;
    }

    /// Someone changes things in AWS: retentions lowered, replications stopped.
    async fn drift(&mut self) {
        for _ in 0..4 {
            let db = self.databases[self.rng.below(self.databases.len())].clone();
            if db.foreign_key.is_none() && self.rng.chance(50) {
                let stopped = self
                    .w
                    .rds_destination
                    .stop_db_instance_automated_backups_replication()
                    .source_db_instance_arn(self.w.source_arn(&db.id))
                    .send()
                    .await;
                if stopped.is_ok() {
                    self.ledger.stopped_by_test.insert(db.id);
                }
            } else {
                let days = 1 + self.rng.below(FLOOR_DAYS as usize - 1) as i32;
                self.w
                    .rds_source
                    .modify_db_instance()
                    .db_instance_identifier(&db.id)
                    .backup_retention_period(days)
                    .apply_immediately(true)
                    .send()
                    .await
                    .expect("lower retention");
                self.ledger.floor.insert(db.id, days);
            }
        }
    }

    async fn look(&mut self, when: &str) -> Snapshot {
        let snapshot = Snapshot::read(&self.w).await;
        let broken = self.ledger.check(&snapshot, &self.databases);
        assert!(
            broken.is_empty(),
            "{when}: the safety rules broke:\n{}",
            broken.join("\n")
        );
        snapshot
    }

    /// Strikes once the first controller has begun the seeded number of this round's
    /// changes (counted from `since`), a few milliseconds later.
    async fn strike(&mut self, fault: Fault, env: &PrivateEnv, since: usize) {
        let more = 1 + self.rng.below(6);
        self.controllers.begun(since, more).await;
        tokio::time::sleep(self.rng.millis(30)).await;
        match fault {
            Fault::KillNine => {
                self.controllers.kill(0);
                self.controllers.start();
            }
            Fault::Sigterm => {
                let mut child = self.controllers.terminate();
                let status = testing::wait_exit(&mut child, Duration::from_secs(30));
                assert!(
                    status.success(),
                    "after SIGTERM the controller exits 0, not {status}"
                );
                self.controllers.start();
            }
            Fault::FreezeAws => {
                self.proxy.freeze(true);
                tokio::time::sleep(OPERATION_TIMEOUT + Duration::from_secs(2) + self.rng.millis(3000)).await;
                self.proxy.freeze(false);
            }
            Fault::RestartEmulator => env.restart("moto"),
            Fault::RestartApiServer => env.restart("kube-apiserver"),
            // The second one started before the round's changes: both race over them now.
            Fault::TwoControllers => {}
            Fault::DeleteMidFix => {
                let mut deleted = Vec::new();
                // The newest first: they are the ones being fixed right now.
                for db in self.databases.iter().rev().take(2 + self.rng.below(3)) {
                    self.w
                        .dbs
                        .delete(&db.id, &DeleteParams::default())
                        .await
                        .expect("delete object");
                    deleted.push(db.id.clone());
                }
                tokio::time::sleep(Duration::from_secs(2) + self.rng.millis(2000)).await;
                // GitOps puts them back.
                for id in deleted {
                    self.apply(&id).await;
                }
            }
        }
    }

    async fn heal(&mut self, after: &str) -> f64 {
        let started = Instant::now();
        loop {
            let snapshot = self.look(&format!("healing after {after}")).await;
            if snapshot.healed(&self.databases) {
                return started.elapsed().as_secs_f64();
            }
            assert!(
                started.elapsed() < HEAL_WITHIN,
                "not healed {HEAL_WITHIN:?} after {after}; logs in {}",
                self.controllers.logs.display()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

fn seed() -> u64 {
    match std::env::var("BACKUP_WARDEN_CHAOS_SEED") {
        Ok(text) => text.parse().expect("BACKUP_WARDEN_CHAOS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn rounds(rng: &mut Rng) -> Vec<Fault> {
    let count: usize = std::env::var("BACKUP_WARDEN_CHAOS_ROUNDS")
        .map(|text| text.parse().expect("BACKUP_WARDEN_CHAOS_ROUNDS is a number"))
        .unwrap_or(FAULTS.len());
    let mut rounds = Vec::new();
    while rounds.len() < count {
        let mut cycle = FAULTS;
        rng.shuffle(&mut cycle);
        rounds.extend(cycle);
    }
    rounds.truncate(count);
    rounds
}

#[tokio::test]
async fn a_seeded_fault_campaign_never_destroys_a_backup_or_leaks_a_key() {
    let _heavy = testing::heavy().await;
    let seed = seed();
    println!("fault campaign seed {seed} (replay: BACKUP_WARDEN_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let rounds = rounds(&mut rng);
    let env = PrivateEnv::up("chaos");
    let w = world_in(&env.env, "chaos").await;
    let proxy = FreezableProxy::start(&env.emulator_authority()).await;
    let logs = std::env::temp_dir().join(testing::unique_name("chaos-logs"));
    std::fs::create_dir_all(&logs).expect("log dir");
    let controllers = Controllers {
        // hack/chaos.sh runs a copy, so that a rebuild meanwhile changes nothing.
        binary: std::env::var("BACKUP_WARDEN_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_backup-warden").into()),
        kubeconfig: env.env.kubeconfig.clone(),
        aws: proxy.url.clone(),
        namespace: w.namespace.clone(),
        logs,
        started: 0,
        running: Vec::new(),
    };
    let mut c = Campaign {
        w,
        rng,
        databases: Vec::new(),
        ledger: Ledger::default(),
        controllers,
        proxy,
        heal_seconds: Vec::new(),
    };
    // Room for every database: the campaign is about faults, not the quota (20 by default).
    let (code, body) = env.env.emulator_post(
        "/moto-api/backup-warden/quota",
        &json!({"account_id": c.w.account, "region": DESTINATION, "replications": 1000}),
    );
    assert_eq!(code, 200, "{body}");
    for _ in 0..INITIAL_DATABASES {
        c.add_database().await;
    }
    c.look("before the controller").await;
    c.controllers.start();
    let first = c.heal("the first start").await;
    println!("{INITIAL_DATABASES} databases healed in {first:.1}s");

    for (round, fault) in rounds.iter().enumerate() {
        if *fault == Fault::TwoControllers {
            c.controllers.start();
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let since = c.controllers.actions_begun();
        for _ in 0..ADDED_PER_ROUND {
            c.add_database().await;
        }
        c.drift().await;
        c.strike(*fault, &env, since).await;
        c.look(&format!("right after {fault:?}")).await;
        let took = c.heal(&format!("{fault:?}")).await;
        println!(
            "round {round}: {fault:?}, {} databases healed in {took:.1}s",
            c.databases.len()
        );
        c.heal_seconds.push((*fault, took));
        if *fault == Fault::TwoControllers {
            c.controllers.kill(1);
        }
    }

    // A day passes: the cleanup may now schedule what the faults orphaned.
    let before = c.look("before the cleanup").await;
    let orphans: Vec<String> = before.orphans().iter().map(|k| k.arn.clone()).collect();
    let made = before
        .keys
        .iter()
        .filter(|k| k.tags.contains_key(SOURCE_TAG))
        .count();
    for key in &before.keys {
        c.w.age(&key.id, A_DAY_AND_MORE);
    }
    // After a day every fact the controller cached has expired: a fresh process stands in.
    c.controllers.stop_all();
    c.controllers.start();
    let started = Instant::now();
    let after = loop {
        let snapshot = c.look("during the cleanup").await;
        if snapshot.orphans().is_empty() {
            break snapshot;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "orphans left a minute after the grace: {:?}",
            snapshot.orphans()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let pending: Vec<&str> = after
        .keys
        .iter()
        .filter(|k| k.state == "PendingDeletion")
        .map(|k| k.arn.as_str())
        .collect();
    let mut expected: Vec<&str> = orphans.iter().map(String::as_str).collect();
    expected.sort_unstable();
    let mut scheduled = pending.clone();
    scheduled.sort_unstable();
    assert_eq!(scheduled, expected, "the cleanup scheduled exactly the orphans");
    for db in c.databases.iter().filter(|db| db.foreign_key.is_none()) {
        let ours: Vec<&Key> = after
            .keys
            .iter()
            .filter(|k| k.made_for(&c.w, &db.id) && k.state == "Enabled")
            .collect();
        assert_eq!(ours.len(), 1, "{}: one enabled key: {ours:?}", db.id);
        assert_eq!(ours[0].aliases, [replica_key_alias(SOURCE, &db.id)], "{}", db.id);
        assert_eq!(
            after.active(&db.id)[0].2,
            ours[0].arn,
            "{}: its replica uses it",
            db.id
        );
        let object = c.w.dbs.get(&db.id).await.expect("object");
        assert!(ready(&object), "{}: Ready=True: {:?}", db.id, object.status);
    }
    c.controllers.stop_all();

    let mut by_fault: BTreeMap<String, f64> = BTreeMap::new();
    for (fault, seconds) in &c.heal_seconds {
        let slowest = by_fault.entry(format!("{fault:?}")).or_default();
        *slowest = slowest.max(*seconds);
    }
    println!(
        "seed {seed}: {} databases, {} rounds, {} controller processes, {} safety looks, all held; \
         {made} keys made, {} orphaned by faults, all scheduled by the cleanup; slowest heal per fault (s) {by_fault:?}",
        c.databases.len(),
        rounds.len(),
        c.controllers.started,
        c.ledger.looks,
        orphans.len(),
    );
    println!(
        "CHAOS-RESULT {}",
        json!({
            "seed": seed, "databases": c.databases.len(), "rounds": rounds.len(),
            "processes": c.controllers.started, "looks": c.ledger.looks, "keys_made": made,
            "orphaned": orphans.len(), "first_heal_seconds": first,
            "heal_seconds": c.heal_seconds.iter().map(|(f, s)| json!([format!("{f:?}"), s])).collect::<Vec<_>>(),
        })
    );
    let _ = std::fs::remove_dir_all(&c.controllers.logs);
}

fn ready(db: &BackedUpDatabase) -> bool {
    condition(db, ConditionType::Ready).is_some_and(|(status, _, _)| status == "True")
        && db.status.as_ref().and_then(|s| s.observed_generation) == db.metadata.generation
}
