//! Before anything is read or written for an object: may its namespace use what it names
//! (the administrator's tenancy), and is it the one object that manages its RDS instance or
//! repository? Of two objects naming the same one, the older manages it and the other is
//! refused, whatever else their specs say. An object refused here is `Stalled` and
//! nothing is called for it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};

use super::decoded::Decoded;
pub use crate::policy::coverage::{account_of, database_claim};
use crate::{
    api::{BackedUpDatabase, BackedUpRepository, Reason},
    tenancy::Tenancy,
};

/// What an object claims, and whether its namespace may.
pub trait Claimant: kube::Resource<DynamicType = ()> + Clone + Sized {
    /// The external thing it manages, in a form two objects naming it share.
    fn claim(&self) -> String;
    /// Whether the administrator lets its namespace use what it names.
    fn allowed(&self, tenancy: &Tenancy) -> Result<(), String>;
    /// How the claim reads in a message.
    fn claim_text(&self) -> String;
}

impl Claimant for BackedUpDatabase {
    fn claim(&self) -> String {
        let instance = &self.spec.instance;
        database_claim(
            instance.role_arn.as_deref(),
            &instance.region,
            &instance.identifier,
        )
    }

    fn allowed(&self, tenancy: &Tenancy) -> Result<(), String> {
        tenancy.check_role(
            &self.namespace().unwrap_or_default(),
            self.spec.instance.role_arn.as_deref(),
        )
    }

    fn claim_text(&self) -> String {
        format!(
            "the RDS instance {} in {}",
            self.spec.instance.identifier, self.spec.instance.region
        )
    }
}

impl Claimant for BackedUpRepository {
    fn claim(&self) -> String {
        self.spec.repository.to_ascii_lowercase()
    }

    fn allowed(&self, tenancy: &Tenancy) -> Result<(), String> {
        tenancy.check_repository(&self.namespace().unwrap_or_default(), &self.spec.repository)
    }

    fn claim_text(&self) -> String {
        format!("the repository {}", self.spec.repository)
    }
}

impl Claimant for crate::api::RetainedAuditTrail {
    fn claim(&self) -> String {
        let trail = &self.spec.trail;
        let account = trail
            .arn_account()
            .or_else(|| trail.role_arn.as_deref().and_then(|arn| arn.split(':').nth(4)))
            .unwrap_or_default();
        format!("trail:{account}:{}:{}", trail.region, trail.trail_name())
    }

    fn allowed(&self, tenancy: &Tenancy) -> Result<(), String> {
        tenancy.check_role(
            &self.namespace().unwrap_or_default(),
            self.spec.trail.role_arn.as_deref(),
        )
    }

    fn claim_text(&self) -> String {
        format!(
            "the trail {} in {}",
            self.spec.trail.trail_name(),
            self.spec.trail.region
        )
    }
}

/// Who manages each claim: the oldest object naming it. Rebuilt from the store when an
/// object it does not know (new, or edited) asks, so a quiet sweep costs a lookup.
#[derive(Default)]
pub struct Claims {
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Each object (`namespace/name`) as indexed: its generation.
    seen: HashMap<String, Option<i64>>,
    /// Each claim's owner: (creation time, `namespace/name`).
    owners: HashMap<String, (Option<Timestamp>, String)>,
}

impl Claims {
    /// The object that manages what `object` claims, when it is another one.
    pub fn owner_other_than<K: Claimant>(&self, object: &K, store: &Store<Decoded<K>>) -> Option<String> {
        let key = super::object_key(object);
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let known = index.seen.get(&key) == Some(&object.meta().generation);
        let owner_gone = index
            .owners
            .get(&object.claim())
            .is_some_and(|(_, owner)| *owner != key && !index.seen.contains_key(owner));
        if !known || owner_gone {
            *index = build(store);
        }
        let (_, owner) = index.owners.get(&object.claim())?;
        (*owner != key).then(|| owner.clone())
    }
}

fn build<K: Claimant>(store: &Store<Decoded<K>>) -> Index {
    let mut index = Index::default();
    for object in store.state() {
        let Decoded::Valid(object) = object.as_ref() else {
            continue;
        };
        let key = super::object_key(object.as_ref());
        let created = object.meta().creation_timestamp.as_ref().map(|t| t.0);
        index.seen.insert(key.clone(), object.meta().generation);
        let candidate = (created, key);
        index
            .owners
            .entry(object.claim())
            .and_modify(|owner| {
                if candidate < *owner {
                    *owner = candidate.clone();
                }
            })
            .or_insert(candidate);
    }
    index
}

/// Why `object` may not be reconciled, if it may not.
pub fn refusal<K: Claimant>(
    object: &Arc<K>,
    tenancy: &Tenancy,
    claims: &Claims,
    store: &Store<Decoded<K>>,
) -> Option<(Reason, String)> {
    if let Err(why) = object.allowed(tenancy) {
        return Some((Reason::NotAllowed, why));
    }
    let owner = claims.owner_other_than(object.as_ref(), store)?;
    Some((
        Reason::Conflict,
        format!(
            "{owner} already manages {} (it is older); delete this object or point it elsewhere",
            object.claim_text()
        ),
    ))
}
