//! What the objects of a kind declare, for a coverage: every claim in the cluster, the names
//! taken in its namespace, and the objects it adopted. And Adopt itself: one object per
//! undeclared resource, created once (a fixed name: a second create, from a restart or
//! another replica, is refused by the API server), never touching one a person created, and
//! removed only once its resource has been gone for the grace period.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, PostParams, Preconditions},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Decoded, admission::Claimant, decoded::HasConditions};
use crate::{
    api::{
        BackedUpDatabase, BackedUpDatabaseSpec, BackedUpRepository, BackedUpRepositorySpec, ConditionType,
        Reason, conditions::find_condition, coverage::BackupCoverage, database::InstanceRef,
    },
    observe,
    policy::coverage::{object_name, parts},
};

/// The label naming the coverage that created an object.
pub const COVERAGE_LABEL: &str = "backupwarden.io/coverage";
/// The annotation holding the claim an adopted object was created for.
pub const ADOPTED_ANNOTATION: &str = "backupwarden.io/adopted";

/// A kind a coverage adopts for: how its object is made, and how it says its resource is gone.
pub trait Adoptable:
    Claimant
    + HasConditions
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The reason its `Ready` condition gives when the resource does not exist.
    const MISSING: Reason;
    /// The object declaring the resource of `claim` (named `display` by AWS or GitHub),
    /// or `None` when the coverage has no template for the kind.
    fn adopted(coverage: &BackupCoverage, meta: ObjectMeta, claim: &str, display: &str) -> Option<Self>;
    /// A name the object may take, from its claim, before collisions are resolved.
    fn name_for(claim: &str, taken: impl Fn(&str) -> bool) -> Option<String>;
}

impl Adoptable for BackedUpDatabase {
    const MISSING: Reason = Reason::InstanceNotFound;

    fn adopted(coverage: &BackupCoverage, meta: ObjectMeta, claim: &str, identifier: &str) -> Option<Self> {
        let spec = &coverage.spec;
        let template = &spec.adopt.database_template;
        let (account, region, _) = parts(claim);
        Some(BackedUpDatabase {
            metadata: meta,
            spec: BackedUpDatabaseSpec {
                mode: template.mode,
                suspend: false,
                instance: InstanceRef {
                    identifier: identifier.to_string(),
                    region: region.to_string(),
                    role_arn: observe::coverage::role_for(spec, account).map(str::to_string),
                },
                backups: template.backups.clone(),
                replication: template.replication.clone(),
                freshness: template.freshness.clone(),
                restore_drill: template.restore_drill.clone(),
            },
            status: None,
        })
    }

    fn name_for(claim: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
        object_name(claim, taken)
    }
}

impl Adoptable for BackedUpRepository {
    const MISSING: Reason = Reason::RepositoryNotFound;

    fn adopted(coverage: &BackupCoverage, meta: ObjectMeta, _claim: &str, full_name: &str) -> Option<Self> {
        let template = coverage.spec.adopt.repository_template.as_ref()?;
        Some(BackedUpRepository {
            metadata: meta,
            spec: BackedUpRepositorySpec {
                mode: template.mode,
                suspend: false,
                repository: full_name.to_string(),
                workflow: template.workflow.clone(),
                storage: template.storage.clone(),
                freshness: template.freshness.clone(),
                restore_drill: template.restore_drill.clone(),
            },
            status: None,
        })
    }

    /// The repository's name, then with its owner, as a DNS label (GitHub allows `.` and
    /// `_`, which object names do not).
    fn name_for(claim: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
        let label = |text: &str| -> String {
            let mapped: String = text
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            mapped
                .trim_matches('-')
                .chars()
                .take(63)
                .collect::<String>()
                .trim_end_matches('-')
                .to_string()
        };
        let (owner, name) = claim.split_once('/')?;
        [label(name), label(&format!("{owner}-{name}"))]
            .into_iter()
            .filter(|n| !n.is_empty())
            .find(|n| !taken(n))
    }
}

/// What the cluster's objects of one kind declare, as one coverage needs it.
#[derive(Debug, Default)]
pub struct Declared {
    pub claims: HashSet<String>,
    /// The names used in the coverage's namespace.
    pub names: HashSet<String>,
    /// The objects this coverage created.
    pub adopted: Vec<Adopted>,
}

#[derive(Debug)]
pub struct Adopted {
    pub name: String,
    pub uid: Option<String>,
    pub claim: String,
    /// Since when it reports its resource missing.
    pub missing_since: Option<Timestamp>,
}

/// What every object of one kind in the cluster declares, kept current by a watch: a few
/// strings per object, so that a coverage counts without listing every object each scan
/// (and sees a new declaration at once).
#[derive(Default)]
pub struct Declarations {
    objects: std::sync::Mutex<std::collections::HashMap<String, Declaration>>,
    /// Set once the first list is complete: before it, everything would look undeclared.
    listed: tokio::sync::watch::Sender<bool>,
}

/// One object, as a coverage needs it.
#[derive(Clone, Debug)]
struct Declaration {
    namespace: String,
    name: String,
    uid: Option<String>,
    /// `None` for an object that cannot be read: it declares nothing.
    claim: Option<String>,
    /// The coverage that adopted it and the claim it was adopted for.
    adopted_by: Option<(String, String)>,
    /// Since when it reports its resource missing.
    missing_since: Option<Timestamp>,
}

impl Declarations {
    fn record<K: Adoptable>(object: &Decoded<K>) -> Declaration {
        let meta = object.meta();
        let valid = object.valid();
        let adopted_by = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(COVERAGE_LABEL))
            .zip(meta.annotations.as_ref().and_then(|a| a.get(ADOPTED_ANNOTATION)))
            .map(|(coverage, claim)| (coverage.clone(), claim.clone()));
        let missing_since = valid.and_then(|k| {
            find_condition(k.conditions(), ConditionType::Ready)
                .filter(|c| c.reason == K::MISSING.as_str())
                .map(|c| c.last_transition_time.timestamp())
        });
        Declaration {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            claim: valid.map(|k| k.claim()),
            adopted_by,
            missing_since,
        }
    }

    /// Keeps the index current from a watch of every object of `K`, until dropped.
    pub async fn watch<K: Adoptable + Clone>(self: std::sync::Arc<Self>, client: kube::Client) {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let api: Api<Decoded<K>> = Api::all(client);
        let key = |o: &Decoded<K>| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
        let mut relist = std::collections::HashMap::new();
        let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let lock = || self.objects.lock().unwrap_or_else(|p| p.into_inner());
            match event {
                Ok(watcher::Event::Init) => relist.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    relist.insert(key(&o), Self::record(&o));
                }
                Ok(watcher::Event::InitDone) => {
                    *lock() = std::mem::take(&mut relist);
                    self.listed.send_replace(true);
                }
                Ok(watcher::Event::Apply(o)) => {
                    lock().insert(key(&o), Self::record(&o));
                }
                Ok(watcher::Event::Delete(o)) => {
                    lock().remove(&key(&o));
                }
                Err(error) => tracing::debug!(%error, "watch of declarations interrupted; resuming"),
            }
        }
    }

    /// What the objects declare, for `coverage`, once the first list is complete; `None`
    /// while it is not, after waiting a minute (everything would look undeclared).
    pub async fn declared(&self, coverage: &BackupCoverage) -> Option<Declared> {
        let mut listed = self.listed.subscribe();
        let wait = listed.wait_for(|done| *done);
        if !matches!(
            tokio::time::timeout(std::time::Duration::from_secs(60), wait).await,
            Ok(Ok(_))
        ) {
            return None;
        }
        let (namespace, name) = (&coverage.spec.namespace, coverage.name_any());
        let objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let mut declared = Declared::default();
        for d in objects.values() {
            if d.namespace == *namespace {
                declared.names.insert(d.name.clone());
            }
            declared.claims.extend(d.claim.clone());
            if let Some((by, claim)) = &d.adopted_by
                && *by == name
                && d.namespace == *namespace
                && d.claim.is_some()
            {
                declared.adopted.push(Adopted {
                    name: d.name.clone(),
                    uid: d.uid.clone(),
                    claim: claim.clone(),
                    missing_since: d.missing_since,
                });
            }
        }
        Some(declared)
    }
}

/// Creates an object for each undeclared claim (`claim` → the resource's name as AWS or
/// GitHub spells it); the names of those created, or `None` when the coverage has no
/// template for the kind.
pub async fn adopt<K: Adoptable>(
    client: &kube::Client,
    coverage: &BackupCoverage,
    undeclared: &BTreeMap<String, String>,
    declared: &mut Declared,
) -> Result<Option<Vec<String>>, kube::Error> {
    if K::adopted(coverage, ObjectMeta::default(), "", "").is_none() {
        return Ok(None);
    }
    let spec = &coverage.spec;
    let api: Api<K> = Api::namespaced(client.clone(), &spec.namespace);
    let mut created = Vec::new();
    for (claim, display) in undeclared {
        let Some(name) = K::name_for(claim, |n| declared.names.contains(n)) else {
            tracing::warn!(%claim, "no free name to adopt the resource under");
            continue;
        };
        let Some(object) = K::adopted(coverage, metadata(coverage, &name, claim), claim, display) else {
            return Ok(Some(created));
        };
        declared.names.insert(name.clone());
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => created.push(name),
            // Another replica, or this one before a restart, made it: the next scan sees it.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(created))
}

/// Labelled, annotated and owned by the coverage: what says an object is adopted.
fn metadata(coverage: &BackupCoverage, name: &str, claim: &str) -> ObjectMeta {
    let owner = OwnerReference {
        api_version: BackupCoverage::api_version(&()).into_owned(),
        kind: BackupCoverage::kind(&()).into_owned(),
        name: coverage.name_any(),
        uid: coverage.uid().unwrap_or_default(),
        ..Default::default()
    };
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(coverage.spec.namespace.clone()),
        labels: Some([(COVERAGE_LABEL.to_string(), coverage.name_any())].into()),
        annotations: Some([(ADOPTED_ANNOTATION.to_string(), claim.to_string())].into()),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// Deletes the adopted objects whose resource the scan no longer finds and that have
/// reported it missing for the grace period; the names of those deleted.
pub async fn remove_gone<K: Adoptable>(
    client: &kube::Client,
    coverage: &BackupCoverage,
    declared: &Declared,
    discovered: &HashSet<String>,
    now: Timestamp,
) -> Result<Vec<String>, kube::Error> {
    let spec = &coverage.spec;
    let grace =
        SignedDuration::try_from(spec.adopt.grace_period.as_duration()).unwrap_or(SignedDuration::MAX);
    let api: Api<K> = Api::namespaced(client.clone(), &spec.namespace);
    let mut deleted = Vec::new();
    for object in &declared.adopted {
        let expired = object
            .missing_since
            .is_some_and(|since| now.duration_since(since) >= grace);
        if discovered.contains(&object.claim) || !expired {
            continue;
        }
        // Only the object read: one recreated under the same name since is not touched.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&object.name, &params).await {
            Ok(_) => deleted.push(object.name.clone()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_object_is_named_as_a_dns_label_then_with_its_owner() {
        let name = |claim: &str, taken: &[&str]| BackedUpRepository::name_for(claim, |n| taken.contains(&n));
        assert_eq!(name("acme/api", &[]).as_deref(), Some("api"));
        assert_eq!(name("acme/My_Repo.js", &[]).as_deref(), Some("my-repo-js"));
        assert_eq!(name("acme/api", &["api"]).as_deref(), Some("acme-api"));
        assert_eq!(name("acme/api", &["api", "acme-api"]), None);
        assert_eq!(name("acme/.github", &[]).as_deref(), Some("github"));
    }
}
