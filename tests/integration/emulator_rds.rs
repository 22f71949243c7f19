//! The AWS emulator's RDS automated-backup replication, driven through aws-sdk-rds and
//! aws-sdk-kms exactly as the controller will: replication is started in the destination
//! region, lives only there, is listed on the source, and refuses a second start and an
//! unusable key.

use aws_sdk_kms::types::KeyUsageType;
use aws_sdk_rds::{error::ProvideErrorMetadata, types::DbInstance};
use backup_warden_testing as testing;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// This run's own account: an emulator kept running between runs holds every replication
/// earlier runs left active, and RDS allows 20 per destination and account.
static ACCOUNT: std::sync::LazyLock<String> = std::sync::LazyLock::new(testing::unique_account);

async fn rds(region: &str) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&testing::env().aws_config_in(region, &ACCOUNT).await)
}

async fn kms(region: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&testing::env().aws_config_in(region, &ACCOUNT).await)
}

/// A fresh source instance with retention 1 and no replication.
async fn source_instance() -> DbInstance {
    let id = testing::unique_name("db");
    rds(SOURCE)
        .await
        .create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .backup_retention_period(1)
        .send()
        .await
        .expect("create source instance")
        .db_instance
        .expect("instance in response")
}

async fn replica_key() -> String {
    kms(DESTINATION)
        .await
        .create_key()
        .description("replica key for a test")
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .expect("create key")
        .key_metadata
        .and_then(|m| m.arn)
        .expect("key arn")
}

async fn start(source_arn: &str, key: &str) -> Result<aws_sdk_rds::operation::start_db_instance_automated_backups_replication::StartDbInstanceAutomatedBackupsReplicationOutput, aws_sdk_rds::error::SdkError<aws_sdk_rds::operation::start_db_instance_automated_backups_replication::StartDBInstanceAutomatedBackupsReplicationError>>{
    rds(DESTINATION)
        .await
        .start_db_instance_automated_backups_replication()
        .source_db_instance_arn(source_arn)
        .backup_retention_period(7)
        .kms_key_id(key)
        .send()
        .await
}

fn error_code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

#[tokio::test]
async fn replication_lives_in_the_destination_and_is_listed_on_the_source() {
    let source = source_instance().await;
    let source_arn = source.db_instance_arn().expect("source arn").to_string();
    let resource_id = source.dbi_resource_id().expect("resource id").to_string();
    let key = replica_key().await;

    let started = start(&source_arn, &key).await.expect("start replication");
    let replica_arn = started
        .db_instance_automated_backup()
        .and_then(|b| b.db_instance_automated_backups_arn())
        .expect("replica arn")
        .to_string();

    // In the destination region: replicating, under our key, with our retention.
    let in_destination = rds(DESTINATION)
        .await
        .describe_db_instance_automated_backups()
        .dbi_resource_id(&resource_id)
        .send()
        .await
        .expect("describe in destination");
    let backups = in_destination.db_instance_automated_backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let replica = &backups[0];
    assert_eq!(
        replica.db_instance_automated_backups_arn(),
        Some(replica_arn.as_str())
    );
    assert!(
        replica
            .status()
            .is_some_and(|s| s.eq_ignore_ascii_case("replicating")),
        "{replica:?}"
    );
    assert_eq!(replica.kms_key_id(), Some(key.as_str()));
    assert_eq!(replica.backup_retention_period(), Some(7));
    assert_eq!(replica.db_instance_arn(), Some(source_arn.as_str()));
    assert_eq!(replica.region(), Some(SOURCE), "Region names the source region");
    assert!(
        replica.restore_window().and_then(|w| w.latest_time()).is_some(),
        "restore window"
    );
    assert!(replica_arn.contains(&format!(":{DESTINATION}:")), "{replica_arn}");

    // In the source region: no replica, only the instance's own automated backups.
    let in_source = rds(SOURCE)
        .await
        .describe_db_instance_automated_backups()
        .dbi_resource_id(&resource_id)
        .send()
        .await
        .expect("describe in source");
    assert!(
        in_source
            .db_instance_automated_backups()
            .iter()
            .all(
                |b| b.db_instance_automated_backups_arn() != Some(replica_arn.as_str())
                    && !b.status().is_some_and(|s| s.eq_ignore_ascii_case("replicating"))
            ),
        "{:?}",
        in_source.db_instance_automated_backups()
    );

    // The source instance lists the replication.
    let described = rds(SOURCE)
        .await
        .describe_db_instances()
        .db_instance_identifier(source.db_instance_identifier().expect("id"))
        .send()
        .await
        .expect("describe source");
    let listed: Vec<&str> = described.db_instances()[0]
        .db_instance_automated_backups_replications()
        .iter()
        .filter_map(|r| r.db_instance_automated_backups_arn())
        .collect();
    assert_eq!(listed, [replica_arn.as_str()]);
}

#[tokio::test]
async fn a_second_start_for_the_same_source_fails() {
    let source = source_instance().await;
    let source_arn = source.db_instance_arn().expect("arn").to_string();
    let key = replica_key().await;
    start(&source_arn, &key).await.expect("first start");
    let second = start(&source_arn, &key)
        .await
        .expect_err("a second start must fail");
    assert_eq!(error_code(&second), "InvalidDBInstanceState");

    let in_destination = rds(DESTINATION)
        .await
        .describe_db_instance_automated_backups()
        .dbi_resource_id(source.dbi_resource_id().expect("id"))
        .send()
        .await
        .expect("describe");
    assert_eq!(
        in_destination.db_instance_automated_backups().len(),
        1,
        "still one replica"
    );
}

#[tokio::test]
async fn a_disabled_or_missing_key_fails() {
    let source = source_instance().await;
    let source_arn = source.db_instance_arn().expect("arn").to_string();

    let disabled = replica_key().await;
    kms(DESTINATION)
        .await
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .expect("disable key");
    let err = start(&source_arn, &disabled)
        .await
        .expect_err("a disabled key must fail");
    assert_eq!(error_code(&err), "KMSKeyNotAccessibleFault");

    let missing = format!(
        "arn:aws:kms:{DESTINATION}:{}:key/00000000-0000-0000-0000-000000000000",
        *ACCOUNT
    );
    let err = start(&source_arn, &missing)
        .await
        .expect_err("a missing key must fail");
    assert_eq!(error_code(&err), "KMSKeyNotAccessibleFault");

    let in_destination = rds(DESTINATION)
        .await
        .describe_db_instance_automated_backups()
        .dbi_resource_id(source.dbi_resource_id().expect("id"))
        .send()
        .await;
    let count = match in_destination {
        Ok(out) => out.db_instance_automated_backups().len(),
        Err(e) => {
            assert_eq!(error_code(&e), "DBInstanceAutomatedBackupNotFound");
            0
        }
    };
    assert_eq!(count, 0, "no replica after failed starts");
}

#[tokio::test]
async fn stopping_keeps_the_replica_as_retained() {
    let source = source_instance().await;
    let source_arn = source.db_instance_arn().expect("arn").to_string();
    let key = replica_key().await;
    start(&source_arn, &key).await.expect("start");
    rds(DESTINATION)
        .await
        .stop_db_instance_automated_backups_replication()
        .source_db_instance_arn(&source_arn)
        .send()
        .await
        .expect("stop");
    let out = rds(DESTINATION)
        .await
        .describe_db_instance_automated_backups()
        .dbi_resource_id(source.dbi_resource_id().expect("id"))
        .send()
        .await
        .expect("describe");
    let statuses: Vec<&str> = out
        .db_instance_automated_backups()
        .iter()
        .filter_map(|b| b.status())
        .collect();
    assert_eq!(statuses, ["retained"]);
    let described = rds(SOURCE)
        .await
        .describe_db_instances()
        .db_instance_identifier(source.db_instance_identifier().expect("id"))
        .send()
        .await
        .expect("describe source");
    assert!(
        described.db_instances()[0]
            .db_instance_automated_backups_replications()
            .is_empty()
    );
}
