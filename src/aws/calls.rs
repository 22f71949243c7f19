//! Counts every AWS call by service and operation, and its errors, with an SDK
//! interceptor: the numbers behind the call-count tests, benchmarks and metrics.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            Intercept,
            context::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef},
        },
        orchestrator::Metadata,
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;

/// Calls and errors per (service, operation).
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Mutex<BTreeMap<(String, String), Count>>,
    /// `backup_warden_external_calls_total`, when metrics are exported.
    metric: std::sync::OnceLock<prometheus::IntCounterVec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub calls: u64,
    pub errors: u64,
}

impl ApiCalls {
    /// Counts into `metric` (service, operation, outcome) as well.
    pub fn with_metric(metric: prometheus::IntCounterVec) -> Self {
        let calls = Self::default();
        calls.attach_metric(metric);
        calls
    }

    /// Starts counting into `metric` too (the first metric attached stays).
    pub fn attach_metric(&self, metric: prometheus::IntCounterVec) {
        let _ = self.metric.set(metric);
    }

    fn finished(&self, service: &str, operation: &str, error: bool) {
        if let Some(metric) = self.metric.get() {
            metric
                .with_label_values(&[service, operation, if error { "error" } else { "success" }])
                .inc();
        }
        if error {
            self.record(service, operation, true);
        }
    }

    /// One call made without the SDK (an in-process model of a service), counted as the
    /// interceptor counts the SDK's.
    pub fn count(&self, service: &str, operation: &str, error: bool) {
        self.record(service, operation, false);
        self.finished(service, operation, error);
    }

    fn record(&self, service: &str, operation: &str, error: bool) {
        if let Ok(mut counts) = self.counts.lock() {
            let count = counts
                .entry((service.to_string(), operation.to_string()))
                .or_default();
            if error {
                count.errors += 1;
            } else {
                count.calls += 1;
            }
        }
    }

    /// Calls of one operation so far (e.g. "DescribeDBInstances").
    pub fn calls(&self, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, c)| c.calls)
            .sum()
    }

    /// `{"RDS.DescribeDBInstances": {"calls": 3, "errors": 0}, ...}`, for logs and reports.
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .snapshot()
            .into_iter()
            .map(|((service, op), c)| {
                (
                    format!("{service}.{op}"),
                    serde_json::json!({"calls": c.calls, "errors": c.errors}),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// Every (service, operation) with its counts.
    pub fn snapshot(&self) -> BTreeMap<(String, String), Count> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The interceptor the AWS clients carry.
#[derive(Clone, Debug)]
pub struct CallCounter {
    calls: Arc<ApiCalls>,
}

impl CallCounter {
    pub fn new(calls: Arc<ApiCalls>) -> Self {
        Self { calls }
    }
}

fn operation(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map(|m| (m.service().to_string(), m.name().to_string()))
        .unwrap_or_else(|| ("unknown".to_string(), "unknown".to_string()))
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "backup-warden-call-counter"
    }

    // Not read_before_execution: client interceptors see that hook before the operation's
    // metadata is in the config bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, op) = operation(cfg);
        self.calls.record(&service, &op, false);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, op) = operation(cfg);
        self.calls
            .finished(&service, &op, matches!(context.output_or_error(), Some(Err(_))));
        // An action's evidence names the requests it made.
        if let Some(id) = context
            .response()
            .and_then(|response| crate::evidence::request_ids::aws_request_id(response.headers()))
        {
            crate::evidence::request_ids::note(&op, &id);
        }
        Ok(())
    }
}
