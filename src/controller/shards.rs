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
        self.lock().owned = owned.clone();
        self.changes.send_if_modified(|current| {
            let changed = *current != owned;
            *current = owned;
            changed
        });
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
