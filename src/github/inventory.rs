//! The repository sweep: when a repository's facts are too old, every repository whose
//! facts are too old is read in one pass of GraphQL queries (100 per query), so a sweep of
//! N repositories costs N/100 requests however the reconciles interleave. What only REST
//! tells (the workflow's registration and state, its newest run) is read again only when
//! the sweep or the clock says it may have changed: the default branch moved, the newest
//! run is a day old (the next daily one is due), or a day has passed.
//!
//! Sweeps are paced to GitHub's GraphQL budget: at 50,000 repositories a sweep is 500
//! queries, and one every 5 minutes would be 6,000 points an hour against a limit of 5,000.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

use super::{GitHub, GitHubError};
use crate::policy::repository::{RepoFacts, RunFacts, WorkflowFacts};

/// The backup workflow runs daily: a newer run than one this old may be there.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// GitHub's primary GraphQL limit for a user token or an app installation: 5,000 points an
/// hour ("Rate limits for the GraphQL API"); a sweep query of 100 repositories costs 1.
const GRAPHQL_POINTS_PER_HOUR: f64 = 5_000.0;

/// The part of that budget sweeps may spend: the rest is for the token's other users.
const SWEEP_PART: f64 = 0.5;

/// The shortest time between sweeps of `repositories` that keeps them within their part of
/// the hourly GraphQL budget; `share` is this replica's part of the shards (1 unsharded),
/// as replicas share one installation's budget.
pub fn sweep_interval(repositories: usize, share: f64) -> Duration {
    let queries = repositories.div_ceil(super::BATCH_SIZE) as f64;
    let points_per_hour = GRAPHQL_POINTS_PER_HOUR * SWEEP_PART * share.clamp(f64::MIN_POSITIVE, 1.0);
    Duration::from_secs_f64(queries * 3600.0 / points_per_hour)
}

/// What REST says of a repository's backup workflow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub workflow: Option<WorkflowFacts>,
    pub last_run: Option<RunFacts>,
}

/// `Actions` as read when the default branch was at `head`.
struct ActionsRead {
    head: Option<String>,
    actions: Actions,
    at: Instant,
}

impl ActionsRead {
    /// Whether to read again, for a look that accepts facts `fresh` old (`resync` for a
    /// quiet sweep, less while a change settles or when someone asked).
    fn stale(&self, head: &Option<String>, fresh: Duration, resync: Duration, now: Timestamp) -> bool {
        let age = self.at.elapsed();
        if fresh < resync {
            return age > fresh;
        }
        let run_due = self
            .actions
            .last_run
            .as_ref()
            .is_none_or(|run| now.duration_since(run.started_at).unsigned_abs() >= DAY);
        // Half a resync: a sweep that comes a little early does not skip a due read.
        &self.head != head || age > DAY || (run_due && age > resync / 2)
    }
}

pub struct RepoInventory {
    github: Arc<dyn GitHub>,
    facts: Mutex<HashMap<String, (Instant, Option<RepoFacts>)>>,
    actions: Mutex<HashMap<String, ActionsRead>>,
    /// One sweep at a time; the others wait and then find fresh facts.
    sweep: tokio::sync::Mutex<()>,
    /// How many repositories the last sweep was asked to look at, for its pacing.
    swept: AtomicUsize,
    /// This replica's part of the shards (1 unsharded).
    share: Mutex<f64>,
}

impl RepoInventory {
    pub fn new(github: Arc<dyn GitHub>) -> Self {
        Self {
            github,
            facts: Mutex::new(HashMap::new()),
            actions: Mutex::new(HashMap::new()),
            sweep: tokio::sync::Mutex::new(()),
            swept: AtomicUsize::new(0),
            share: Mutex::new(1.0),
        }
    }

    /// Paces sweeps to `share` of the GraphQL budget (the replica's part of the shards).
    pub fn set_share(&self, share: f64) {
        *self.share.lock().unwrap_or_else(|p| p.into_inner()) = share;
    }

    /// How old facts may get before a sweep reads them again: the resync interval, or longer
    /// when sweeps that often would spend more than their part of the GraphQL budget.
    pub fn sweep_age(&self, resync: Duration) -> Duration {
        let share = *self.share.lock().unwrap_or_else(|p| p.into_inner());
        resync.max(sweep_interval(self.swept.load(Ordering::Relaxed), share))
    }

    fn fresh(&self, repo: &str, max_age: Duration) -> Option<Option<RepoFacts>> {
        let facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        facts
            .get(repo)
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, f)| f.clone())
    }

    /// The facts of `repo`. When they are older than `max_age`, reads them again, together
    /// with every repository in `all` (repository, workflow path) whose facts are older than
    /// the sweep age (the resync interval, or longer as `sweep_age` paces it): a fresher look
    /// at one repository after a change does not re-read the others.
    pub async fn get(
        &self,
        repo: &str,
        path: &str,
        max_age: Duration,
        resync: Duration,
        all: impl FnOnce() -> Vec<(String, String)>,
    ) -> Result<Option<RepoFacts>, GitHubError> {
        let sweep_age = self.sweep_age(resync);
        // A quiet look waits for the paced sweep; a fresher one (a change settling) does not.
        let max_age = if max_age >= resync { sweep_age } else { max_age };
        if let Some(facts) = self.fresh(repo, max_age) {
            return Ok(facts);
        }
        let _sweep = self.sweep.lock().await;
        if let Some(facts) = self.fresh(repo, max_age) {
            return Ok(facts);
        }
        let all = all();
        self.swept.store(all.len(), Ordering::Relaxed);
        let mut stale: Vec<(String, String)> = all
            .into_iter()
            .filter(|(r, _)| {
                let age = if r == repo {
                    max_age
                } else {
                    sweep_age.max(max_age)
                };
                self.fresh(r, age).is_none()
            })
            .collect();
        // The repository asked for is read whatever the list says.
        stale.push((repo.to_string(), path.to_string()));
        stale.sort();
        stale.dedup_by(|a, b| a.0 == b.0);
        let read = self.github.repositories(&stale).await?;
        let now = Instant::now();
        let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        for (name, found) in read {
            facts.insert(name, (now, found));
        }
        Ok(facts.get(repo).and_then(|(_, f)| f.clone()))
    }

    /// The workflow's registration, state and newest run, read through `read` only when
    /// they may have changed since the last read (see `ActionsRead::stale`).
    pub async fn actions<F, Fut>(
        &self,
        repo: &str,
        facts: &RepoFacts,
        fresh: Duration,
        resync: Duration,
        read: F,
    ) -> Result<Actions, GitHubError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Actions, GitHubError>>,
    {
        let now = Timestamp::now();
        if let Some(known) = self.actions.lock().unwrap_or_else(|p| p.into_inner()).get(repo)
            && !known.stale(&facts.head, fresh, resync, now)
        {
            return Ok(known.actions.clone());
        }
        let actions = read().await?;
        self.actions.lock().unwrap_or_else(|p| p.into_inner()).insert(
            repo.to_string(),
            ActionsRead {
                head: facts.head.clone(),
                actions: actions.clone(),
                at: Instant::now(),
            },
        );
        Ok(actions)
    }

    /// Forgets what is known of `repo` (after changing it), so the next look reads it again.
    pub fn forget(&self, repo: &str) {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).remove(repo);
        self.actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(repo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);

    #[test]
    fn sweeps_stay_within_half_the_graphql_budget() {
        // 2,000 repositories: 20 queries, every 29 s at most; the resync interval rules.
        assert_eq!(sweep_interval(2_000, 1.0), Duration::from_secs_f64(28.8));
        // 50,000: 500 queries, 12 sweeps an hour would be 6,000 points; at most 5 an hour.
        assert_eq!(sweep_interval(50_000, 1.0), Duration::from_secs(720));
        // A replica holding a quarter of the shards sweeps a quarter of the repositories
        // within a quarter of the budget.
        assert_eq!(sweep_interval(12_500, 0.25), Duration::from_secs(720));
    }

    fn read(head: &str, run_hours_ago: Option<i64>, age: Duration) -> ActionsRead {
        let now = Timestamp::now();
        ActionsRead {
            head: Some(head.into()),
            actions: Actions {
                workflow: Some(WorkflowFacts {
                    id: 1,
                    state: "active".into(),
                }),
                last_run: run_hours_ago.map(|h| RunFacts {
                    url: "https://github.com/o/r/actions/runs/1".into(),
                    conclusion: "success".into(),
                    started_at: now - k8s_openapi::jiff::SignedDuration::from_hours(h),
                }),
            },
            at: Instant::now() - age,
        }
    }

    #[test]
    fn a_quiet_sweep_reads_rest_only_when_something_says_it_may_have_changed() {
        let now = Timestamp::now();
        let head = Some("aaa".to_string());
        let stale = |r: &ActionsRead, head: &Option<String>| r.stale(head, RESYNC, RESYNC, now);
        // Today's run, same head: not read for the day.
        assert!(!stale(&read("aaa", Some(3), Duration::from_secs(3600)), &head));
        // The default branch moved.
        assert!(stale(&read("aaa", Some(3), Duration::ZERO), &Some("bbb".into())));
        // The next daily run is due: read once per resync until it comes.
        assert!(stale(&read("aaa", Some(25), RESYNC), &head));
        assert!(!stale(&read("aaa", Some(25), Duration::from_secs(10)), &head));
        assert!(stale(&read("aaa", None, RESYNC), &head));
        // A day old whatever else.
        assert!(stale(&read("aaa", Some(3), DAY + Duration::from_secs(1)), &head));
    }

    #[test]
    fn a_settling_change_or_a_request_reads_as_fresh_as_it_asks() {
        let now = Timestamp::now();
        let head = Some("aaa".to_string());
        let known = read("aaa", Some(3), Duration::from_secs(40));
        assert!(known.stale(&head, Duration::from_secs(30), RESYNC, now));
        assert!(!known.stale(&head, Duration::from_secs(60), RESYNC, now));
        assert!(known.stale(&head, Duration::ZERO, RESYNC, now));
    }
}
