//! GitHub: repositories swept through GraphQL (100 per query), workflow state and runs
//! through REST with ETags, and the workflow file delivered by pull request or commit.
//! The client honours GitHub's rate limits and paces content-creating requests.

pub mod auth;
pub mod client;
pub mod inventory;
pub mod pacing;
pub mod webhook;

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;

use crate::policy::repository::{PullRequestFacts, RepoFacts, RunFacts, WorkflowFacts};

pub use auth::GitHubAuth;
pub use client::GitHubClient;

/// Repositories per GraphQL query.
pub const BATCH_SIZE: usize = 100;

/// A file to write and how to describe the change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub content: String,
    /// The branch the change is for (the default branch).
    pub base_branch: String,
    pub commit_message: String,
    pub title: String,
    pub body: String,
}

/// A repository of an organization, as a coverage scan lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrgRepository {
    /// `owner/name` as GitHub spells it (`nameWithOwner`).
    pub full_name: String,
    pub archived: bool,
    pub fork: bool,
    /// The repository's topics (lower case, as GitHub keeps them).
    pub topics: Vec<String>,
}

#[async_trait]
pub trait GitHub: Send + Sync {
    /// Default branch, archived flag and the file at `path` of each (repository, path);
    /// `None` for a repository that does not exist or cannot be seen.
    async fn repositories(
        &self,
        repos: &[(String, String)],
    ) -> Result<HashMap<String, Option<RepoFacts>>, GitHubError>;
    /// The registered workflow of the file at `path`; `None` when Actions does not know it.
    async fn workflow(&self, repo: &str, path: &str) -> Result<Option<WorkflowFacts>, GitHubError>;
    /// The newest completed run of the workflow at `path`.
    async fn newest_completed_run(&self, repo: &str, path: &str) -> Result<Option<RunFacts>, GitHubError>;
    /// The commit the newest successful run of the workflow backed up (its `head_sha`):
    /// what a restore drill expects the newest backup to hold.
    async fn newest_successful_run_sha(
        &self,
        _repo: &str,
        _path: &str,
    ) -> Result<Option<String>, GitHubError> {
        Ok(None)
    }
    /// The open pull request from backup-warden's branch.
    async fn open_pull_request(&self, repo: &str) -> Result<Option<PullRequestFacts>, GitHubError>;
    async fn enable_workflow(&self, repo: &str, workflow_id: u64) -> Result<(), GitHubError>;
    /// Commits the file to backup-warden's branch and opens (or finds) the pull request.
    async fn propose_file(&self, repo: &str, change: &FileChange) -> Result<PullRequestFacts, GitHubError>;
    /// Commits the file to the base branch, only if it still holds `replacing`.
    async fn commit_file(
        &self,
        repo: &str,
        change: &FileChange,
        replacing: Option<&str>,
    ) -> Result<(), GitHubError>;
    /// Every repository of the organization `org` (GraphQL, 100 a page), or `None` when no
    /// organization of that login is visible to the credentials.
    async fn organization_repositories(&self, org: &str) -> Result<Option<Vec<OrgRepository>>, GitHubError>;
}

/// What went wrong with a GitHub request, in the terms that decide what happens next.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GitHub {operation}: {status}: {message}")]
pub struct GitHubError {
    pub operation: &'static str,
    pub kind: GitHubErrorKind,
    pub status: u16,
    pub message: String,
    /// When to try again (rate limits).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitHubErrorKind {
    /// Rate limited, a server error or the network: try again later.
    Transient,
    /// The token lacks a permission (the message says which) or is invalid.
    AccessDenied,
    NotFound,
    /// Someone changed the file meanwhile: read again before writing.
    Conflict,
    /// Refused for another reason (validation); reported as is.
    Refused,
}
