//! The fake's model of GitHub: repositories with real commit history (so branches, blob
//! shas and "no commits between" behave as on GitHub), registered workflows and their runs,
//! pull requests, credentials, rate-limit budgets and the request log.

use std::collections::{BTreeMap, HashMap};

use super::sha1;

/// Everything the fake knows, behind one lock: each request is handled atomically.
#[derive(Debug, Default)]
pub(super) struct State {
    /// `http://127.0.0.1:PORT` (`…/api/v3` for Enterprise Server), used for the `url`
    /// fields of payloads.
    pub base_url: String,
    /// Serve as GitHub Enterprise Server does: REST under `/api/v3`, GraphQL at `/api/graphql`.
    pub enterprise: bool,
    /// The long-lived token handed to tests (a personal access token, `ghp_…`).
    pub personal_token: String,
    /// Installation tokens issued through the app flow, with their expiry (epoch seconds).
    pub installation_tokens: HashMap<String, i64>,
    pub issued_installation_tokens: usize,
    /// Repositories by lowercase `owner/name`: GitHub names are case-insensitive.
    pub repos: BTreeMap<String, Repo>,
    pub ids: Ids,
    pub budgets: Budgets,
    /// Rate limits injected by `rate_limit_next`.
    pub injected: Option<InjectedLimit>,
    /// The status of an injected secondary rate limit (403 by default, or 429).
    pub secondary_status: u16,
    pub deny_workflow_writes: bool,
    pub requests: Vec<super::RecordedRequest>,
    pub graphql_batches: Vec<usize>,
}

/// A source of the numeric ids GitHub hands out (repositories, workflows, runs, pulls) and
/// of a sequence that keeps commit shas unique.
#[derive(Debug)]
pub(super) struct Ids {
    next: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Self { next: 1_000 }
    }
}

impl Ids {
    pub fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct InjectedLimit {
    pub remaining: u32,
    pub secondary: bool,
}

/// The rate-limit resources a request may be charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource {
    Core,
    Graphql,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Graphql => "graphql",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub limit: u64,
    pub used: u64,
}

impl Budget {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// Hourly budgets, as for an authenticated user: 5,000 REST requests and 5,000 GraphQL
/// points, reset together every hour from the first request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budgets {
    pub core: Budget,
    pub graphql: Budget,
    /// Epoch seconds when the current window ends.
    pub reset: i64,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            core: Budget {
                limit: 5_000,
                used: 0,
            },
            graphql: Budget {
                limit: 5_000,
                used: 0,
            },
            reset: now_epoch() + 3_600,
        }
    }
}

impl Budgets {
    /// Starts a new window when the current one has ended.
    pub fn refresh(&mut self) {
        let now = now_epoch();
        if now >= self.reset {
            self.core.used = 0;
            self.graphql.used = 0;
            self.reset = now + 3_600;
        }
    }

    pub fn get(&self, resource: Resource) -> Budget {
        match resource {
            Resource::Core => self.core,
            Resource::Graphql => self.graphql,
        }
    }

    pub fn charge(&mut self, resource: Resource, points: u64) {
        let budget = match resource {
            Resource::Core => &mut self.core,
            Resource::Graphql => &mut self.graphql,
        };
        budget.used = (budget.used + points).min(budget.limit);
    }
}

#[derive(Debug)]
pub(super) struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    pub archived: bool,
    pub fork: bool,
    /// Lower case and without duplicates, as GitHub keeps topics.
    pub topics: Vec<String>,
    pub private: bool,
    pub created_at: String,
    pub pushed_at: String,
    pub commits: HashMap<String, Commit>,
    /// Branch name → head commit sha.
    pub branches: BTreeMap<String, String>,
    /// Registered workflows by path (files under `.github/workflows` on the default branch).
    pub workflows: BTreeMap<String, Workflow>,
    pub runs: Vec<Run>,
    pub pulls: Vec<PullRequest>,
}

#[derive(Debug, Clone)]
pub(super) struct Commit {
    pub sha: String,
    pub parents: Vec<String>,
    /// The full snapshot: path → bytes.
    pub tree: BTreeMap<String, Vec<u8>>,
    pub message: String,
    pub date: String,
}

impl Commit {
    /// A stable id for the commit's tree (not git's tree hash, but changes exactly when
    /// the snapshot does).
    pub fn tree_sha(&self) -> String {
        let mut listing = Vec::new();
        for (path, content) in &self.tree {
            listing.extend_from_slice(path.as_bytes());
            listing.push(0);
            listing.extend_from_slice(sha1::git_blob(content).as_bytes());
            listing.push(b'\n');
        }
        sha1::hex(&listing)
    }

    /// Whether `path` names a directory in this snapshot (the root is `""`).
    pub fn is_dir(&self, path: &str) -> bool {
        let prefix = dir_prefix(path);
        self.tree.keys().any(|p| p.starts_with(&prefix))
    }

    /// The direct children of directory `path`: (name, is_dir), sorted, without duplicates.
    pub fn children(&self, path: &str) -> Vec<(String, bool)> {
        let prefix = dir_prefix(path);
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for p in self.tree.keys() {
            if let Some(rest) = p.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => out.insert(dir.to_string(), true),
                    None => out.insert(rest.to_string(), false),
                };
            }
        }
        out.into_iter().collect()
    }
}

fn dir_prefix(path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

#[derive(Debug, Clone)]
pub(super) struct Workflow {
    pub id: u64,
    pub path: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
    pub runs_started: u64,
    /// The git blob of the file as last registered: `updated_at` moves when it changes.
    pub blob: String,
}

#[derive(Debug, Clone)]
pub(super) struct Run {
    pub id: u64,
    pub workflow_path: String,
    pub run_number: u64,
    pub head_branch: String,
    pub head_sha: String,
    pub event: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub run_started_at: String,
}

#[derive(Debug, Clone)]
pub(super) struct PullRequest {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub head_ref: String,
    pub base_ref: String,
    pub state: String,
    pub draft: bool,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    /// The head sha when the pull request was closed (the branch may move or vanish later).
    pub closed_head_sha: Option<String>,
}

impl Repo {
    pub fn new(id: u64, owner: &str, name: &str, default_branch: &str, ids: &mut Ids) -> Repo {
        let now = now_rfc3339();
        let mut repo = Repo {
            id,
            owner: owner.to_string(),
            name: name.to_string(),
            default_branch: default_branch.to_string(),
            archived: false,
            fork: false,
            topics: Vec::new(),
            private: true,
            created_at: now.clone(),
            pushed_at: now,
            commits: HashMap::new(),
            branches: BTreeMap::new(),
            workflows: BTreeMap::new(),
            runs: Vec::new(),
            pulls: Vec::new(),
        };
        let mut tree = BTreeMap::new();
        tree.insert("README.md".to_string(), format!("# {name}\n").into_bytes());
        let sha = repo.add_commit(Vec::new(), tree, "Initial commit", ids);
        repo.branches.insert(default_branch.to_string(), sha);
        repo
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub fn html_url(&self) -> String {
        format!("https://github.com/{}", self.full_name())
    }

    /// The commit a branch points at.
    pub fn branch_head(&self, branch: &str) -> Option<&Commit> {
        self.commits.get(self.branches.get(branch)?)
    }

    pub fn default_head(&self) -> Option<&Commit> {
        self.branch_head(&self.default_branch)
    }

    /// A revision as GitHub accepts it in `ref` parameters and GraphQL expressions:
    /// `HEAD`, a branch name, `refs/heads/<branch>`, or a commit sha (full or abbreviated).
    pub fn resolve(&self, rev: &str) -> Option<&Commit> {
        if rev.is_empty() || rev == "HEAD" {
            return self.default_head();
        }
        let branch = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if let Some(commit) = self.branch_head(branch) {
            return Some(commit);
        }
        if rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit()) {
            let rev = rev.to_ascii_lowercase();
            let mut found = self.commits.values().filter(|c| c.sha.starts_with(&rev));
            if let (Some(one), None) = (found.next(), found.next()) {
                return Some(one);
            }
        }
        None
    }

    /// Whether commit `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        let mut stack = vec![descendant.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(sha) = stack.pop() {
            if sha == ancestor {
                return true;
            }
            if seen.insert(sha.clone())
                && let Some(commit) = self.commits.get(&sha)
            {
                stack.extend(commit.parents.iter().cloned());
            }
        }
        false
    }

    /// Stores a new commit and returns its sha (branches are not moved).
    pub fn add_commit(
        &mut self,
        parents: Vec<String>,
        tree: BTreeMap<String, Vec<u8>>,
        message: &str,
        ids: &mut Ids,
    ) -> String {
        let date = now_rfc3339();
        let mut commit = Commit {
            sha: String::new(),
            parents,
            tree,
            message: message.to_string(),
            date,
        };
        let header = format!(
            "tree {}\nparents {}\nrepo {}\nseq {}\ndate {}\n\n{}",
            commit.tree_sha(),
            commit.parents.join(" "),
            self.id,
            ids.next(),
            commit.date,
            commit.message
        );
        commit.sha = sha1::hex(header.as_bytes());
        let sha = commit.sha.clone();
        self.commits.insert(sha.clone(), commit);
        sha
    }

    /// Commits `changes` (path → new bytes) on top of `branch` and moves the branch.
    /// Returns the new commit's sha, or `None` when the branch does not exist.
    pub fn commit_files(
        &mut self,
        branch: &str,
        changes: Vec<(String, Vec<u8>)>,
        message: &str,
        ids: &mut Ids,
    ) -> Option<String> {
        let parent = self.branch_head(branch)?;
        let parent_sha = parent.sha.clone();
        let mut tree = parent.tree.clone();
        for (path, content) in changes {
            tree.insert(path, content);
        }
        let sha = self.add_commit(vec![parent_sha], tree, message, ids);
        self.move_branch(branch, sha.clone(), ids);
        Some(sha)
    }

    /// Commits the removal of `path` on `branch`, as a push deleting the file would.
    pub fn remove_file(&mut self, branch: &str, path: &str, ids: &mut Ids) -> Option<String> {
        let parent = self.branch_head(branch)?;
        let parent_sha = parent.sha.clone();
        let mut tree = parent.tree.clone();
        tree.remove(path)?;
        let sha = self.add_commit(vec![parent_sha], tree, &format!("Delete {path}"), ids);
        self.move_branch(branch, sha.clone(), ids);
        Some(sha)
    }

    /// Points `branch` at `sha` (creating it if needed) and registers any new workflow when
    /// it is the default branch.
    pub fn move_branch(&mut self, branch: &str, sha: String, ids: &mut Ids) {
        self.branches.insert(branch.to_string(), sha);
        self.pushed_at = now_rfc3339();
        if branch == self.default_branch {
            self.sync_workflows(ids);
        }
    }

    /// Registers the workflow files present on the default branch; a workflow keeps its id
    /// and state for as long as the fake lives.
    fn sync_workflows(&mut self, ids: &mut Ids) {
        let Some(head) = self.default_head() else { return };
        let files: Vec<(String, String)> = head
            .tree
            .iter()
            .filter(|(p, _)| is_workflow_path(p))
            .map(|(p, content)| (p.clone(), super::sha1::git_blob(content)))
            .collect();
        let now = now_rfc3339();
        for (path, blob) in files {
            let workflow = self.workflows.entry(path.clone()).or_insert_with(|| Workflow {
                id: ids.next(),
                path: path.clone(),
                state: "active".to_string(),
                created_at: now.clone(),
                updated_at: now.clone(),
                runs_started: 0,
                blob: String::new(),
            });
            // A push that leaves the file as it was leaves the workflow as it was.
            if workflow.blob != blob {
                workflow.updated_at.clone_from(&now);
                workflow.blob = blob;
            }
        }
    }

    /// A registered workflow whose file is on the default branch, by numeric id or by file
    /// name (`backup.yml`), as the Actions endpoints accept it.
    pub fn workflow(&self, id_or_file: &str) -> Option<&Workflow> {
        let head = self.default_head()?;
        let found = match id_or_file.parse::<u64>() {
            Ok(id) => self.workflows.values().find(|w| w.id == id),
            Err(_) => self
                .workflows
                .values()
                .find(|w| w.path == id_or_file || w.path.rsplit('/').next() == Some(id_or_file)),
        }?;
        head.tree.contains_key(&found.path).then_some(found)
    }

    pub fn workflow_mut(&mut self, id_or_file: &str) -> Option<&mut Workflow> {
        let path = self.workflow(id_or_file)?.path.clone();
        self.workflows.get_mut(&path)
    }

    /// The workflow's display name: the YAML's top-level `name:`, else its path.
    pub fn workflow_name(&self, path: &str) -> String {
        self.default_head()
            .and_then(|head| head.tree.get(path))
            .and_then(|content| yaml_top_level_name(&String::from_utf8_lossy(content)))
            .unwrap_or_else(|| path.to_string())
    }

    /// The sha a pull request's head is at: its branch, or where it was when closed.
    pub fn pull_head_sha(&self, pull: &PullRequest) -> String {
        pull.closed_head_sha
            .clone()
            .or_else(|| self.branches.get(&pull.head_ref).cloned())
            .unwrap_or_default()
    }
}

/// `.github/workflows/<name>.yml|yaml`, directly in that directory.
pub(super) fn is_workflow_path(path: &str) -> bool {
    path.strip_prefix(".github/workflows/")
        .is_some_and(|file| !file.contains('/') && (file.ends_with(".yml") || file.ends_with(".yaml")))
}

/// The value of a top-level `name:` key, read line by line (enough for workflow files).
fn yaml_top_level_name(yaml: &str) -> Option<String> {
    let line = yaml.lines().find(|l| l.starts_with("name:"))?;
    let mut value = line["name:".len()..].trim();
    if let Some((before, _)) = value.split_once(" #") {
        value = before.trim();
    }
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    (!value.is_empty()).then(|| value.to_string())
}

pub(super) fn now_epoch() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// Now as GitHub writes times: `2024-05-01T12:00:00Z`.
pub(super) fn now_rfc3339() -> String {
    epoch_rfc3339(now_epoch())
}

pub(super) fn epoch_rfc3339(epoch: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
