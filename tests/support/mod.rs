//! What the database integration tests share: a namespace and an AWS account of their own
//! per test, the emulator's clients in that account, objects, and what to wait for.
#![allow(dead_code)]

use std::time::Duration;

use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    testing::{self, condition},
};
use kube::{Api, api::PostParams};
use serde_json::json;

pub const SOURCE: &str = "us-east-1";
pub const DESTINATION: &str = "us-west-2";
pub const CONVERGE: Duration = Duration::from_secs(60);

pub struct World {
    pub account: String,
    pub namespace: String,
    pub dbs: Api<BackedUpDatabase>,
    pub rds_source: aws_sdk_rds::Client,
    pub rds_destination: aws_sdk_rds::Client,
    pub kms_destination: aws_sdk_kms::Client,
}

pub async fn world(prefix: &str) -> World {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, prefix).await;
    let account = testing::unique_account();
    World {
        rds_source: aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await),
        rds_destination: aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, &account).await),
        kms_destination: aws_sdk_kms::Client::new(&env.aws_config_in(DESTINATION, &account).await),
        dbs: Api::namespaced(client, &namespace),
        account,
        namespace,
    }
}

impl World {
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
