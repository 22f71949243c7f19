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
    api::{DeleteParams, ListParams, PostParams, Preconditions},
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

/// Objects read per page.
const PAGE: u32 = 500;

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

/// Reads every object of the kind a page at a time (the controller's own store may hold
/// only a namespace or its shards), keeping only what `coverage` needs of each.
pub async fn declared<K: Adoptable>(
    client: &kube::Client,
    coverage: &BackupCoverage,
) -> Result<Declared, kube::Error> {
    let api: Api<Decoded<K>> = Api::all(client.clone());
    let (namespace, name) = (&coverage.spec.namespace, coverage.name_any());
    let mut declared = Declared::default();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        for object in &page.items {
            let here = object.namespace().as_ref() == Some(namespace);
            if here {
                declared.names.insert(object.name_any());
            }
            let Decoded::Valid(k) = object else { continue };
            declared.claims.insert(k.claim());
            let ours = here && k.labels().get(COVERAGE_LABEL) == Some(&name);
            if let (true, Some(claim)) = (ours, k.annotations().get(ADOPTED_ANNOTATION)) {
                let missing_since = find_condition(k.conditions(), ConditionType::Ready)
                    .filter(|c| c.reason == K::MISSING.as_str())
                    .map(|c| c.last_transition_time.timestamp());
                declared.adopted.push(Adopted {
                    name: k.name_any(),
                    uid: k.uid(),
                    claim: claim.clone(),
                    missing_since,
                });
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(declared),
        }
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
