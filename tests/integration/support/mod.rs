//! What the database integration tests share: a namespace and an AWS account of their own
//! per test, the emulator's clients in that account, objects, and what to wait for.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use backup_warden::api::{BackedUpDatabase, ConditionType};
use backup_warden_testing::{self as testing, TestEnv, condition};
use kube::{Api, api::PostParams};
use serde_json::json;

pub const SOURCE: &str = "us-east-1";
pub const DESTINATION: &str = "us-west-2";
pub const CONVERGE: Duration = Duration::from_secs(60);
pub const SOURCE_TAG: &str = "backup-warden/source-db-instance";

pub struct World {
    pub env: TestEnv,
    pub account: String,
    pub namespace: String,
    pub dbs: Api<BackedUpDatabase>,
    pub rds_source: aws_sdk_rds::Client,
    pub rds_destination: aws_sdk_rds::Client,
    pub kms_destination: aws_sdk_kms::Client,
}

pub async fn world(prefix: &str) -> World {
    world_in(testing::env(), prefix).await
}

/// A world in another environment than the shared one (a test's private one).
pub async fn world_in(env: &TestEnv, prefix: &str) -> World {
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, prefix).await;
    let account = testing::unique_account();
    World {
        rds_source: aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await),
        rds_destination: aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, &account).await),
        kms_destination: aws_sdk_kms::Client::new(&env.aws_config_in(DESTINATION, &account).await),
        dbs: Api::namespaced(client, &namespace),
        env: env.clone(),
        account,
        namespace,
    }
}

/// One key of the destination region, as the test reads it straight from the emulator.
#[derive(Debug, Clone)]
pub struct Key {
    pub arn: String,
    pub id: String,
    pub state: String,
    pub tags: BTreeMap<String, String>,
    pub aliases: Vec<String>,
}

impl Key {
    pub fn made_for(&self, world: &World, identifier: &str) -> bool {
        self.tags.get(SOURCE_TAG) == Some(&world.source_arn(identifier))
    }
}

impl World {
    /// Every alias of the destination region: (name, target key id). Every page: the
    /// emulator pages them as KMS does (50 a page).
    pub async fn aliases(&self) -> Vec<(String, String)> {
        let listed: Vec<_> = self
            .kms_destination
            .list_aliases()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .expect("aliases");
        listed
            .iter()
            .filter_map(|a| Some((a.alias_name()?.to_string(), a.target_key_id()?.to_string())))
            .collect()
    }

    /// Every key of the destination region with its state, tags and aliases.
    pub async fn keys(&self) -> Vec<Key> {
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
        for (name, target) in self.aliases().await {
            aliases.entry(target).or_default().push(name);
        }
        let listed: Vec<_> = self
            .kms_destination
            .list_keys()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .expect("list keys");
        let mut keys = Vec::new();
        for listed in listed {
            let id = listed.key_id().unwrap_or_default();
            let described = self
                .kms_destination
                .describe_key()
                .key_id(id)
                .send()
                .await
                .expect("describe");
            let meta = described.key_metadata().expect("metadata");
            let tags = self
                .kms_destination
                .list_resource_tags()
                .key_id(id)
                .send()
                .await
                .expect("tags");
            keys.push(Key {
                arn: meta.arn().unwrap_or_default().to_string(),
                id: id.to_string(),
                state: meta
                    .key_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                tags: tags
                    .tags()
                    .iter()
                    .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
                    .collect(),
                aliases: aliases.remove(id).unwrap_or_default(),
            });
        }
        keys
    }

    pub async fn keys_made_for(&self, identifier: &str) -> Vec<Key> {
        self.keys()
            .await
            .into_iter()
            .filter(|k| k.made_for(self, identifier))
            .collect()
    }

    /// As if `seconds` had passed since the key was created.
    pub fn age(&self, key: &str, seconds: u64) {
        let (code, body) = self.env.emulator_post(
            "/moto-api/backup-warden/kms-key-age",
            &json!({"account_id": self.account, "region": DESTINATION, "key_id": key, "seconds": seconds}),
        );
        assert_eq!(
            code, 200,
            "{body}: an emulator started before kms-key-age was added needs a restart"
        );
    }

    /// (status, key ARN) of every automated backup of the instance held in the destination.
    pub async fn replicas(&self, identifier: &str) -> Vec<(String, String)> {
        let out = self
            .rds_destination
            .describe_db_instance_automated_backups()
            .send()
            .await
            .expect("describe automated backups");
        out.db_instance_automated_backups()
            .iter()
            .filter(|b| b.db_instance_identifier() == Some(identifier))
            .map(|b| {
                (
                    b.status().unwrap_or_default().to_string(),
                    b.kms_key_id().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub async fn apply(&self, name: &str, identifier: &str, extra: serde_json::Value) {
        let mut spec = json!({
            "instance": {"identifier": identifier, "region": SOURCE, "roleArn": testing::role_arn(&self.account)},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let object: BackedUpDatabase = serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        self.dbs
            .create(&PostParams::default(), &object)
            .await
            .expect("create BackedUpDatabase");
    }

    /// The instance's backup retention, as RDS reports it.
    pub async fn retention(&self, identifier: &str) -> i32 {
        let out = self
            .rds_source
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
            .await
            .expect("describe");
        out.db_instances()[0].backup_retention_period().unwrap_or(-1)
    }

    /// Changes the retention behind the controller's back, as a person would.
    pub async fn set_retention(&self, identifier: &str, days: i32) {
        self.rds_source
            .modify_db_instance()
            .db_instance_identifier(identifier)
            .backup_retention_period(days)
            .send()
            .await
            .expect("modify retention");
    }

    pub fn source_arn(&self, identifier: &str) -> String {
        format!("arn:aws:rds:{SOURCE}:{}:db:{identifier}", self.account)
    }
}

pub fn is(status: &str, type_: ConditionType) -> impl Fn(&BackedUpDatabase) -> bool {
    let status = status.to_string();
    move |db| {
        condition(db, type_).is_some_and(|(s, _, _)| s == status)
            && db.status.as_ref().and_then(|s| s.observed_generation) == db.metadata.generation
    }
}

/// An instance in SOURCE with `retention_days`, its automated backups replicating to
/// DESTINATION under a key of the test's own, and an object `name` for it in `mode` with
/// that key and `extra` merged into its spec.
pub async fn replicated_database(
    account: &str,
    (instance, name): (&str, &str),
    retention_days: i32,
    mode: &str,
    extra: serde_json::Value,
) -> BackedUpDatabase {
    let env = testing::env();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, account).await);
    let rds_destination = aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, account).await);
    let kms = aws_sdk_kms::Client::new(&env.aws_config_in(DESTINATION, account).await);
    testing::create_instance(&rds, instance, retention_days).await;
    let key = kms
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .expect("key")
        .key_metadata
        .and_then(|m| m.arn)
        .expect("arn");
    rds_destination
        .start_db_instance_automated_backups_replication()
        .source_db_instance_arn(format!("arn:aws:rds:{SOURCE}:{account}:db:{instance}"))
        .kms_key_id(&key)
        .backup_retention_period(7)
        .send()
        .await
        .expect("replication");
    let mut spec = json!({
        "mode": mode,
        "instance": {"identifier": instance, "region": SOURCE, "roleArn": testing::role_arn(account)},
        "replication": {"kmsKey": {"arn": key}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object")
}
