//! A stateful fake of the parts of GitHub's REST and GraphQL APIs the repository
//! controller uses, served on `127.0.0.1` by an axum server for integration tests.
//!
//! It keeps real commit history per repository (so blob shas, branches, "no commits
//! between" and stale-sha conflicts behave as on GitHub), registers workflows from the
//! default branch, lists runs newest first, and answers with GitHub's payloads, status
//! codes, error messages and headers: `ETag`/`304 Not Modified` on GETs (a 304 is not
//! charged), `x-ratelimit-*` on every response, `Link` on paginated lists.
//!
//! ```no_run
//! # async fn example() {
//! use backup_warden::testing::github_fake::GitHubFake;
//! let github = GitHubFake::start().await;
//! github.add_repo("acme/api", "main");
//! github.put_file("acme/api", "main", ".github/workflows/backup-daily.yml", "name: Backup\n");
//! // point the client at github.base_url() with github.token()
//! # }
//! ```
//!
//! Shortcuts, on purpose: installation-token JWTs are checked for shape and claims
//! (`iss`, `exp`) but their signature is not verified; every authenticated caller may do
//! everything; the rate-limit budgets are shared by all tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod graphql;
mod render;
mod rest;
mod sha1;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    Router,
    body::Bytes,
    extract::State as AxumState,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::{Value, json};

use self::rest::{Reply, Request};
use self::state::{InjectedLimit, PullRequest, Repo, Resource, Run, State, now_epoch, now_rfc3339};

/// A pull request as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePullRequest {
    pub number: u64,
    pub head_ref: String,
    pub base: String,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub title: String,
    pub body: Option<String>,
    pub html_url: String,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub path: String,
    /// The raw query string, `""` when there is none.
    pub query: String,
    pub status: u16,
    /// Whether the request carried `If-None-Match`.
    pub if_none_match: bool,
    /// A GraphQL request's `operationName`, if it named one.
    pub operation: Option<String>,
}

/// The fake GitHub. Cloning shares the same server and state; the server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct GitHubFake {
    state: Arc<Mutex<State>>,
    base_url: String,
    token: String,
    _server: Arc<Server>,
}

struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for GitHubFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubFake")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl GitHubFake {
    /// Binds `127.0.0.1:0` and serves until the last clone is dropped.
    pub async fn start() -> GitHubFake {
        Self::start_serving(false).await
    }

    /// As GitHub Enterprise Server serves: the REST root is `http://127.0.0.1:PORT/api/v3`
    /// and GraphQL is at `/api/graphql` (not under the REST root); other paths are 404.
    pub async fn start_enterprise() -> GitHubFake {
        Self::start_serving(true).await
    }

    async fn start_serving(enterprise: bool) -> GitHubFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake GitHub");
        let address = listener.local_addr().expect("local address");
        let base_url = if enterprise {
            format!("http://{address}/api/v3")
        } else {
            format!("http://{address}")
        };
        let token = format!(
            "ghp_{}",
            &sha1::hex(format!("{base_url} {}", now_epoch()).as_bytes())[..36]
        );
        let state = Arc::new(Mutex::new(State {
            base_url: base_url.clone(),
            enterprise,
            personal_token: token.clone(),
            secondary_status: 403,
            ..State::default()
        }));
        let app = Router::new().fallback(serve).with_state(state.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GitHubFake {
            state,
            base_url,
            token,
            _server: Arc::new(Server(handle)),
        }
    }

    /// The REST root, `http://127.0.0.1:PORT`, where GraphQL is at `{base_url}/graphql`; or
    /// for Enterprise Server `http://127.0.0.1:PORT/api/v3`, with GraphQL at `/api/graphql`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// A valid token (`Authorization: Bearer <token>` or `token <token>`).
    pub fn token(&self) -> &str {
        &self.token
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_repo<T>(&self, full_name: &str, f: impl FnOnce(&mut Repo, &mut state::Ids) -> T) -> T {
        let mut guard = self.lock();
        let State { repos, ids, .. } = &mut *guard;
        let repo = repos
            .get_mut(&full_name.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("the fake GitHub has no repository {full_name}"));
        f(repo, ids)
    }

    // --- Setup ---------------------------------------------------------------------

    /// Creates a private repository whose default branch holds one commit (a README).
    pub fn add_repo(&self, full_name: &str, default_branch: &str) {
        let (owner, name) = full_name
            .split_once('/')
            .unwrap_or_else(|| panic!("{full_name} is not owner/name"));
        let mut guard = self.lock();
        let State { repos, ids, .. } = &mut *guard;
        let id = ids.next();
        let repo = Repo::new(id, owner, name, default_branch, ids);
        repos.insert(full_name.to_ascii_lowercase(), repo);
    }

    pub fn set_archived(&self, full_name: &str, archived: bool) {
        self.with_repo(full_name, |repo, _| repo.archived = archived);
    }

    /// Marks the repository a fork (`isFork`, REST `fork`); its history stays its own.
    pub fn set_fork(&self, full_name: &str, fork: bool) {
        self.with_repo(full_name, |repo, _| repo.fork = fork);
    }

    /// Replaces the repository's topics, kept as GitHub keeps them: lower case, each once,
    /// in the order given.
    pub fn set_topics(&self, full_name: &str, topics: &[&str]) {
        self.with_repo(full_name, |repo, _| {
            repo.topics.clear();
            for topic in topics.iter().map(|t| t.trim().to_ascii_lowercase()) {
                if !topic.is_empty() && !repo.topics.contains(&topic) {
                    repo.topics.push(topic);
                }
            }
        });
    }

    /// Commits `content` at `path` directly on `branch` (which must exist).
    pub fn put_file(&self, full_name: &str, branch: &str, path: &str, content: &str) {
        self.with_repo(full_name, |repo, ids| {
            repo.commit_files(
                branch,
                vec![(path.to_string(), content.as_bytes().to_vec())],
                &format!("Update {path}"),
                ids,
            )
            .unwrap_or_else(|| panic!("{full_name} has no branch {branch}"));
        });
    }

    /// Commits the removal of `path` directly on `branch` (a person deleting the file).
    pub fn delete_file(&self, full_name: &str, branch: &str, path: &str) {
        self.with_repo(full_name, |repo, ids| {
            repo.remove_file(branch, path, ids)
                .unwrap_or_else(|| panic!("{full_name} has no {path} on {branch}"));
        });
    }

    /// Creates `branch` at the head of `from`.
    pub fn create_branch(&self, full_name: &str, branch: &str, from: &str) {
        self.with_repo(full_name, |repo, ids| {
            let sha = repo
                .branches
                .get(from)
                .cloned()
                .unwrap_or_else(|| panic!("{full_name} has no branch {from}"));
            repo.move_branch(branch, sha, ids);
        });
    }

    /// The file's content on `branch`, if both exist.
    pub fn file(&self, full_name: &str, branch: &str, path: &str) -> Option<String> {
        let guard = self.lock();
        let repo = guard.repos.get(&full_name.to_ascii_lowercase())?;
        let bytes = repo.branch_head(branch)?.tree.get(path)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// The head commit sha of `branch`.
    pub fn branch_sha(&self, full_name: &str, branch: &str) -> Option<String> {
        let guard = self.lock();
        guard
            .repos
            .get(&full_name.to_ascii_lowercase())?
            .branches
            .get(branch)
            .cloned()
    }

    /// Sets a registered workflow's state: `active`, `disabled_manually`,
    /// `disabled_inactivity` or `disabled_fork`.
    pub fn set_workflow_state(&self, full_name: &str, path: &str, state: &str) {
        self.with_repo(full_name, |repo, _| {
            let workflow = repo
                .workflows
                .get_mut(path)
                .unwrap_or_else(|| panic!("{full_name} has no workflow {path} on its default branch"));
            workflow.state = state.to_string();
            workflow.updated_at = now_rfc3339();
        });
    }

    /// The state of a registered workflow.
    pub fn workflow_state(&self, full_name: &str, path: &str) -> Option<String> {
        let guard = self.lock();
        Some(
            guard
                .repos
                .get(&full_name.to_ascii_lowercase())?
                .workflows
                .get(path)?
                .state
                .clone(),
        )
    }

    /// The numeric id of a registered workflow.
    pub fn workflow_id(&self, full_name: &str, path: &str) -> Option<u64> {
        let guard = self.lock();
        Some(
            guard
                .repos
                .get(&full_name.to_ascii_lowercase())?
                .workflows
                .get(path)?
                .id,
        )
    }

    /// Records a scheduled run of the workflow at `path` on the default branch, started at
    /// `started_at` (RFC 3339); `completed` with `conclusion` when given, else
    /// `in_progress`. Returns the run id.
    pub fn add_run(&self, full_name: &str, path: &str, conclusion: Option<&str>, started_at: &str) -> u64 {
        self.add_run_of(full_name, path, conclusion, started_at, None)
    }

    /// `add_run` of the commit `head_sha` (the run's checkout: what its backup holds), not
    /// the branch's tip in the fake.
    pub fn add_run_of(
        &self,
        full_name: &str,
        path: &str,
        conclusion: Option<&str>,
        started_at: &str,
        head_sha: Option<&str>,
    ) -> u64 {
        let started = started_at
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{started_at} is not RFC 3339: {e}"));
        let started = state::epoch_rfc3339(started.as_second());
        self.with_repo(full_name, |repo, ids| {
            let head_sha = head_sha.map(str::to_string).unwrap_or_else(|| {
                repo.branches
                    .get(&repo.default_branch)
                    .cloned()
                    .unwrap_or_default()
            });
            let head_branch = repo.default_branch.clone();
            let workflow = repo
                .workflows
                .get_mut(path)
                .unwrap_or_else(|| panic!("{full_name} has no workflow {path} on its default branch"));
            workflow.runs_started += 1;
            let id = ids.next();
            let run = Run {
                id,
                workflow_path: path.to_string(),
                run_number: workflow.runs_started,
                head_branch,
                head_sha,
                event: "schedule".to_string(),
                status: if conclusion.is_some() {
                    "completed"
                } else {
                    "in_progress"
                }
                .to_string(),
                conclusion: conclusion.map(str::to_string),
                created_at: started.clone(),
                updated_at: started.clone(),
                run_started_at: started,
            };
            repo.runs.push(run);
            id
        })
    }

    /// Completes a run with `conclusion` (`success`, `failure`, …).
    pub fn complete_run(&self, full_name: &str, run_id: u64, conclusion: &str) {
        self.with_repo(full_name, |repo, _| {
            let run = repo
                .runs
                .iter_mut()
                .find(|r| r.id == run_id)
                .unwrap_or_else(|| panic!("{full_name} has no run {run_id}"));
            run.status = "completed".to_string();
            run.conclusion = Some(conclusion.to_string());
            run.updated_at = now_rfc3339();
        });
    }

    /// Merges an open pull request as GitHub's merge button would: a merge commit on the
    /// base branch that applies the head's changes since the merge base.
    pub fn merge_pull_request(&self, full_name: &str, number: u64) {
        self.with_repo(full_name, |repo, ids| {
            let index = repo
                .pulls
                .iter()
                .position(|p| p.number == number && p.state == "open")
                .unwrap_or_else(|| panic!("{full_name} has no open pull request #{number}"));
            let pull = repo.pulls[index].clone();
            let head_sha = repo.branches.get(&pull.head_ref).cloned().expect("head branch");
            let base_sha = repo.branches.get(&pull.base_ref).cloned().expect("base branch");
            let merged_tree = merge_trees(repo, &base_sha, &head_sha);
            let message = format!(
                "Merge pull request #{number} from {}/{}",
                repo.owner, pull.head_ref
            );
            let sha = repo.add_commit(vec![base_sha, head_sha.clone()], merged_tree, &message, ids);
            repo.move_branch(&pull.base_ref, sha.clone(), ids);
            let now = now_rfc3339();
            let pull = &mut repo.pulls[index];
            pull.state = "closed".to_string();
            pull.merged_at = Some(now.clone());
            pull.closed_at = Some(now.clone());
            pull.updated_at = now;
            pull.merge_commit_sha = Some(sha);
            pull.closed_head_sha = Some(head_sha);
        });
    }

    pub fn pull_requests(&self, full_name: &str) -> Vec<FakePullRequest> {
        self.with_repo(full_name, |repo, _| {
            repo.pulls
                .iter()
                .map(|p: &PullRequest| FakePullRequest {
                    number: p.number,
                    head_ref: p.head_ref.clone(),
                    base: p.base_ref.clone(),
                    state: p.state.clone(),
                    merged: p.merged_at.is_some(),
                    title: p.title.clone(),
                    body: p.body.clone(),
                    html_url: format!("{}/pull/{}", repo.html_url(), p.number),
                })
                .collect()
        })
    }

    pub fn branches(&self, full_name: &str) -> Vec<String> {
        self.with_repo(full_name, |repo, _| repo.branches.keys().cloned().collect())
    }

    /// When on, the caller's token lacks the `workflow` scope (or an app's `workflows`
    /// permission): writing under `.github/workflows` answers 403 as GitHub does.
    pub fn deny_workflow_writes(&self, on: bool) {
        self.lock().deny_workflow_writes = on;
    }

    /// The next `n` authenticated requests (except `GET /rate_limit`) are rate limited: a primary limit answers 403
    /// with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` one second ahead (GraphQL:
    /// 200 with a `RATE_LIMITED` error, as documented); a secondary limit answers 403 (see
    /// [`Self::secondary_rate_limit_status`]) with `retry-after: 1`.
    pub fn rate_limit_next(&self, n: u32, secondary: bool) {
        self.lock().injected = (n > 0).then_some(InjectedLimit {
            remaining: n,
            secondary,
        });
    }

    /// Sets the hourly budgets: 5,000 REST requests and 5,000 GraphQL points by default, as
    /// for a user token or an app installation; GitHub Enterprise Server's administrators set
    /// their own or turn rate limiting off.
    pub fn set_hourly_limits(&self, core: u64, graphql: u64) {
        let mut state = self.lock();
        state.budgets.core.limit = core;
        state.budgets.graphql.limit = graphql;
    }

    /// The status of injected secondary rate limits: 403 (the default) or 429.
    pub fn secondary_rate_limit_status(&self, status: u16) {
        self.lock().secondary_status = status;
    }

    /// Makes every installation token issued so far invalid (as on expiry).
    pub fn expire_installation_tokens(&self) {
        self.lock().installation_tokens.clear();
    }

    pub fn issued_installation_tokens(&self) -> usize {
        self.lock().issued_installation_tokens
    }

    // --- Inspection ----------------------------------------------------------------

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many requests had this method and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the recorded requests and GraphQL batches.
    pub fn reset_requests(&self) {
        let mut state = self.lock();
        state.requests.clear();
        state.graphql_batches.clear();
    }

    /// The number of repositories each GraphQL query that got past authentication and rate
    /// limiting asked for, in order (including a query refused for asking more than 100):
    /// one per `repository` field, and for an organization's `repositories` page its
    /// `first`, the most it can return (an organization listing records 100 a page).
    pub fn graphql_batches(&self) -> Vec<usize> {
        self.lock().graphql_batches.clone()
    }

    /// The remaining budget of a resource (`core` or `graphql`).
    pub fn rate_limit_remaining(&self, resource: &str) -> u64 {
        let state = self.lock();
        match resource {
            "graphql" => state.budgets.graphql.remaining(),
            _ => state.budgets.core.remaining(),
        }
    }
}

/// The git object id of a blob, as GitHub reports `sha` for file contents.
pub fn git_blob_sha(content: &[u8]) -> String {
    sha1::git_blob(content)
}

/// A three-way merge by whole files: the base's tree plus the head's changes since their
/// merge base (the head wins on conflicts).
fn merge_trees(repo: &Repo, base_sha: &str, head_sha: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut queue = std::collections::VecDeque::from([head_sha.to_string()]);
    let mut seen = std::collections::HashSet::new();
    let mut merge_base = None;
    while let Some(sha) = queue.pop_front() {
        if !seen.insert(sha.clone()) {
            continue;
        }
        if repo.is_ancestor(&sha, base_sha) {
            merge_base = Some(sha);
            break;
        }
        if let Some(commit) = repo.commits.get(&sha) {
            queue.extend(commit.parents.iter().cloned());
        }
    }
    let tree_of = |sha: &str| repo.commits.get(sha).map(|c| c.tree.clone()).unwrap_or_default();
    let (ancestor, head) = (
        merge_base.as_deref().map(tree_of).unwrap_or_default(),
        tree_of(head_sha),
    );
    let mut merged = tree_of(base_sha);
    for (path, content) in &head {
        if ancestor.get(path) != Some(content) {
            merged.insert(path.clone(), content.clone());
        }
    }
    for path in ancestor.keys() {
        if !head.contains_key(path) {
            merged.remove(path);
        }
    }
    merged
}

// --- Server --------------------------------------------------------------------------

async fn serve(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    handle(&mut state, &method, &uri, &headers, &body)
}

/// How the caller authenticated.
enum Caller {
    Token { as_app: bool },
    AppJwt,
}

/// The whole life of one request: authentication, injected and real rate limits,
/// routing, conditional GETs, headers and the request log.
fn handle(state: &mut State, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let raw_path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or_default().to_string();
    let path = served_path(state, percent_decode(&raw_path, false));
    let query = parse_query(&raw_query);
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let is_graphql = path == "/graphql";
    let resource = if is_graphql {
        Resource::Graphql
    } else {
        Resource::Core
    };
    state.budgets.refresh();

    let (reply, charged, limited) = match authenticate(state, &path, headers) {
        Err(reply) => (reply, false, false),
        Ok(caller) => {
            if method == Method::GET && path == "/rate_limit" {
                // Documented: checking the rate limit does not count against it.
                (
                    rest::route(state, &request(method, &path, &query, body, &caller)),
                    false,
                    false,
                )
            } else if let Some(reply) = injected_limit(state, is_graphql) {
                (reply, false, true)
            } else if state.budgets.get(resource).remaining() == 0 {
                (primary_limit(is_graphql), false, false)
            } else {
                let reply = if is_graphql && method == Method::POST {
                    graphql::handle(state, body)
                } else {
                    rest::route(state, &request(method, &path, &query, body, &caller))
                };
                (reply, true, false)
            }
        }
    };

    // Conditional GETs: every successful GET carries an ETag; a matching If-None-Match
    // answers 304 and is not charged.
    let mut etag = None;
    let mut not_modified = false;
    if method == Method::GET
        && reply.status == 200
        && let Some(body) = &reply.body
    {
        let tag = format!("W/\"{}\"", sha1::hex(body.to_string().as_bytes()));
        not_modified = if_none_match.is_some_and(|inm| etag_matches(inm, &tag));
        etag = Some(tag);
    }
    if charged && !not_modified {
        state.budgets.charge(resource, 1);
    }

    let status = if not_modified { 304 } else { reply.status };
    let mut response_headers = HeaderMap::new();
    let mut set = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response_headers.insert(name, value);
        }
    };
    let budget = state.budgets.get(resource);
    let (remaining, reset) = if limited {
        (0, now_epoch() + 1)
    } else {
        (budget.remaining(), state.budgets.reset)
    };
    set(
        HeaderName::from_static("x-ratelimit-limit"),
        budget.limit.to_string(),
    );
    set(
        HeaderName::from_static("x-ratelimit-remaining"),
        remaining.to_string(),
    );
    set(HeaderName::from_static("x-ratelimit-reset"), reset.to_string());
    set(
        HeaderName::from_static("x-ratelimit-used"),
        (budget.limit - remaining).to_string(),
    );
    set(
        HeaderName::from_static("x-ratelimit-resource"),
        resource.name().to_string(),
    );
    set(
        HeaderName::from_static("x-github-media-type"),
        "github.v3; format=json".to_string(),
    );
    set(
        HeaderName::from_static("x-github-api-version-selected"),
        "2022-11-28".to_string(),
    );
    set(
        HeaderName::from_static("x-github-request-id"),
        format!("FAKE:{:X}:{:X}", state.requests.len(), now_epoch()),
    );
    set(
        header::VARY,
        "Accept, Authorization, Cookie, X-GitHub-OTP".to_string(),
    );
    if let Some(tag) = &etag {
        set(header::ETAG, tag.clone());
        set(
            header::CACHE_CONTROL,
            "private, max-age=60, s-maxage=60".to_string(),
        );
    }
    for (name, value) in &reply.headers {
        set(HeaderName::from_static(name), value.clone());
    }

    let operation = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b.get("operationName")?.as_str().map(str::to_string));
    state.requests.push(RecordedRequest {
        method: method.as_str().to_string(),
        path: raw_path,
        query: raw_query,
        status,
        if_none_match: if_none_match.is_some(),
        operation,
    });

    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match (&reply.body, not_modified) {
        (Some(body), false) => {
            response_headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            (status_code, response_headers, body.to_string()).into_response()
        }
        _ => (status_code, response_headers).into_response(),
    }
}

fn request<'a>(
    method: &'a Method,
    path: &'a str,
    query: &'a [(String, String)],
    body: &'a [u8],
    caller: &Caller,
) -> Request<'a> {
    Request {
        method: method.as_str(),
        path,
        query,
        body,
        as_app: matches!(caller, Caller::Token { as_app: true }),
    }
}

/// The path as github.com would see it. Enterprise Server serves REST under `/api/v3` and
/// GraphQL at `/api/graphql` only; anything else becomes a path no route serves (a 404).
fn served_path(state: &State, path: String) -> String {
    if !state.enterprise {
        return path;
    }
    match path.strip_prefix("/api/v3") {
        _ if path == "/api/graphql" => "/graphql".to_string(),
        Some(rest) if rest.starts_with('/') && rest != "/graphql" => rest.to_string(),
        _ => format!("/not-served-by-enterprise-server{path}"),
    }
}

/// `/app/...` takes the app's JWT; everything else a personal or installation token.
fn authenticate(state: &State, path: &str, headers: &HeaderMap) -> Result<Caller, Reply> {
    let docs = if path == "/graphql" {
        "https://docs.github.com/graphql"
    } else {
        "https://docs.github.com/rest"
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some((scheme, credential)) = authorization.and_then(|a| a.trim().split_once(' ')) else {
        return Err(Reply::error(401, "Requires authentication", docs));
    };
    let credential = credential.trim();
    let scheme = scheme.to_ascii_lowercase();
    if path.starts_with("/app/") {
        return match (scheme.as_str(), check_app_jwt(credential)) {
            ("bearer", Ok(())) => Ok(Caller::AppJwt),
            (_, Err(message)) => Err(Reply::error(401, message, docs)),
            _ => Err(Reply::error(401, "A JSON web token could not be decoded", docs)),
        };
    }
    if scheme != "bearer" && scheme != "token" {
        return Err(Reply::error(401, "Bad credentials", docs));
    }
    if credential == state.personal_token {
        return Ok(Caller::Token { as_app: false });
    }
    match state.installation_tokens.get(credential) {
        Some(expires) if *expires > now_epoch() => Ok(Caller::Token { as_app: true }),
        _ => Err(Reply::error(401, "Bad credentials", docs)),
    }
}

/// A GitHub App JWT: three base64url parts, a JSON header and a payload with `iss` and an
/// `exp` in the future. The RS256 signature is NOT verified (the fake has no app key).
fn check_app_jwt(jwt: &str) -> Result<(), &'static str> {
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(UNDECODABLE);
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let (Some(_), Some(claims)) = (decode(header), decode(payload)) else {
        return Err(UNDECODABLE);
    };
    if signature.is_empty() {
        return Err(UNDECODABLE);
    }
    let issuer = claims.get("iss");
    if !issuer.is_some_and(|iss| iss.is_string() || iss.is_number()) {
        return Err("'Issuer' claim ('iss') must be an Integer");
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now_epoch() => Ok(()),
        _ => Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ),
    }
}

/// Consumes one injected rate limit, if any is pending.
fn injected_limit(state: &mut State, is_graphql: bool) -> Option<Reply> {
    let injected = state.injected.as_mut()?;
    injected.remaining -= 1;
    let secondary = injected.secondary;
    if injected.remaining == 0 {
        state.injected = None;
    }
    if secondary {
        let status = state.secondary_status;
        let docs = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits";
        let message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. \
                       If you reach out to GitHub Support for help, please include the request ID FAKE.";
        let mut reply = Reply::error(status, message, docs);
        reply.headers.push(("retry-after", "1".to_string()));
        Some(reply)
    } else {
        Some(primary_limit(is_graphql))
    }
}

/// A primary rate limit: REST answers 403; GraphQL answers 200 with a `RATE_LIMITED` error
/// (documented: "the response status will still be 200").
fn primary_limit(is_graphql: bool) -> Reply {
    if is_graphql {
        Reply::ok(
            json!({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]}),
        )
    } else {
        Reply::error(
            403,
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID FAKE.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        )
    }
}

/// `If-None-Match` against our ETag: `*`, or any listed tag, compared weakly.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| bare(t) == bare(etag))
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
