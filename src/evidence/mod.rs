//! The evidence log: every check transition and action, and one attestation per object a
//! day, appended as JSON lines to an S3 bucket that nothing rewrites, for the auditor's
//! report. Records are kept in a bounded spool (on disk, when given a directory) until
//! uploaded, so an outage or a restart loses none; a full spool drops records, counts them
//! and says so in a gap record.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use k8s_openapi::jiff::{Timestamp, civil::Date, tz::TimeZone};

use crate::report::metrics::Metrics;

pub mod read;
pub mod record;
pub mod request_ids;
pub mod spool;
pub mod upload;

pub use record::{Body, CheckState, Controller, ObjectRef, Record};

/// Where records wait until uploaded, and how much may wait.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The spool directory; None keeps waiting records in memory only.
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
}

/// The handle reconciles record through. Off (records nothing) without an evidence bucket.
pub struct EvidenceLog {
    inner: Option<Inner>,
}

struct Inner {
    controller: Controller,
    spool: Mutex<spool::Spool>,
    sequence: AtomicU64,
    /// The objects (incarnations: by uid) attested on the day it names.
    attested: Mutex<(Option<Date>, HashSet<String>)>,
    /// Records dropped since the last one kept: count, first and last time.
    dropped: Mutex<Option<(u64, String, String)>>,
    metrics: Arc<Metrics>,
}

/// The UTC day of a time.
pub fn day(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::UTC).date()
}

impl EvidenceLog {
    pub fn off() -> Arc<Self> {
        Arc::new(Self { inner: None })
    }

    /// Opens the spool (uploading what a previous run left is the uploader's first job).
    pub fn open(
        settings: &Settings,
        controller: Controller,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Self>> {
        let spool = spool::Spool::open(settings.spool_dir.as_deref(), settings.spool_max_bytes)?;
        metrics.evidence_pending.set(spool.pending().0 as i64);
        metrics
            .evidence_last_write
            .set(Timestamp::now().as_second() as f64);
        Ok(Arc::new(Self {
            inner: Some(Inner {
                controller,
                spool: Mutex::new(spool),
                sequence: AtomicU64::new(0),
                attested: Mutex::new((None, HashSet::new())),
                dropped: Mutex::new(None),
                metrics,
            }),
        }))
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// True once per UTC day for each object (a new incarnation, with a new uid, too): its
    /// first look of the day attests it.
    pub fn attest_due(&self, object: &ObjectRef, now: Timestamp) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let today = day(now);
        let mut attested = inner.attested.lock().unwrap_or_else(|p| p.into_inner());
        if attested.0 != Some(today) {
            *attested = (Some(today), HashSet::new());
        }
        let key = format!("{}/{}", object.key(), object.uid.as_deref().unwrap_or_default());
        attested.1.insert(key)
    }

    /// Appends one record of now; never fails the caller (a record that cannot be kept is
    /// counted).
    pub fn record(&self, object: Option<ObjectRef>, body: Body) {
        self.record_at(Timestamp::now(), object, body);
    }

    /// Appends one record of something that happened `at`.
    pub fn record_at(&self, at: Timestamp, object: Option<ObjectRef>, body: Body) {
        let Some(inner) = &self.inner else {
            return;
        };
        let now = at;
        let record = inner.make(now, object, body);
        let mut spool = inner.spool.lock().unwrap_or_else(|p| p.into_inner());
        // Records dropped before this one are told first, in a gap record.
        let gap = inner.dropped.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut from = record.time.clone();
        let mut before = 0;
        if let Some((dropped, first, last)) = gap {
            let gap = inner.make(
                now,
                None,
                Body::Gap {
                    dropped,
                    from: first.clone(),
                    to: last,
                },
            );
            if !inner.keep(&mut spool, &gap) {
                (before, from) = (dropped, first);
            }
        }
        if before > 0 || !inner.keep(&mut spool, &record) {
            inner.dropped(before, &from, &record.time);
        }
    }

    /// Sealed batches for the uploader, and what it left of each.
    pub(crate) fn seal(&self) -> std::io::Result<Vec<spool::Batch>> {
        match &self.inner {
            Some(inner) => inner.spool.lock().unwrap_or_else(|p| p.into_inner()).seal(),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn finish(&self, batch: spool::Batch, left: Vec<String>) -> std::io::Result<()> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let uploaded = batch.lines.len().saturating_sub(left.len()) as u64;
        let mut spool = inner.spool.lock().unwrap_or_else(|p| p.into_inner());
        let result = spool.finish(batch, left);
        inner
            .metrics
            .evidence_records
            .with_label_values(&["written"])
            .inc_by(uploaded);
        inner.metrics.evidence_pending.set(spool.pending().0 as i64);
        result
    }

    /// Records waiting to be uploaded.
    pub fn pending(&self) -> u64 {
        self.inner
            .as_ref()
            .map(|i| i.spool.lock().unwrap_or_else(|p| p.into_inner()).pending().0)
            .unwrap_or_default()
    }

    pub(crate) fn controller(&self) -> Option<&Controller> {
        self.inner.as_ref().map(|i| &i.controller)
    }

    pub(crate) fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.inner.as_ref().map(|i| &i.metrics)
    }
}

impl Inner {
    fn make(&self, now: Timestamp, object: Option<ObjectRef>, body: Body) -> Record {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        Record {
            v: record::FORMAT,
            id: format!("{}-{}-{n}", now.as_nanosecond(), self.controller.replica),
            time: now.to_string(),
            controller: self.controller.clone(),
            object,
            body,
        }
    }

    /// Into the spool; false when it is full.
    fn keep(&self, spool: &mut spool::Spool, record: &Record) -> bool {
        let Ok(line) = serde_json::to_string(record) else {
            return false;
        };
        let kept = match spool.append(&line) {
            Ok(kept) => kept,
            Err(error) => {
                tracing::error!(%error, "cannot write to the evidence spool");
                false
            }
        };
        if kept {
            self.metrics.evidence_records.with_label_values(&["kept"]).inc();
            self.metrics.evidence_pending.set(spool.pending().0 as i64);
        }
        kept
    }

    /// Counts one record dropped at `at`, after `before` dropped earlier (from `from`) whose
    /// gap record could not be kept either.
    fn dropped(&self, before: u64, from: &str, at: &str) {
        self.metrics
            .evidence_records
            .with_label_values(&["dropped"])
            .inc();
        let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        match dropped.as_mut() {
            Some((n, _, last)) => {
                *n += 1;
                *last = at.to_string();
            }
            None => {
                if before == 0 {
                    tracing::warn!(
                        "the evidence spool is full: records are dropped (and counted) until it drains"
                    );
                }
                *dropped = Some((before + 1, from.to_string(), at.to_string()));
            }
        }
    }
}

/// A check's drift found (`resolved` false) or resolved, from the Event that tells it.
pub fn transition(event: &kube::runtime::events::Event, resolved: bool) -> Body {
    let check = event.action.clone();
    // The note reads "Check: message".
    let note = event.note.clone().unwrap_or_default();
    let message = note
        .strip_prefix(&format!("{check}: "))
        .map(str::to_string)
        .unwrap_or(note);
    if resolved {
        Body::Resolved { check, message }
    } else {
        Body::Drift {
            check,
            reason: event.reason.clone(),
            message,
        }
    }
}

/// An action taken (or failed), from its Event, with the request ids of its calls.
pub fn action(event: &kube::runtime::events::Event, request_ids: Vec<String>) -> Body {
    Body::Action {
        action: event.action.clone(),
        description: event.note.clone().unwrap_or_default(),
        failed: event.type_ == kube::runtime::events::EventType::Warning,
        request_ids,
    }
}

/// The whole state of an object: every condition, and the object itself with `status` as
/// now written and its metadata trimmed to what identifies it.
pub fn attestation<K: serde::Serialize>(
    object: &K,
    conditions: &[crate::api::conditions::Condition],
    status: &impl serde::Serialize,
    mode: &str,
    suspended: bool,
) -> Body {
    let mut state = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = state.as_object_mut() {
        if let Some(metadata) = map.get("metadata").and_then(|m| m.as_object()) {
            let kept: serde_json::Map<String, serde_json::Value> = metadata
                .iter()
                .filter(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "name" | "namespace" | "uid" | "generation" | "labels" | "creationTimestamp"
                    )
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            map.insert("metadata".into(), serde_json::Value::Object(kept));
        }
        map.insert("status".into(), serde_json::to_value(status).unwrap_or_default());
    }
    Body::Attestation {
        mode: mode.to_string(),
        suspended,
        checks: conditions
            .iter()
            .map(|c| CheckState {
                type_: c.type_.as_str().to_string(),
                status: c.status.to_string(),
                reason: c.reason.to_string(),
                message: c.message.to_string(),
            })
            .collect(),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max_bytes: u64) -> (Arc<EvidenceLog>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let settings = Settings {
            spool_dir: None,
            spool_max_bytes: max_bytes,
        };
        let controller = Controller {
            version: "0.1.0".into(),
            replica: "pod-0".into(),
        };
        (
            EvidenceLog::open(&settings, controller, metrics.clone()).expect("open"),
            metrics,
        )
    }

    fn resolved() -> Body {
        Body::Resolved {
            check: "RetentionCompliant".into(),
            message: "retention is 7 days".into(),
        }
    }

    fn records(log: &EvidenceLog) -> Vec<Record> {
        log.seal()
            .expect("seal")
            .into_iter()
            .flat_map(|b| b.lines)
            .map(|l| serde_json::from_str(&l).expect("record"))
            .collect()
    }

    #[test]
    fn a_full_spool_drops_and_counts_then_says_so_in_a_gap_record_once_drained() {
        let (log, metrics) = log(1200);
        let mut kept = 0;
        for _ in 0..20 {
            log.record(None, resolved());
            kept = log.pending();
        }
        let dropped = metrics.evidence_records.with_label_values(&["dropped"]).get();
        assert!(kept > 0 && dropped > 0, "kept {kept}, dropped {dropped}");
        assert_eq!(kept + dropped, 20, "each record kept or counted");
        // Uploaded: room again; the next record is preceded by the gap.
        for batch in log.seal().expect("seal") {
            log.finish(batch, Vec::new()).expect("finish");
        }
        log.record(None, resolved());
        let after = records(&log);
        assert_eq!(after.len(), 2);
        assert!(
            matches!(after[0].body, Body::Gap { dropped: n, .. } if n == dropped),
            "{:?}",
            after[0]
        );
        assert!(matches!(after[1].body, Body::Resolved { .. }));
    }

    #[test]
    fn each_object_is_attested_once_a_day() {
        let (log, _) = log(1 << 20);
        let orders = ObjectRef {
            kind: "BackedUpDatabase".into(),
            namespace: "team".into(),
            name: "orders".into(),
            ..Default::default()
        };
        let morning: Timestamp = "2026-12-01T00:00:01Z".parse().expect("time");
        let evening: Timestamp = "2026-12-01T23:59:59Z".parse().expect("time");
        let tomorrow: Timestamp = "2026-12-02T00:00:00Z".parse().expect("time");
        assert!(log.attest_due(&orders, morning));
        assert!(!log.attest_due(&orders, evening));
        assert!(log.attest_due(&orders, tomorrow));
        let again = ObjectRef {
            uid: Some("new".into()),
            ..orders.clone()
        };
        assert!(
            log.attest_due(&again, tomorrow),
            "a new incarnation is attested afresh"
        );
        assert!(!EvidenceLog::off().attest_due(&orders, morning), "off: nothing");
    }

    #[test]
    fn ids_are_unique_and_records_carry_the_controller() {
        let (log, _) = log(1 << 20);
        for _ in 0..100 {
            log.record(None, resolved());
        }
        let all = records(&log);
        let ids: std::collections::HashSet<_> = all.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), 100);
        assert!(
            all.iter()
                .all(|r| r.controller.replica == "pod-0" && r.v == record::FORMAT)
        );
    }
}
