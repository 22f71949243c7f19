//! The Leases behind `--shards N`. Every replica holds a member Lease
//! (`backup-warden-member-<identity>`) that says it is alive, and takes shard Leases
//! (`backup-warden-shard-<i>`) up to its fair share, ⌈shards / live members⌉, starting from
//! a shard its identity picks, so that replicas starting together spread out. A replica
//! above its share (another one joined) hands one shard over per round, once no reconcile
//! of it is running; one that cannot renew a shard within the renew deadline stops acting
//! on it; the shards of a replica that died are taken once their leases expire.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::{Api, Client, api::ListParams};
use tokio::{sync::watch, time::Instant};

use super::{
    leader::{Attempt, LeaseSettings, expired, release, try_acquire},
    shards::{Ownership, shard_of},
};

/// What to do this round.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Take(Vec<u32>),
    HandOver(u32),
    Stay,
}

/// Pure: from the shards held, the shards free (no live holder) and the live members.
fn plan(count: u32, identity: &str, members: usize, held: &BTreeSet<u32>, free: &BTreeSet<u32>) -> Step {
    let share = count.div_ceil(u32::try_from(members.max(1)).unwrap_or(u32::MAX)) as usize;
    if held.len() > share {
        return held.last().map_or(Step::Stay, |s| Step::HandOver(*s));
    }
    let start = shard_of("", identity, count);
    let take: Vec<u32> = (start..count)
        .chain(0..start)
        .filter(|s| free.contains(s) && !held.contains(s))
        .take(share - held.len())
        .collect();
    if take.is_empty() {
        Step::Stay
    } else {
        Step::Take(take)
    }
}

/// A Lease name part from an identity: lowercase letters, digits and '-', as names allow.
fn name_part(identity: &str) -> String {
    let cleaned: String = identity
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(200)
        .collect();
    cleaned.trim_matches('-').to_string()
}

/// The shard leases this replica holds; `release` hands them over at shutdown.
pub struct ShardLeases {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ShardLeases {
    /// Starts holding shards of `count` for `ownership` with the leases of `settings`.
    pub fn start(client: Client, settings: LeaseSettings, ownership: Arc<Ownership>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(hold(
            Api::namespaced(client, &settings.namespace),
            settings,
            ownership,
            stopped,
        ));
        Self { stop, task }
    }

    /// Stops acting on every shard and gives the leases up (after the controllers stopped).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn lease(settings: &LeaseSettings, name: String) -> LeaseSettings {
    LeaseSettings {
        name,
        ..settings.clone()
    }
}

async fn hold(
    api: Api<Lease>,
    settings: LeaseSettings,
    ownership: Arc<Ownership>,
    mut stopped: watch::Receiver<bool>,
) {
    let count = ownership.count();
    let member_prefix = format!("{}-member-", settings.name);
    let member = lease(
        &settings,
        format!("{member_prefix}{}", name_part(&settings.identity)),
    );
    let shard = |s: u32| lease(&settings, format!("{}-shard-{s}", settings.name));
    let mut held: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut leaving: Option<u32> = None;
    loop {
        if let Err(error) = try_acquire(&api, &member).await {
            tracing::warn!(%error, "could not renew this replica's member lease");
        }
        // Renew what is held; stop acting on what could not be renewed in time.
        let mut lost = Vec::new();
        for (s, renewed) in held.iter_mut() {
            match try_acquire(&api, &shard(*s)).await {
                Ok(Attempt::Leading) => *renewed = Instant::now(),
                Ok(Attempt::Following { holder }) => {
                    tracing::error!(shard = s, %holder, "the shard lease was taken over");
                    lost.push(*s);
                }
                Err(error) => tracing::warn!(shard = s, %error, "could not renew the shard lease"),
            }
            if renewed.elapsed() > settings.renew_deadline {
                tracing::error!(
                    shard = s,
                    "no longer acting on the shard: its lease was not renewed in time"
                );
                lost.push(*s);
            }
        }
        for s in lost {
            held.remove(&s);
        }
        if leaving.is_some_and(|s| !held.contains_key(&s)) {
            leaving = None;
        }
        // Hand over a shard once no reconcile of it runs.
        if let Some(s) = leaving
            && ownership.idle(s)
        {
            release(&api, &shard(s)).await;
            held.remove(&s);
            leaving = None;
            tracing::info!(shard = s, "handed the shard over");
        }
        match api.list(&ListParams::default()).await {
            Ok(leases) if leaving.is_none() => {
                let now = Timestamp::now();
                let live = |l: &Lease| {
                    l.spec.as_ref().is_some_and(|s| {
                        s.holder_identity.as_deref().is_some_and(|h| !h.is_empty()) && !expired(s, now)
                    })
                };
                let members = leases
                    .items
                    .iter()
                    .filter(|l| {
                        l.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(&member_prefix))
                            && live(l)
                    })
                    .count();
                let taken: BTreeSet<u32> = (0..count)
                    .filter(|s| {
                        let name = shard(*s).name;
                        leases
                            .items
                            .iter()
                            .any(|l| l.metadata.name.as_deref() == Some(&name) && live(l))
                    })
                    .collect();
                let free = (0..count).filter(|s| !taken.contains(s)).collect();
                let mine = held.keys().copied().collect();
                match plan(count, &settings.identity, members, &mine, &free) {
                    Step::HandOver(s) => {
                        tracing::info!(shard = s, members, "handing a shard over to share them out");
                        leaving = Some(s);
                    }
                    Step::Take(shards) => {
                        for s in shards {
                            if let Ok(Attempt::Leading) = try_acquire(&api, &shard(s)).await {
                                tracing::info!(shard = s, "took the shard");
                                held.insert(s, Instant::now());
                            }
                        }
                    }
                    Step::Stay => {}
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not list the shard leases"),
        }
        ownership.set(held.keys().copied().filter(|s| Some(*s) != leaving).collect());
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_period) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    ownership.set(BTreeSet::new());
    for s in held.keys() {
        release(&api, &shard(*s)).await;
    }
    release(&api, &member).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(shards: &[u32]) -> BTreeSet<u32> {
        shards.iter().copied().collect()
    }

    #[test]
    fn a_lone_replica_takes_every_free_shard() {
        let Step::Take(taken) = plan(4, "a", 1, &set(&[]), &set(&[0, 1, 2, 3])) else {
            panic!("takes")
        };
        assert_eq!(set(&taken), set(&[0, 1, 2, 3]));
    }

    #[test]
    fn a_replica_above_its_share_hands_one_over_and_one_below_takes_up_to_it() {
        // Two members, four shards: two each.
        assert_eq!(plan(4, "a", 2, &set(&[0, 1, 2, 3]), &set(&[])), Step::HandOver(3));
        assert_eq!(plan(4, "a", 2, &set(&[0, 1]), &set(&[])), Step::Stay);
        let Step::Take(taken) = plan(4, "b", 2, &set(&[2]), &set(&[3])) else {
            panic!("takes")
        };
        assert_eq!(taken, [3]);
        // Three members, four shards: at most two each, and only free ones.
        assert_eq!(plan(4, "c", 3, &set(&[]), &set(&[])), Step::Stay);
    }

    #[test]
    fn replicas_start_from_different_shards() {
        let first = |id: &str| match plan(16, id, 4, &set(&[]), &(0..16).collect()) {
            Step::Take(t) => t[0],
            other => panic!("{other:?}"),
        };
        let starts: BTreeSet<u32> = ["pod-a", "pod-b", "pod-c", "pod-d"]
            .iter()
            .map(|id| first(id))
            .collect();
        assert!(starts.len() > 1, "{starts:?}");
    }

    #[test]
    fn identities_become_lease_names() {
        assert_eq!(
            name_part("backup-warden-7f9c_host:123"),
            "backup-warden-7f9c-host-123"
        );
    }
}
