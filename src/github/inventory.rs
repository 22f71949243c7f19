//! The repository sweep: when a repository's facts are too old, every repository whose
//! facts are too old is read in one pass of GraphQL queries (100 per query), so a sweep of
//! N repositories costs N/100 requests however the reconciles interleave. What only REST
//! tells (the workflow's registration and state, its newest run) is read again only when
//! the sweep or the clock says it may have changed: the default branch moved, the newest
//! run is a day old (the next daily one is due), or a day has passed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

use super::{GitHub, GitHubError};
use crate::policy::repository::{RepoFacts, RunFacts, WorkflowFacts};

/// The backup workflow runs daily: a newer run than one this old may be there.
const DAY: Duration = Duration::from_secs(24 * 3600);

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
}

impl RepoInventory {
    pub fn new(github: Arc<dyn GitHub>) -> Self {
        Self {
            github,
            facts: Mutex::new(HashMap::new()),
            actions: Mutex::new(HashMap::new()),
            sweep: tokio::sync::Mutex::new(()),
        }
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
    /// `sweep_age` (the resync interval): a fresher look at one repository after a change
    /// does not re-read the others.
    pub async fn get(
        &self,
        repo: &str,
        path: &str,
        max_age: Duration,
        sweep_age: Duration,
        all: impl FnOnce() -> Vec<(String, String)>,
    ) -> Result<Option<RepoFacts>, GitHubError> {
        if let Some(facts) = self.fresh(repo, max_age) {
            return Ok(facts);
        }
        let _sweep = self.sweep.lock().await;
        if let Some(facts) = self.fresh(repo, max_age) {
            return Ok(facts);
        }
        let mut stale: Vec<(String, String)> = all()
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
