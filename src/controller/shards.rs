//! Sharding: with `--shards N`, objects are split into N shards by a stable hash of their
//! namespace and name, and each replica acts only on the shards whose Lease it holds
//! (`shard_leases`). A replica keeps in its store, and reconciles, only the objects of its
//! shards, so memory and work are divided among replicas. A reconcile enters its shard
//! first: a shard is handed over only once no reconcile of it is running.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use futures::{Stream, StreamExt, TryStreamExt};
use kube::{
    Resource, ResourceExt,
    runtime::watcher::{self, Event, watcher},
};
use tokio::sync::watch;

/// Which shard an object is in: FNV-1a of `namespace/name`, stable across builds and
/// replicas (std's hasher is not).
pub fn shard_of(namespace: &str, name: &str, count: u32) -> u32 {
    let hash = format!("{namespace}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
}

#[derive(Debug, Default)]
struct State {
    owned: BTreeSet<u32>,
    /// Reconciles running, per shard.
    running: HashMap<u32, usize>,
}

/// The shards this replica acts on, shared by the watchers, the reconciles and the leases.
#[derive(Debug)]
pub struct Ownership {
    count: u32,
    state: Mutex<State>,
    changes: watch::Sender<BTreeSet<u32>>,
    /// How many times the owned shards changed.
    epoch: std::sync::atomic::AtomicU64,
}

impl Ownership {
    /// Unsharded: one shard, always owned.
    pub fn all() -> Arc<Self> {
        let owned = Self::new(1);
        owned.set(BTreeSet::from([0]));
        owned
    }

    /// `count` shards, none owned until the leases say so.
    pub fn new(count: u32) -> Arc<Self> {
        Arc::new(Self {
            count: count.max(1),
            state: Mutex::new(State::default()),
            changes: watch::channel(BTreeSet::new()).0,
            epoch: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn owned(&self) -> BTreeSet<u32> {
        self.lock().owned.clone()
    }

    /// The owned shards now and whenever they change.
    pub fn watch(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.changes.subscribe()
    }

    pub(crate) fn set(&self, owned: BTreeSet<u32>) {
        let mut state = self.lock();
        if state.owned == owned {
            return;
        }
        state.owned = owned.clone();
        // Before the watch restarts, so that every object it lists again counts as new.
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(state);
        self.changes.send_replace(owned);
    }

    /// How many times the owned shards changed: objects listed again after a change are
    /// looked at whatever their generation.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether no reconcile of `shard` is running.
    pub(crate) fn idle(&self, shard: u32) -> bool {
        self.lock().running.get(&shard).copied().unwrap_or(0) == 0
    }

    /// Whether the object `namespace/name` is in a shard this replica owns now.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        let shard = shard_of(namespace, name, self.count);
        self.lock().owned.contains(&shard)
    }

    /// Enters the object's shard for one reconcile, if this replica owns it now.
    pub fn enter(self: &Arc<Self>, object: &impl Resource) -> Option<Entered> {
        let shard = shard_of(
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
            self.count,
        );
        let mut state = self.lock();
        if !state.owned.contains(&shard) {
            return None;
        }
        *state.running.entry(shard).or_default() += 1;
        Some(Entered {
            ownership: self.clone(),
            shard,
        })
    }
}

/// Calls `apply` with this replica's share of the shards (owned / count, at least one
/// shard's) now and whenever it changes, so that request budgets split as the shards do.
pub fn on_share<F, Fut>(ownership: &Ownership, apply: F)
where
    F: Fn(f64) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if ownership.count() == 1 {
        return;
    }
    let (mut changes, count) = (ownership.watch(), f64::from(ownership.count()));
    tokio::spawn(async move {
        loop {
            let owned = changes.borrow_and_update().len().max(1);
            apply(owned as f64 / count).await;
            if changes.changed().await.is_err() {
                return;
            }
        }
    });
}

/// A reconcile running in a shard; leaving it (drop) lets the shard be handed over.
pub struct Entered {
    ownership: Arc<Ownership>,
    shard: u32,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(n) = self.ownership.lock().running.get_mut(&self.shard) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The watch of `api`, keeping only the objects of the owned shards, and starting again
/// (a fresh list) whenever the owned shards change: objects of a shard gained come in,
/// those of a shard lost leave the store when the new list completes.
pub fn watch_owned<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    ownership: Arc<Ownership>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (changes, count) = (ownership.watch(), ownership.count());
    let start = move |owned: BTreeSet<u32>| {
        let mine = move |o: &K| {
            owned.contains(&shard_of(
                &o.namespace().unwrap_or_default(),
                &o.name_any(),
                count,
            ))
        };
        watcher(api.clone(), config.clone())
            .try_filter(move |event| {
                let keep = match event {
                    Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) => mine(o),
                    Event::Init | Event::InitDone => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    };
    futures::stream::unfold((changes, None), move |(mut changes, current)| {
        let start = start.clone();
        async move {
            let mut current = match current {
                Some(stream) => stream,
                None => start(changes.borrow_and_update().clone()),
            };
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        changed.ok()?;
                        current = start(changes.borrow_and_update().clone());
                    }
                    item = current.next() => return item.map(|item| (item, (changes, Some(current)))),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("team-a", "orders", 8), shard_of("team-a", "orders", 8));
        let used: BTreeSet<u32> = (0..200)
            .map(|i| shard_of("team-a", &format!("db-{i}"), 8))
            .collect();
        assert_eq!(used.len(), 8, "{used:?}");
        assert_eq!(shard_of("team-a", "orders", 1), 0);
    }

    #[test]
    fn a_change_of_the_owned_shards_moves_the_epoch_and_only_a_change() {
        let owned = Ownership::new(4);
        let start = owned.epoch();
        owned.set(BTreeSet::from([1, 2]));
        owned.set(BTreeSet::from([1, 2]));
        assert_eq!(owned.epoch(), start + 1);
        owned.set(BTreeSet::from([1]));
        assert_eq!(owned.epoch(), start + 2);
        assert!(
            owned.owns(
                "team-a",
                &(0..)
                    .map(|i| format!("db-{i}"))
                    .find(|n| shard_of("team-a", n, 4) == 1)
                    .expect("name")
            )
        );
    }

    #[test]
    fn a_shard_is_idle_once_its_reconciles_left_it() {
        let owned = Ownership::all();
        let db: crate::api::BackedUpDatabase = serde_json::from_value(serde_json::json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {"instance": {"identifier": "orders", "region": "us-east-1"}},
        }))
        .expect("object");
        let entered = owned.enter(&db).expect("owned");
        assert!(!owned.idle(0));
        drop(entered);
        assert!(owned.idle(0));
        owned.set(BTreeSet::new());
        assert!(
            owned.enter(&db).is_none(),
            "a shard no longer owned is not entered"
        );
    }
}
