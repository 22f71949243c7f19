//! Detection within seconds: AWS changes (CloudTrail events through EventBridge and SQS)
//! and GitHub changes (webhooks) name what changed; the objects concerned are reconciled at
//! once, reading afresh. An event only schedules a reconcile: the reconcile reads the truth
//! from AWS and GitHub, so a forged or stale event cannot make the controller do anything
//! the policy would not. The periodic sweep stays as the backstop.

pub mod cloudtrail;
pub mod github;
pub mod receiver;
pub mod route;
pub mod sqs;

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::jiff::Timestamp;

/// What an event says changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An RDS instance, by its region and identifier.
    Instance {
        account: Option<String>,
        region: String,
        identifier: String,
    },
    /// Some automated backup replicated into a region (an event naming a backup, not its
    /// instance).
    ReplicasIn { account: Option<String>, region: String },
    /// A KMS key, by id or ARN.
    Key {
        account: Option<String>,
        region: String,
        key: String,
    },
    /// A KMS alias.
    Alias {
        account: Option<String>,
        region: String,
        alias: String,
    },
    /// An S3 bucket's lifecycle.
    Bucket { name: String },
    /// A CloudTrail trail, by name or ARN.
    Trail {
        account: Option<String>,
        region: String,
        name: String,
    },
    /// A GitHub repository, as owner/name.
    Repository { name: String },
    /// The set of a region's instances changed (one created or deleted): what coverages
    /// count there.
    Instances { account: Option<String>, region: String },
}

/// Where an event came from, a label of the metrics.
pub const SOURCES: [&str; 2] = ["aws", "github"];

/// Objects an event said changed, by `namespace/name`, with the event's source and time:
/// their next reconcile reads afresh, and its end is the detection latency.
#[derive(Debug, Default)]
pub struct Urgent(Mutex<HashMap<String, (&'static str, Timestamp)>>);

impl Urgent {
    /// Marks an object; of two events before its reconcile, the earlier time is kept.
    pub fn mark(&self, key: String, source: &'static str, at: Timestamp) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .and_modify(|e| {
                if at < e.1 {
                    *e = (source, at);
                }
            })
            .or_insert((source, at));
    }

    /// Takes the object's mark, if an event set one since its last reconcile began.
    pub fn take(&self, key: &str) -> Option<(&'static str, Timestamp)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }
}
