//! Detection within seconds: AWS changes (CloudTrail events through EventBridge and SQS)
//! and GitHub changes (webhooks) name what changed; the objects concerned are reconciled at
//! once, reading afresh. An event only schedules a reconcile: the reconcile reads the truth
//! from AWS and GitHub, so a forged or stale event cannot make the controller do anything
//! the policy would not. The periodic sweep stays as the backstop.

pub mod cloudtrail;
pub mod github;
pub mod peers;
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
    /// An organization's repository as a webhook describes it now (created, archived,
    /// renamed or transferred in), or gone from it (deleted, renamed or transferred away):
    /// what coverages count.
    Listed {
        repository: crate::github::OrgRepository,
        gone: bool,
    },
}

/// Repository changes the webhooks reported, for the coverages' organization listings: each
/// applied to the cached listing at the next scan, so a coverage counts a new repository
/// without listing the organization again (its GraphQL budget is paced).
#[derive(Debug)]
pub struct Listings {
    pending: Mutex<Vec<(crate::github::OrgRepository, bool)>>,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
    rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<()>>>,
}

impl Default for Listings {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            pending: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Listings {
    pub fn push(&self, repository: crate::github::OrgRepository, gone: bool) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((repository, gone));
        let _ = self.tx.send(());
    }

    /// The changes of `org` (case-insensitive), oldest first, taken.
    pub fn take(&self, org: &str) -> Vec<(crate::github::OrgRepository, bool)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = format!("{}/", org.to_ascii_lowercase());
        let (mine, rest) = pending
            .drain(..)
            .partition(|(r, _)| r.full_name.to_ascii_lowercase().starts_with(&prefix));
        *pending = rest;
        mine
    }

    /// A signal per change, for the coverage controller (the first caller).
    pub fn wakes(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            rx.recv().await.map(|()| ((), Some(rx)))
        })
    }
}

/// Applies webhook-reported changes to an organization's listing, in order.
pub fn apply_listed(
    listing: &mut Vec<crate::github::OrgRepository>,
    changes: Vec<(crate::github::OrgRepository, bool)>,
) {
    for (repository, gone) in changes {
        listing.retain(|r| !r.full_name.eq_ignore_ascii_case(&repository.full_name));
        if !gone {
            listing.push(repository);
        }
    }
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
