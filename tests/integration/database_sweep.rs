//! AWS calls scale with pages, not objects: with 250 instances and 250 resources in one
//! (account, region), one full sweep reads each inventory once, 100 per page.

use std::time::Duration;

use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    controller::Timing,
    policy::database::{Policy, replica_key_alias},
};
use backup_warden_testing::{self as testing, RunningController, condition};
use futures::{StreamExt, stream};
use kube::{Api, api::ListParams};
use serde_json::json;

const SOURCE: &str = "eu-central-1";
const DESTINATION: &str = "eu-west-1";
const INSTANCES: usize = 250;
const REPLICATED: usize = 5;

fn pages(items: usize) -> u64 {
    items.div_ceil(100).max(1) as u64
}

#[tokio::test]
async fn one_sweep_reads_each_inventory_once_per_page() {
    let _heavy = testing::heavy().await;
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "bdb-sweep").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    let rds_destination = aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, &account).await);
    let kms = aws_sdk_kms::Client::new(&env.aws_config_in(DESTINATION, &account).await);

    let ids: Vec<String> = (0..INSTANCES).map(|i| format!("db-{i:03}")).collect();
    stream::iter(ids.iter())
        .for_each_concurrent(16, |id| {
            let rds = rds.clone();
            async move {
                testing::create_instance(&rds, id, 1).await;
            }
        })
        .await;
    // A few instances already replicate, each under a key of its own that the per-database
    // alias names (as backup-warden makes them), so the replica inventory holds something
    // and each key is reached both through its alias and through the replica's key ARN.
    for id in &ids[..REPLICATED] {
        let key = kms
            .create_key()
            .send()
            .await
            .expect("key")
            .key_metadata
            .expect("metadata");
        kms.create_alias()
            .alias_name(replica_key_alias(SOURCE, id))
            .target_key_id(key.key_id())
            .send()
            .await
            .expect("alias");
        rds_destination
            .start_db_instance_automated_backups_replication()
            .source_db_instance_arn(format!("arn:aws:rds:{SOURCE}:{account}:db:{id}"))
            .kms_key_id(key.arn().expect("arn"))
            .send()
            .await
            .expect("start replication");
    }

    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let role = testing::role_arn(&account);
    testing::create_databases(&dbs, &ids, |id| {
        json!({"mode": "Audit", "instance": {"identifier": id, "region": SOURCE, "roleArn": role},
               "replication": {"destinationRegion": DESTINATION}})
    })
    .await;

    // A resync long enough that the sweep below is the only one.
    let timing = Timing {
        resync: Duration::from_secs(600),
        ..testing::fast_timing()
    };
    let ctx = env.context(Policy::default(), timing).await;
    let controller = RunningController::start(ctx.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = dbs.list(&ListParams::default()).await.expect("list");
        let done = list
            .items
            .iter()
            .filter(|db| condition(db, ConditionType::Ready).is_some())
            .count();
        if done == INSTANCES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of {INSTANCES} reconciled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(controller);

    let calls = ctx.calls.snapshot();
    let count = |op: &str| ctx.calls.calls(op);
    assert!(
        count("DescribeDBInstances") <= pages(INSTANCES),
        "DescribeDBInstances: {calls:?}"
    );
    assert!(
        count("DescribeDBInstanceAutomatedBackups") <= pages(REPLICATED),
        "{calls:?}"
    );
    assert!(count("DescribeDBSnapshots") <= pages(INSTANCES), "{calls:?}");
    assert!(count("DescribeSourceRegions") <= 1, "{calls:?}");
    assert!(count("ListAliases") <= 1, "{calls:?}");
    assert!(
        count("DescribeKey") <= REPLICATED as u64,
        "one DescribeKey per distinct key, however it is reached: {calls:?}"
    );
    // The orphan key cleanup runs only for objects in Enforce mode.
    assert_eq!(count("GetResources"), 0, "{calls:?}");
    let total: u64 = calls.values().map(|c| c.calls).sum();
    println!("AWS calls for one sweep of {INSTANCES} objects: {calls:?}");
    let bound = 2 * pages(INSTANCES) + pages(REPLICATED) + 3 + REPLICATED as u64;
    assert!(
        total <= bound,
        "{total} AWS calls for {INSTANCES} objects (at most {bound}): {calls:?}"
    );
}
