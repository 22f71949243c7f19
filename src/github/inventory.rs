//! The repository sweep: when a repository's facts are too old, every repository whose
//! facts are too old is read in one pass of GraphQL queries (100 per query), so a sweep of
//! N repositories costs N/100 requests however the reconciles interleave.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{GitHub, GitHubError};
use crate::policy::repository::RepoFacts;

pub struct RepoInventory {
    github: Arc<dyn GitHub>,
    facts: Mutex<HashMap<String, (Instant, Option<RepoFacts>)>>,
    /// One sweep at a time; the others wait and then find fresh facts.
    sweep: tokio::sync::Mutex<()>,
}

impl RepoInventory {
    pub fn new(github: Arc<dyn GitHub>) -> Self {
        Self {
            github,
            facts: Mutex::new(HashMap::new()),
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

    /// Forgets what is known of `repo` (after changing it), so the next look reads it again.
    pub fn forget(&self, repo: &str) {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).remove(repo);
    }
}
