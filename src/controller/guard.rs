//! What every reconcile goes through, whatever its kind: an object that cannot be decoded
//! is reported on itself (`Stalled`, reason `InvalidSpec`, naming the field) and waits for
//! an edit; one its namespace may not have, or whose instance or repository an older object
//! manages, is refused before anything is called (`NotAllowed`, `Conflict`); a panic is
//! contained to its object, reported on it and retried with backoff; and every object
//! looked at counts toward the sweep.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::Store,
    },
};

use crate::report::recorder::Recorder;

use super::{
    admission::{self, Claimant, Claims},
    context::Backoff,
    decoded::{Decoded, HasConditions},
    sweep::Sweep,
};
use crate::{
    api::{
        ConditionType, Reason,
        conditions::{Condition, find_condition},
    },
    report::{events, metrics::Metrics, status::apply_stalled},
    tenancy::Tenancy,
};

/// What the guard needs of the controller it guards.
pub struct Guard<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub kind: &'static str,
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub sweep: Arc<Sweep>,
    /// Every object of the kind, for the claims.
    pub store: Store<Decoded<K>>,
    pub claims: Claims,
    pub tenancy: Arc<Tenancy>,
    /// When a refused object is looked at again (its namespace's allowance may change).
    pub resync: Duration,
}

/// Runs `reconcile` on a decoded object; reports an undecodable one and contains a panic.
pub async fn reconcile<K, E, Fut>(
    guard: &Guard<K>,
    backoff: &Backoff,
    object: &Decoded<K>,
    reconcile: impl FnOnce(Arc<K>) -> Fut,
) -> Result<Action, E>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasConditions
        + Claimant
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    Fut: Future<Output = Result<Action, E>>,
{
    let key = super::object_key(object);
    let valid = match object {
        Decoded::Valid(valid) => valid.clone(),
        Decoded::Invalid(bad) => {
            let message = format!(
                "{}; edit the object: backup-warden does not act on it until it can be read",
                bad.error
            );
            tracing::warn!(object = %key, error = %bad.error, "the object cannot be read");
            guard
                .report_stalled::<K>(object, &bad.conditions, Reason::InvalidSpec, message)
                .await;
            guard.sweep.visited(key);
            return Ok(Action::await_change());
        }
    };
    let conditions = valid.conditions().to_vec();
    if let Some((reason, message)) = admission::refusal(&valid, &guard.tenancy, &guard.claims, &guard.store) {
        tracing::info!(object = %key, reason = reason.as_str(), %message, "refused");
        guard
            .report_stalled::<K>(object, &conditions, reason, message)
            .await;
        guard.sweep.visited(key);
        return Ok(Action::requeue(guard.resync));
    }
    match AssertUnwindSafe(reconcile(valid)).catch_unwind().await {
        Ok(Ok(action)) => {
            guard.sweep.visited(key);
            Ok(action)
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            tracing::error!(object = %key, panic = %what, "reconcile panicked; only this object is affected");
            guard
                .metrics
                .reconcile_errors
                .with_label_values(&[guard.kind, "panic"])
                .inc();
            let message = format!(
                "backup-warden failed on this object (a bug, please report it): {what}; retrying with backoff"
            );
            guard
                .report_stalled::<K>(object, &conditions, Reason::InternalError, message)
                .await;
            Ok(Action::requeue(backoff.delay(&key)))
        }
    }
}

impl<K0: Resource<DynamicType = ()> + Clone + 'static> Guard<K0> {
    /// The guard of one kind's controller, over the store of its objects.
    pub fn new(
        kind: &'static str,
        client: kube::Client,
        reporters: (Arc<Metrics>, Recorder),
        store: Store<Decoded<K0>>,
        tenancy: Arc<Tenancy>,
        resync: Duration,
    ) -> Self {
        let (metrics, recorder) = reporters;
        Self {
            kind,
            sweep: Arc::new(Sweep::new(kind, metrics.clone())),
            client,
            metrics,
            recorder,
            store,
            claims: Claims::default(),
            tenancy,
            resync,
        }
    }

    /// Stalls the object with `reason`: conditions merged in (the rest of the status is
    /// kept), an Event and a not-ready series on a transition only.
    pub(crate) async fn report_stalled<K>(
        &self,
        object: &impl Resource<DynamicType = ()>,
        conditions: &[Condition],
        reason: Reason,
        message: String,
    ) where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let generation = object.meta().generation;
        let mut updated = conditions.to_vec();
        apply_stalled(&mut updated, reason, &message, generation, Timestamp::now());
        let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
        self.metrics.record_not_ready(self.kind, &namespace, &name);
        if updated == conditions {
            return;
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let patch = serde_json::json!({"status": {"conditions": updated, "observedGeneration": generation}});
        let params = PatchParams {
            field_manager: Some(super::FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        if let Err(error) = api.patch_status(&name, &params, &Patch::Merge(&patch)).await {
            tracing::warn!(object = %format!("{namespace}/{name}"), %error, "cannot write the status");
        }
        let was =
            find_condition(conditions, ConditionType::Stalled).map(|c| (c.reason.as_str(), &*c.message));
        if was != Some((reason.as_str(), message.as_str())) {
            let event = Event {
                type_: EventType::Warning,
                reason: reason.as_str().into(),
                note: Some(message),
                action: "Evaluate".into(),
                secondary: None,
            };
            events::publish(&self.recorder, &object.object_ref(&()), vec![event]).await;
        }
    }
}
