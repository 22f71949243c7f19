//! What both kinds' drill runners do with a drill's status and its end: the status write,
//! and the Event, evidence record, metric and (when it failed) Slack message.

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};

use crate::{
    api::{Reason, drill::RestoreDrillStatus},
    evidence::EvidenceLog,
    report::{
        metrics::Metrics,
        recorder::Recorder,
        slack::{CheckLine, Notification, Notifier, Transition},
    },
};

/// An object with drills.
pub trait Drilled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
    const KIND: &'static str;
    fn drill_status(&self) -> RestoreDrillStatus;
}

impl Drilled for crate::api::BackedUpDatabase {
    const KIND: &'static str = "BackedUpDatabase";
    fn drill_status(&self) -> RestoreDrillStatus {
        self.status
            .as_ref()
            .and_then(|s| s.restore_drill.clone())
            .unwrap_or_default()
    }
}

impl Drilled for crate::api::BackedUpRepository {
    const KIND: &'static str = "BackedUpRepository";
    fn drill_status(&self) -> RestoreDrillStatus {
        self.status
            .as_ref()
            .and_then(|s| s.restore_drill.clone())
            .unwrap_or_default()
    }
}

/// Where a drill's end is told.
pub struct Reporters<'a> {
    pub client: &'a kube::Client,
    pub metrics: &'a Metrics,
    pub notifier: &'a dyn Notifier,
    pub recorder: &'a Recorder,
    pub evidence: &'a EvidenceLog,
}

/// Writes `status.restoreDrill`. The write names the version it was decided on; when the
/// object changed since (the store lagged, the pipeline wrote), it is written again on the
/// stored version only if the drill status is still the one decided on, else dropped: the
/// next tick decides afresh.
pub async fn write<K: Drilled>(
    client: &kube::Client,
    object: &K,
    drill: RestoreDrillStatus,
) -> Result<(), String> {
    let api: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
    // A merge patch removes a field only when it says null: every field is said.
    let mut value = serde_json::to_value(&drill).map_err(|e| e.to_string())?;
    if let Some(map) = value.as_object_mut() {
        for field in ["running", "last", "lastSuccessAt", "nextAt"] {
            map.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    let patch = |version: Option<String>| {
        serde_json::json!({
            "metadata": {"resourceVersion": version},
            "status": {"restoreDrill": value},
        })
    };
    let params = PatchParams::default();
    match api
        .patch_status(
            &object.name_any(),
            &params,
            &Patch::Merge(&patch(object.resource_version())),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(format!("writing status.restoreDrill: {e}")),
    }
    let stored = api
        .get_status(&object.name_any())
        .await
        .map_err(|e| e.to_string())?;
    if stored.drill_status() != object.drill_status() {
        return Ok(());
    }
    api.patch_status(
        &object.name_any(),
        &params,
        &Patch::Merge(&patch(stored.resource_version())),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("writing status.restoreDrill: {e}"))
}

/// A drill's end told: the metric, an Event, an evidence record, Slack when it failed.
pub async fn ended<K: Drilled>(to: &Reporters<'_>, object: &K, ok: bool, note: String) {
    let (reason, result) = if ok {
        (Reason::DrillSucceeded, "succeeded")
    } else {
        (Reason::DrillFailed, "failed")
    };
    to.metrics
        .restore_drills
        .with_label_values(&[K::KIND, result])
        .inc();
    if !ok {
        to.notifier.notify(Notification {
            kind: K::KIND,
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            transition: Transition::Drift,
            checks: vec![CheckLine {
                check: "RestoreDrill".into(),
                desired: "the newest backup restores".into(),
                observed: note.clone(),
            }],
            link: None,
        });
    }
    record(
        to.evidence,
        object,
        reason.as_str(),
        note.clone(),
        !ok,
        Vec::new(),
    );
    let event = crate::report::events::action(reason, note, !ok);
    crate::report::events::publish(to.recorder, &object.object_ref(&()), vec![event]).await;
}

/// An evidence record of a drill's step.
pub fn record<K: Drilled>(
    evidence: &EvidenceLog,
    object: &K,
    action: &str,
    description: String,
    failed: bool,
    request_ids: Vec<String>,
) {
    evidence.record(
        Some(crate::evidence::ObjectRef {
            kind: K::KIND.into(),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            uid: object.meta().uid.clone(),
            generation: object.meta().generation,
        }),
        crate::evidence::Body::Action {
            action: action.into(),
            description,
            failed,
            request_ids,
        },
    );
}
