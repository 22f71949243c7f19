//! Publishes Kubernetes Events (events.k8s.io/v1) as kube's `Recorder` does: an event
//! repeated for one object within 6 minutes is counted as a series on the first one
//! instead of being created again. What it remembers per event is the hash of what makes
//! events the same and when the first one was made (its name is the object's and that
//! time): kube's recorder keeps two copies of the whole Event per key in a table that
//! never shrinks (22.5 MiB at 2,000 databases converging, measured by `make bench-scale`
//! with `BENCH_HEAP_PROFILE=1`).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent, events::v1::EventSeries},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType},
};

/// How long a repeat joins the first event's series (kube's and client-go's 6 minutes).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    series: Arc<Mutex<Series>>,
}

/// The events published within the window, by the hash of what makes two events the same.
#[derive(Default)]
struct Series {
    events: HashMap<u64, Published>,
    swept: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
struct Published {
    /// When the first event of the series was made: with the object, its name.
    first: Timestamp,
    count: i32,
    last: Timestamp,
}

impl Series {
    /// What to do with an event of hash `key` at `now`: `Some` when the earlier event was
    /// made and the series' new count, or `None` for a new event.
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<(Timestamp, i32)> {
        self.forget_old(now);
        let published = self
            .events
            .get_mut(&key)
            .filter(|p| p.last + SERIES_WINDOW > now)?;
        published.count += 1;
        published.last = now;
        Some((published.first, published.count))
    }

    fn created(&mut self, key: u64, now: Timestamp) {
        self.events.insert(
            key,
            Published {
                first: now,
                count: 1,
                last: now,
            },
        );
    }

    /// Drops events out of the window, at most once a minute, and gives the table's room
    /// back once most of it is empty: a burst of events must not be held for good.
    fn forget_old(&mut self, now: Timestamp) {
        if self.swept.is_some_and(|t| t + SignedDuration::from_mins(1) > now) {
            return;
        }
        self.swept = Some(now);
        self.events.retain(|_, p| p.last + SERIES_WINDOW > now);
        if self.events.capacity() > 4 * self.events.len() + 64 {
            self.events.shrink_to_fit();
        }
    }
}

/// What makes two events the same: the object, the type, reason, action, note and the
/// related object (client-go folds identical events; a new note is a new event).
fn event_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    (
        matches!(ev.type_, EventType::Warning),
        &ev.reason,
        &ev.action,
        &ev.note,
    )
        .hash(&mut h);
    for r in std::iter::once(regarding).chain(ev.secondary.as_ref()) {
        (&r.uid, &r.kind, &r.namespace, &r.name, &r.api_version).hash(&mut h);
    }
    h.finish()
}

impl Recorder {
    pub fn new(client: Client, controller: String) -> Self {
        Self {
            client,
            controller,
            series: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the event in the object's namespace, or counts it on the same event
    /// published within the last 6 minutes.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let key = event_key(ev, regarding);
        let repeat = self.lock().repeat(key, now);
        if let Some((first, count)) = repeat {
            let patch = serde_json::json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }});
            match events
                .patch(
                    &self.event_name(regarding, first),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (the API server keeps events an hour): published anew below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding, now);
        events.create(&PostParams::default(), &event).await?;
        self.lock().created(key, now);
        Ok(())
    }

    /// The name of the event about `regarding` made at `at`.
    fn event_name(&self, regarding: &ObjectReference, at: Timestamp) -> String {
        format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            at.as_nanosecond()
        )
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(self.event_name(regarding, now)),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minutes)
    }

    fn event(note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: "DriftDetected".into(),
            note: Some(note.into()),
            action: "RetentionCompliant".into(),
            secondary: None,
        }
    }

    fn object(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("BackedUpDatabase".into()),
            namespace: Some("team".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn an_event_repeated_within_six_minutes_counts_on_the_first() {
        let mut s = Series::default();
        let key = event_key(&event("retention is 1 day"), &object("a"));
        assert_eq!(s.repeat(key, at(0)), None);
        s.created(key, at(0));
        assert_eq!(s.repeat(key, at(5)), Some((at(0), 2)));
        // The window runs from the last one seen.
        assert_eq!(s.repeat(key, at(10)), Some((at(0), 3)));
        assert_eq!(s.repeat(key, at(17)), None);
    }

    #[test]
    fn another_note_or_object_is_another_event() {
        let key = event_key(&event("retention is 1 day"), &object("a"));
        assert_ne!(key, event_key(&event("retention is 2 days"), &object("a")));
        assert_ne!(key, event_key(&event("retention is 1 day"), &object("b")));
        assert_eq!(key, event_key(&event("retention is 1 day"), &object("a")));
    }

    #[test]
    fn a_burst_is_forgotten_and_its_room_given_back() {
        let mut s = Series::default();
        for i in 0..10_000 {
            s.created(i, at(0));
        }
        let burst = s.events.capacity();
        s.created(10_001, at(5));
        // Seven minutes on, only the late one is within the window.
        s.forget_old(at(7));
        assert_eq!(s.events.len(), 1);
        assert!(
            s.events.capacity() < burst / 100,
            "{} of {burst}",
            s.events.capacity()
        );
    }
}
