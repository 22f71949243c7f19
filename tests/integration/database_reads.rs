//! What RDS reads cost beyond one sweep: while a change settles an instance and its
//! replication are read on their own (one request each) until reading the whole region is
//! cheaper; automated snapshots are listed once per region and then read per instance only
//! when its next daily snapshot is due; every RDS request waits for the account-region's
//! request budget.

use std::time::{Duration, Instant};

use backup_warden::{
    aws::{
        Scope,
        budget::Rate,
        rds::{Rds, SdkRds},
    },
    policy::database::Policy,
};
use backup_warden_testing as testing;
use futures::{StreamExt, stream};

const REGION: &str = "ap-southeast-2";
const DESTINATION: &str = "ap-southeast-1";
/// Two pages of DescribeDBInstances.
const INSTANCES: usize = 150;
/// The age a settling change accepts in this test.
const SETTLE: Duration = Duration::from_secs(5);
const RESYNC: Duration = Duration::from_secs(600);

async fn instances(rds: &aws_sdk_rds::Client, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("db-{i:03}")).collect();
    stream::iter(ids.iter())
        .for_each_concurrent(16, |id| async move { testing::create_instance(rds, id, 1).await })
        .await;
    ids
}

#[tokio::test]
async fn a_settling_change_reads_its_instance_alone_until_the_whole_region_is_cheaper() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(REGION, &account).await);
    instances(&rds, INSTANCES).await;
    let ctx = env.context(Policy::default(), testing::fast_timing()).await;
    let (inv, scope) = (
        &ctx.inventory,
        Scope::new(Some(&testing::role_arn(&account)), REGION),
    );
    let reads = || ctx.calls.calls("DescribeDBInstances");

    // A sweep reads the whole region: two pages.
    let before = inv
        .instance(&scope, "db-000", RESYNC)
        .await
        .expect("read")
        .expect("found");
    assert_eq!((before.retention_days, reads()), (1, 2));

    // A person raises the retention; a reconcile asked for reads that instance alone and
    // sees it, and the shared inventory holds what it read.
    rds.modify_db_instance()
        .db_instance_identifier("db-000")
        .backup_retention_period(9)
        .apply_immediately(true)
        .send()
        .await
        .expect("modify");
    let now = inv
        .instance_now(&scope, "db-000", Duration::ZERO)
        .await
        .expect("read")
        .expect("found");
    assert_eq!((now.retention_days, reads()), (9, 3));
    let shared = inv
        .instance(&scope, "db-000", RESYNC)
        .await
        .expect("read")
        .expect("found");
    assert_eq!((shared.retention_days, reads()), (9, 3));
    // An instance that does not exist is an answer, not an error.
    assert!(
        inv.instance_now(&scope, "no-such-db", Duration::ZERO)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(reads(), 4);

    // Settling changes, once the whole read is older than they accept: each reads its own
    // instance while fewer have than a quarter of a whole read's pages (at least one), then
    // the whole region is read once and serves every other settling change.
    tokio::time::sleep(SETTLE + Duration::from_millis(200)).await;
    let started = Instant::now();
    for (id, expected) in [("db-001", 5), ("db-002", 7), ("db-003", 7), ("db-001", 7)] {
        assert!(
            inv.instance_now(&scope, id, SETTLE)
                .await
                .expect("read")
                .is_some()
        );
        assert!(
            started.elapsed() < SETTLE,
            "the emulator is too slow for this test"
        );
        assert_eq!(reads(), expected, "after {id}");
    }
}

#[tokio::test]
async fn a_settling_replication_reads_its_own_automated_backups() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(REGION, &account).await);
    let destination = aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, &account).await);
    let kms = aws_sdk_kms::Client::new(&env.aws_config_in(DESTINATION, &account).await);
    let ids = instances(&rds, 2).await;
    let key = kms
        .create_key()
        .send()
        .await
        .expect("key")
        .key_metadata
        .expect("metadata");
    let arn = |id: &str| format!("arn:aws:rds:{REGION}:{account}:db:{id}");
    for id in &ids {
        destination
            .start_db_instance_automated_backups_replication()
            .source_db_instance_arn(arn(id))
            .kms_key_id(key.arn().expect("arn"))
            .send()
            .await
            .expect("start replication");
    }
    let ctx = env.context(Policy::default(), testing::fast_timing()).await;
    let (inv, scope) = (
        &ctx.inventory,
        Scope::new(Some(&testing::role_arn(&account)), DESTINATION),
    );
    let reads = || ctx.calls.calls("DescribeDBInstanceAutomatedBackups");
    let all = inv.automated_backups(&scope, RESYNC).await.expect("read");
    assert_eq!((all.len(), reads()), (2, 1));

    // A person stops one replication: the settling read of that instance sees it retained,
    // and the other instance's replica is still there as last read.
    destination
        .stop_db_instance_automated_backups_replication()
        .source_db_instance_arn(arn(&ids[0]))
        .send()
        .await
        .expect("stop replication");
    let now = inv
        .automated_backups_now(&scope, &arn(&ids[0]), Duration::ZERO)
        .await
        .expect("read");
    assert_eq!(reads(), 2);
    let status = |id: &str| {
        now.iter()
            .filter(|r| r.source_arn == arn(id))
            .map(|r| r.status.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(status(&ids[0]), ["retained"]);
    assert_eq!(status(&ids[1]), ["replicating"]);
}

#[tokio::test]
async fn snapshots_are_listed_once_then_read_per_instance_only_when_one_is_due() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(REGION, &account).await);
    let ids = instances(&rds, INSTANCES).await;
    // Backups off: no automated snapshot, so one is always due.
    testing::create_instance(&rds, "no-backups", 0).await;
    let ctx = env.context(Policy::default(), testing::fast_timing()).await;
    let (inv, scope) = (
        &ctx.inventory,
        Scope::new(Some(&testing::role_arn(&account)), REGION),
    );
    let reads = || ctx.calls.calls("DescribeDBSnapshots");
    let resync = Duration::from_secs(1);

    // The first sweep lists the region's automated snapshots: two pages.
    for id in &ids {
        assert!(
            inv.newest_snapshot(&scope, id, resync)
                .await
                .expect("read")
                .is_some()
        );
    }
    assert_eq!(reads(), 2);
    // Sweeps after the resync: a snapshot taken today is not looked at again before the
    // next one is due; the instance with none is read on its own, once per resync.
    for sweep in 1..=2 {
        tokio::time::sleep(resync + Duration::from_millis(100)).await;
        for id in &ids {
            assert!(
                inv.newest_snapshot(&scope, id, resync)
                    .await
                    .expect("read")
                    .is_some()
            );
        }
        assert!(
            inv.newest_snapshot(&scope, "no-backups", resync)
                .await
                .expect("read")
                .is_none()
        );
        assert!(
            inv.newest_snapshot(&scope, "no-backups", resync)
                .await
                .expect("read")
                .is_none()
        );
        assert_eq!(reads(), 2 + sweep, "after sweep {sweep}");
    }
    // A reconcile someone asked for reads the instance's snapshots afresh.
    assert!(
        inv.newest_snapshot(&scope, "db-000", Duration::ZERO)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(reads(), 5);
}

#[tokio::test]
async fn every_rds_request_waits_for_the_account_regions_budget() {
    let env = testing::env();
    let account = testing::unique_account();
    let rate = Rate {
        per_second: 10.0,
        burst: 2,
    };
    let rds = SdkRds {
        clients: env.aws_clients_limited(rate).await,
    };
    let scope = Scope::new(Some(&testing::role_arn(&account)), REGION);
    // Two requests go at once (the burst), then one every tenth of a second: eight take
    // at least 0.6 s, however fast the emulator answers.
    let started = Instant::now();
    for _ in 0..8 {
        assert!(
            rds.instance(&scope, "nothing-here")
                .await
                .expect("read")
                .is_none()
        );
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(590), "8 requests in {took:?}");
    assert_eq!(rds.clients.calls().calls("DescribeDBInstances"), 8);
}

#[tokio::test]
async fn kms_key_writes_wait_for_their_own_budget() {
    let env = testing::env();
    let account = testing::unique_account();
    let rate = Rate {
        per_second: 4.0,
        burst: 1,
    };
    let clients = env.aws_clients_limited(rate).await;
    let kms = backup_warden::aws::kms::SdkKms {
        clients: clients.clone(),
    };
    let scope = Scope::new(Some(&testing::role_arn(&account)), DESTINATION);
    // One key at once, then one every quarter of a second: three keys (each a CreateKey and
    // a CreateAlias, separate budgets) take at least half a second.
    let started = Instant::now();
    for i in 0..3 {
        let request = backup_warden::aws::kms::ReplicaKeyRequest {
            alias: format!("alias/budget-{i}"),
            account_id: account.clone(),
            partition: "aws".into(),
            source_arn: format!("arn:aws:rds:{REGION}:{account}:db:budget-{i}"),
        };
        use backup_warden::aws::kms::Kms;
        let key = kms.create_key(&scope, &request).await.expect("create key");
        kms.create_alias(&scope, &request.alias, &key.key_id)
            .await
            .expect("create alias");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(490), "3 keys in {took:?}");
    assert_eq!(clients.calls().calls("CreateKey"), 3);
}
