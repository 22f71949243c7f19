//! Objects as the API server holds them, decoded one at a time. An object the Rust types
//! cannot read (stored before a schema was tightened, or written past validation) becomes
//! [`Decoded::Invalid`] with the field and the reason, instead of failing the whole list,
//! the watch, and with them every other object's reconcile.

use std::{borrow::Cow, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, de::DeserializeOwned};

use crate::api::{BackedUpDatabase, BackedUpRepository, conditions::Condition};

/// An object of kind `K`, or why it could not be read as one.
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    Valid(Arc<K>),
    Invalid(Box<Undecodable>),
}

/// What is known of an object whose spec cannot be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    /// The conditions it holds, so that a report of it moves `lastTransitionTime` only on a change.
    pub conditions: Vec<Condition>,
    /// The field and what is wrong with it, such as
    /// `spec.freshness.maxRestoreLag: invalid duration "0s": ...`.
    pub error: String,
}

impl<K> Decoded<K> {
    pub fn valid(&self) -> Option<&Arc<K>> {
        match self {
            Self::Valid(k) => Some(k),
            Self::Invalid(_) => None,
        }
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut value = serde_json::Value::deserialize(deserializer)?;
        slim(&mut value);
        let error = match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(object) => return Ok(Self::Valid(Arc::new(object))),
            Err(e) => format!("{}: {}", e.path(), e.inner()),
        };
        // Metadata the API server wrote is always readable; without it nothing can be reported.
        let metadata = value
            .get("metadata")
            .map(|m| ObjectMeta::deserialize(m).map_err(D::Error::custom))
            .transpose()?
            .unwrap_or_default();
        let conditions = value
            .pointer("/status/conditions")
            .and_then(|c| Vec::<Condition>::deserialize(c).ok())
            .unwrap_or_default();
        Ok(Self::Invalid(Box::new(Undecodable {
            metadata,
            conditions,
            error,
        })))
    }
}

/// Drops what the store need not keep of an object before it is decoded: the managed
/// fields (a few KiB per object once status is written, each entry a tree of its own) and
/// kubectl's last-applied copy of the whole object. Nothing here reads them, and they
/// would otherwise be most of the memory held per object.
fn slim(object: &mut serde_json::Value) {
    let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return;
    };
    meta.remove("managedFields");
    if let Some(annotations) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

impl<K: Resource<DynamicType = ()> + Clone> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Valid(k) => k.meta(),
            Self::Invalid(u) => &u.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            // Copy on write: the store shares the object with running reconciles.
            Self::Valid(k) => Arc::make_mut(k).meta_mut(),
            Self::Invalid(u) => &mut u.metadata,
        }
    }
}

/// An object of a (re)list that the store already holds at the same resourceVersion (the
/// same content, as the version changes with every write) becomes the stored one again.
/// While a relist is read the store keeps the old objects and the new list beside them,
/// so without this an API server restart or an expired watch holds every object twice.
pub fn share_unchanged<K>(
    store: &kube::runtime::reflector::Store<Decoded<K>>,
    event: kube::runtime::watcher::Event<Decoded<K>>,
) -> kube::runtime::watcher::Event<Decoded<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::{reflector::ObjectRef, watcher::Event};
    let Event::InitApply(listed) = event else {
        return event;
    };
    let stored = store
        .get(&ObjectRef::from_obj(&listed))
        .filter(|s| s.meta().resource_version.is_some())
        .filter(|s| s.meta().resource_version == listed.meta().resource_version);
    Event::InitApply(match stored {
        Some(stored) => (*stored).clone(),
        None => listed,
    })
}

/// The conditions an object's status holds, whatever its kind.
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for BackedUpDatabase {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasConditions for BackedUpRepository {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasConditions for crate::api::RetainedAuditTrail {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_store_keeps_no_managed_fields_nor_last_applied_copy_but_every_other_annotation() {
        let requested = "backupwarden.io/reconcile-requested-at";
        let object = |spec| {
            json!({
                "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
                "metadata": {
                    "name": "orders", "namespace": "team-a",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\": \"copy\"}",
                        requested: "2026-11-30T10:00:00Z",
                    },
                    "managedFields": [{"manager": "backup-warden", "operation": "Apply",
                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
                },
                "spec": spec,
            })
        };
        let valid = object(json!({"instance": {"identifier": "orders", "region": "us-east-1"}}));
        let invalid = object(json!({"instance": {"identifier": 7}}));
        for (json, is_valid) in [(valid, true), (invalid, false)] {
            let decoded: Decoded<BackedUpDatabase> = serde_json::from_value(json).expect("decoded");
            assert_eq!(decoded.valid().is_some(), is_valid);
            let meta = decoded.meta();
            assert_eq!(meta.managed_fields, None);
            let annotations = meta.annotations.as_ref().expect("annotations");
            assert_eq!(
                annotations.keys().collect::<Vec<_>>(),
                [requested],
                "the reconcile request stays"
            );
        }
    }

    fn database(freshness: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "backupwarden.io/v1alpha1",
            "kind": "BackedUpDatabase",
            "metadata": {"name": "db", "namespace": "ns", "generation": 2},
            "spec": {"instance": {"identifier": "db", "region": "us-east-1"}, "freshness": freshness},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AllChecksPassed",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        })
    }

    #[test]
    fn a_valid_object_decodes_as_itself() {
        let decoded: Decoded<BackedUpDatabase> =
            serde_json::from_value(database(json!({"maxRestoreLag": "2h"}))).expect("decodes");
        let db = decoded.valid().expect("valid");
        assert_eq!(db.spec.freshness.max_restore_lag.to_string(), "2h");
        assert_eq!(decoded.meta().generation, Some(2));
    }

    #[test]
    fn an_invalid_object_keeps_its_metadata_conditions_and_names_the_field() {
        let decoded: Decoded<BackedUpDatabase> =
            serde_json::from_value(database(json!({"maxRestoreLag": "0s"}))).expect("never fails");
        let Decoded::Invalid(bad) = decoded else {
            panic!("0s must not decode")
        };
        assert_eq!(bad.metadata.name.as_deref(), Some("db"));
        assert_eq!(bad.conditions.len(), 1);
        assert!(
            bad.error
                .starts_with("spec.freshness.maxRestoreLag: invalid duration \"0s\""),
            "{}",
            bad.error
        );
    }

    #[test]
    fn a_relisted_object_at_the_same_version_is_the_stored_one() {
        use kube::runtime::{reflector, watcher::Event};
        let at = |version: &str| -> Decoded<BackedUpDatabase> {
            let mut object = database(json!({}));
            object["metadata"]["resourceVersion"] = version.into();
            serde_json::from_value(object).expect("decodes")
        };
        let (store, mut writer) = reflector::store::<Decoded<BackedUpDatabase>>();
        writer.apply_watcher_event(&Event::Apply(at("7")));
        let stored = store.state()[0].valid().expect("valid").clone();

        let Event::InitApply(same) = share_unchanged(&store, Event::InitApply(at("7"))) else {
            panic!("still an InitApply")
        };
        assert!(
            Arc::ptr_eq(same.valid().expect("valid"), &stored),
            "one copy, not two"
        );

        let Event::InitApply(changed) = share_unchanged(&store, Event::InitApply(at("8"))) else {
            panic!("still an InitApply")
        };
        assert!(!Arc::ptr_eq(changed.valid().expect("valid"), &stored));
        assert_eq!(changed.meta().resource_version.as_deref(), Some("8"));

        // Other events pass as they are; an object the store does not hold is the listed one.
        assert!(
            matches!(share_unchanged(&store, Event::Apply(at("7"))), Event::Apply(o) if !Arc::ptr_eq(o.valid().unwrap(), &stored))
        );
        let (empty, _writer) = reflector::store::<Decoded<BackedUpDatabase>>();
        let Event::InitApply(fresh) = share_unchanged(&empty, Event::InitApply(at("7"))) else {
            panic!("still an InitApply")
        };
        assert!(!Arc::ptr_eq(fresh.valid().expect("valid"), &stored));
    }

    #[test]
    fn one_bad_item_does_not_fail_the_list() {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
            database(json!({"maxRestoreLag": "99999999999999999999h"})),
            database(json!({})),
        ]});
        let items: kube::core::ObjectList<Decoded<BackedUpDatabase>> =
            serde_json::from_value(list).expect("the list decodes");
        let valid = items.items.iter().filter(|i| i.valid().is_some()).count();
        assert_eq!((items.items.len(), valid), (2, 1));
    }

    #[test]
    fn one_bad_audit_trail_does_not_fail_the_list() {
        let trail = |name: &str, spec: serde_json::Value| {
            json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "RetainedAuditTrail",
                   "metadata": {"name": name, "namespace": "security"}, "spec": spec})
        };
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
            // Stored past a tightened schema: a retention Rust cannot hold, an unreadable age.
            trail("bad", json!({"trail": {"name": "org", "region": "us-east-1"}, "retentionDays": 1e12,
                                "freshness": {"maxDeliveryAge": "soon"}})),
            trail("good", json!({"trail": {"name": "org", "region": "us-east-1"}})),
        ]});
        let items: kube::core::ObjectList<Decoded<crate::api::RetainedAuditTrail>> =
            serde_json::from_value(list).expect("the list decodes");
        let valid: Vec<String> = items
            .items
            .iter()
            .filter_map(|i| i.valid())
            .map(|t| kube::ResourceExt::name_any(t.as_ref()))
            .collect();
        assert_eq!((items.items.len(), valid), (2, vec!["good".to_string()]));
    }
}
