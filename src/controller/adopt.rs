//! What `BackedUpDatabase` objects declare, for a coverage: every claim in the cluster, the
//! names taken in its namespace, and the objects it adopted. And Adopt itself: one object
//! per undeclared instance, created once (a fixed name: a second create, from a restart or
//! another replica, is refused by the API server), never touching one a person created, and
//! removed only once its instance has been gone for the grace period.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams, Preconditions},
};

use super::{Decoded, admission::Claimant};
use crate::{
    api::{
        BackedUpDatabase, BackedUpDatabaseSpec, ConditionType, Reason, conditions::find_condition,
        coverage::BackupCoverage, database::InstanceRef,
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

/// What the cluster's `BackedUpDatabase` objects declare, as one coverage needs it.
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
    /// Since when it reports its instance missing.
    pub missing_since: Option<Timestamp>,
}

/// Reads every `BackedUpDatabase` a page at a time (the controller's own store may hold
/// only a namespace or its shards), keeping only what `coverage` needs of each.
pub async fn declared(client: &kube::Client, coverage: &BackupCoverage) -> Result<Declared, kube::Error> {
    let api: Api<Decoded<BackedUpDatabase>> = Api::all(client.clone());
    let (namespace, name) = (&coverage.spec.namespace, coverage.name_any());
    let mut declared = Declared::default();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        for object in &page.items {
            if object.namespace().as_ref() == Some(namespace) {
                declared.names.insert(object.name_any());
            }
            let Decoded::Valid(db) = object else { continue };
            declared.claims.insert(db.claim());
            let ours =
                db.labels().get(COVERAGE_LABEL) == Some(&name) && db.namespace().as_ref() == Some(namespace);
            if let (true, Some(claim)) = (ours, db.annotations().get(ADOPTED_ANNOTATION)) {
                let conditions = db.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
                let missing_since = find_condition(conditions, ConditionType::Ready)
                    .filter(|c| c.reason == Reason::InstanceNotFound.as_str())
                    .map(|c| c.last_transition_time.timestamp());
                declared.adopted.push(Adopted {
                    name: db.name_any(),
                    uid: db.uid(),
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

/// Creates an object for each undeclared claim (`claim` → identifier as RDS spells it);
/// the names of those created.
pub async fn adopt(
    client: &kube::Client,
    coverage: &BackupCoverage,
    undeclared: &BTreeMap<String, String>,
    declared: &mut Declared,
) -> Result<Vec<String>, kube::Error> {
    let spec = &coverage.spec;
    let api: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &spec.namespace);
    let mut created = Vec::new();
    for (claim, identifier) in undeclared {
        let Some(name) = object_name(claim, |n| declared.names.contains(n)) else {
            tracing::warn!(%claim, "no free name to adopt the instance under");
            continue;
        };
        declared.names.insert(name.clone());
        let object = adopted_object(coverage, &name, claim, identifier);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => created.push(name),
            // Another replica, or this one before a restart, made it: the next scan sees it.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

fn adopted_object(coverage: &BackupCoverage, name: &str, claim: &str, identifier: &str) -> BackedUpDatabase {
    let spec = &coverage.spec;
    let template = &spec.adopt.database_template;
    let (account, region, _) = parts(claim);
    let owner = OwnerReference {
        api_version: BackupCoverage::api_version(&()).into_owned(),
        kind: BackupCoverage::kind(&()).into_owned(),
        name: coverage.name_any(),
        uid: coverage.uid().unwrap_or_default(),
        ..Default::default()
    };
    BackedUpDatabase {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(spec.namespace.clone()),
            labels: Some([(COVERAGE_LABEL.to_string(), coverage.name_any())].into()),
            annotations: Some([(ADOPTED_ANNOTATION.to_string(), claim.to_string())].into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
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
    }
}

/// Deletes the adopted objects whose instance the scan no longer finds and that have
/// reported it missing for the grace period; the names of those deleted.
pub async fn remove_gone(
    client: &kube::Client,
    coverage: &BackupCoverage,
    declared: &Declared,
    discovered: &HashSet<String>,
    now: Timestamp,
) -> Result<Vec<String>, kube::Error> {
    let spec = &coverage.spec;
    let grace =
        SignedDuration::try_from(spec.adopt.grace_period.as_duration()).unwrap_or(SignedDuration::MAX);
    let api: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &spec.namespace);
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
