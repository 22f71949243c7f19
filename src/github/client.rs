//! The GitHub client: octocrab for transport and authentication (tokens, GitHub App
//! installation tokens refreshed before they expire), plus what a controller at scale
//! needs on top: ETag revalidation, rate-limit bookkeeping, bounded concurrency, writes
//! serialized per repository and paced.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use k8s_openapi::jiff::Timestamp;
use octocrab::Octocrab;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::{FileChange, GitHub, GitHubAuth, GitHubError, GitHubErrorKind, OrgRepository, pacing::Pacer};
use crate::policy::repository::{BRANCH, PullRequestFacts, RepoFacts, RunFacts, WorkflowFacts};

/// Settings of the GitHub side.
#[derive(Clone, Debug)]
pub struct GitHubSettings {
    /// The REST root: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.
    pub base_url: String,
    pub auth: GitHubAuth,
    /// Requests in flight.
    pub concurrency: usize,
    /// Content-creating requests per minute and per hour.
    pub writes_per_minute: usize,
    pub writes_per_hour: usize,
    /// REST reads per minute.
    pub reads_per_minute: usize,
    pub timeouts: crate::timeouts::Timeouts,
}

/// A response read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// What a conditional GET last returned, kept small: the facts, not the payload.
#[derive(Clone, Debug)]
enum Cached {
    Workflow(Option<WorkflowFacts>),
    Run(Option<RunFacts>),
    PullRequest(Option<PullRequestFacts>),
}

/// When requests may be sent again after a rate limit. GitHub counts REST (`core`) and
/// GraphQL apart: one spent budget must not stop the other's requests; a secondary limit
/// stops them all.
#[derive(Debug, Default)]
struct RateState {
    all: Option<SystemTime>,
    core: Option<SystemTime>,
    graphql: Option<SystemTime>,
}

impl RateState {
    fn resource(&mut self, graphql: bool) -> &mut Option<SystemTime> {
        if graphql {
            &mut self.graphql
        } else {
            &mut self.core
        }
    }

    /// Not before this, for a request to REST or (`graphql`) GraphQL.
    fn blocked_until(&self, graphql: bool) -> Option<SystemTime> {
        let own = if graphql { self.graphql } else { self.core };
        own.max(self.all)
    }

    /// A primary limit blocks its own budget's requests; a secondary one, all requests.
    fn block(&mut self, graphql: bool, primary: bool, until: SystemTime) {
        let slot = if primary {
            self.resource(graphql)
        } else {
            &mut self.all
        };
        *slot = Some(until);
    }
}

pub struct GitHubClient {
    crab: Octocrab,
    /// The same credentials at the GraphQL root (`graphql_base`) when it is not the REST root.
    graphql: Option<Octocrab>,
    limit: Semaphore,
    /// Content-creating requests, to GitHub's secondary limits for them.
    pacer: Pacer,
    /// REST reads, to the secondary limit of points per minute.
    reads: Pacer,
    etags: Mutex<HashMap<String, (String, Cached)>>,
    rate: Mutex<RateState>,
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Option<Arc<crate::report::metrics::Metrics>>,
    timeouts: crate::timeouts::Timeouts,
}

fn error(
    operation: &'static str,
    kind: GitHubErrorKind,
    status: u16,
    message: impl Into<String>,
) -> GitHubError {
    GitHubError {
        operation,
        kind,
        status,
        message: message.into(),
        retry_after: None,
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_time(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

/// Where GraphQL lives for a REST root: `https://api.github.com` → the same (`/graphql`);
/// Enterprise Server's `https://HOST/api/v3` → `https://HOST/api` (`/api/graphql`).
fn graphql_base(rest: &str) -> String {
    let rest = rest.trim_end_matches('/');
    rest.strip_suffix("/api/v3")
        .map_or_else(|| rest.to_string(), |host| format!("{host}/api"))
}

/// An Octocrab client with the settings' credentials and timeouts at `base`.
fn octocrab_at(settings: &GitHubSettings, base: &str) -> Result<Octocrab, GitHubError> {
    let fail = |e: octocrab::Error| error("configure", GitHubErrorKind::Refused, 0, e.to_string());
    let t = settings.timeouts;
    let builder = Octocrab::builder()
        .base_uri(base)
        .map_err(fail)?
        .set_connect_timeout(Some(t.connect))
        .set_read_timeout(Some(t.attempt))
        .set_write_timeout(Some(t.attempt));
    Ok(match &settings.auth {
        GitHubAuth::Token(token) => builder.personal_token(token.clone()).build().map_err(fail)?,
        GitHubAuth::App {
            app_id,
            installation_id,
            private_key_pem,
        } => {
            let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
                error(
                    "configure",
                    GitHubErrorKind::Refused,
                    0,
                    format!("invalid GitHub App private key: {e}"),
                )
            })?;
            builder
                .app(octocrab::models::AppId(*app_id), key)
                .build()
                .map_err(fail)?
                .installation(octocrab::models::InstallationId(*installation_id))
                .map_err(fail)?
        }
    })
}

impl GitHubClient {
    pub fn new(settings: &GitHubSettings) -> Result<Self, GitHubError> {
        let crab = octocrab_at(settings, &settings.base_url)?;
        // Octocrab puts every path under its base URI's path, so GraphQL, which Enterprise
        // Server serves beside the REST root rather than under it, needs a client of its own
        // there (with a GitHub App, one more installation token an hour).
        let graphql_root = graphql_base(&settings.base_url);
        let graphql = (graphql_root != settings.base_url.trim_end_matches('/'))
            .then(|| octocrab_at(settings, &graphql_root))
            .transpose()?;
        Ok(Self {
            crab,
            graphql,
            limit: Semaphore::new(settings.concurrency.max(1)),
            pacer: Pacer::new(settings.writes_per_minute, settings.writes_per_hour),
            reads: Pacer::per_minute(settings.reads_per_minute),
            etags: Mutex::new(HashMap::new()),
            rate: Mutex::new(RateState::default()),
            repo_locks: Mutex::new(HashMap::new()),
            metrics: None,
            timeouts: settings.timeouts,
        })
    }

    /// Counts requests into the controller's metrics and reports the rate limit there.
    /// Paces writes to `share` of GitHub's limits (the replica's shards).
    pub fn set_share(&self, share: f64) {
        self.pacer.set_share(share);
        self.reads.set_share(share);
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::report::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe_reply(&self, operation: &str, ok: bool, headers: Option<&HeaderMap>) {
        let Some(metrics) = &self.metrics else { return };
        metrics
            .external_calls
            .with_label_values(&["GitHub", operation, if ok { "success" } else { "error" }])
            .inc();
        if let Some(remaining) = headers.and_then(|h| header_u64(h, "x-ratelimit-remaining")) {
            metrics.github_rate_limit(remaining);
        }
    }

    fn lock_for(&self, repo: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.repo_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repo.to_string()).or_default().clone()
    }

    /// Sends one request. Refuses to send while a rate limit is in force, and turns rate
    /// limits, auth failures and server errors into `GitHubError`s that say what to do.
    /// A GraphQL query, and the `errors` of its answer (GraphQL answers them with a 200).
    async fn graphql(
        &self,
        operation: &'static str,
        body: &Value,
    ) -> Result<(Reply, Vec<Value>), GitHubError> {
        let reply = self
            .send(operation, http::Method::POST, "/graphql", Some(body), None)
            .await?;
        let errors = reply
            .body
            .get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok((reply, errors))
    }

    async fn send(
        &self,
        operation: &'static str,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Result<Reply, GitHubError> {
        let graphql = path == "/graphql";
        let blocked = self
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .blocked_until(graphql);
        if let Some(until) = blocked
            && let Ok(wait) = until.duration_since(SystemTime::now())
        {
            return Err(GitHubError {
                operation,
                kind: GitHubErrorKind::Transient,
                status: 403,
                message: "rate limited; waiting for the limit to reset".into(),
                retry_after: Some(wait),
            });
        }
        if method == http::Method::GET {
            self.reads.acquire().await;
        }
        let _permit = self.limit.acquire().await;
        let transient = |message: String| error(operation, GitHubErrorKind::Transient, 0, message);
        // GraphQL has its own root (`graphql_base`).
        let crab = match &self.graphql {
            Some(root) if graphql => root,
            _ => &self.crab,
        };
        let exchange = async {
            let response = match method {
                http::Method::GET => {
                    let mut headers = HeaderMap::new();
                    if let Some(tag) = if_none_match.and_then(|t| HeaderValue::from_str(t).ok()) {
                        headers.insert(header::IF_NONE_MATCH, tag);
                    }
                    crab._get_with_headers(path, Some(headers)).await
                }
                http::Method::POST => crab._post(path, body).await,
                http::Method::PUT => crab._put(path, body).await,
                _ => crab._patch(path, body).await,
            }
            .map_err(|e| {
                self.observe_reply(operation, false, None);
                transient(format!("request failed: {e}"))
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            self.observe_reply(
                operation,
                status.is_success() || status == StatusCode::NOT_MODIFIED,
                Some(&headers),
            );
            let text = crab
                .body_to_string(response)
                .await
                .map_err(|e| transient(format!("reading the response: {e}")))?;
            Ok::<_, GitHubError>((status, headers, text))
        };
        let limit = self.timeouts.operation;
        let (status, headers, text) = tokio::time::timeout(limit, exchange).await.map_err(|_| {
            self.observe_reply(operation, false, None);
            transient(format!("GitHub did not answer within {limit:?}"))
        })??;
        // An action's evidence names the requests it made.
        if let Some(id) = headers.get("x-github-request-id").and_then(|v| v.to_str().ok()) {
            crate::evidence::request_ids::note(operation, id);
        }
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };

        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let retry_after = header_u64(&headers, "retry-after").map(Duration::from_secs);
        let exhausted = header_u64(&headers, "x-ratelimit-remaining") == Some(0);
        let reset_in = header_u64(&headers, "x-ratelimit-reset")
            .map(|reset| Duration::from_secs(reset.saturating_sub(unix_now()) + 1));
        let limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (exhausted || retry_after.is_some() || message.contains("rate limit")));
        if limited {
            // Secondary limits say when (retry-after); without it GitHub asks for a minute.
            let wait = retry_after
                .or(if exhausted { reset_in } else { None })
                .unwrap_or(Duration::from_secs(60));
            let primary = exhausted && retry_after.is_none();
            self.rate.lock().unwrap_or_else(|p| p.into_inner()).block(
                graphql,
                primary,
                SystemTime::now() + wait,
            );
            return Err(GitHubError {
                operation,
                kind: GitHubErrorKind::Transient,
                status: status.as_u16(),
                message,
                retry_after: Some(wait),
            });
        }
        if exhausted && let Some(wait) = reset_in {
            // The budget is spent: send nothing more from it until it resets.
            self.rate.lock().unwrap_or_else(|p| p.into_inner()).block(
                graphql,
                true,
                SystemTime::now() + wait,
            );
        }
        let kind = match status.as_u16() {
            200..=299 | 304 => {
                return Ok(Reply {
                    status,
                    headers,
                    body,
                });
            }
            401 | 403 => GitHubErrorKind::AccessDenied,
            404 => GitHubErrorKind::NotFound,
            409 => GitHubErrorKind::Conflict,
            500..=599 => GitHubErrorKind::Transient,
            _ => GitHubErrorKind::Refused,
        };
        let message = match body
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .and_then(|e| e.get("message"))
        {
            Some(detail) => format!("{message}: {}", detail.as_str().unwrap_or_default()),
            None => message,
        };
        Err(error(operation, kind, status.as_u16(), message))
    }

    /// A GET revalidated with its ETag: a 304 answers from what the last 200 said.
    async fn conditional_get(
        &self,
        operation: &'static str,
        path: &str,
        extract: impl FnOnce(&Value) -> Cached,
    ) -> Result<Cached, GitHubError> {
        let known = self
            .etags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned();
        let reply = self
            .send(
                operation,
                http::Method::GET,
                path,
                None,
                known.as_ref().map(|(tag, _)| tag.as_str()),
            )
            .await;
        match reply {
            Ok(reply) if reply.status == StatusCode::NOT_MODIFIED => match known {
                Some((_, cached)) => Ok(cached),
                None => Err(error(
                    operation,
                    GitHubErrorKind::Transient,
                    304,
                    "304 without a cached response",
                )),
            },
            Ok(reply) => {
                let cached = extract(&reply.body);
                if let Some(tag) = reply.headers.get(header::ETAG).and_then(|t| t.to_str().ok()) {
                    self.etags
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(path.to_string(), (tag.to_string(), cached.clone()));
                }
                Ok(cached)
            }
            Err(e) => Err(e),
        }
    }

    /// The file at `path` on `branch`: (blob sha, text), or None.
    async fn file(
        &self,
        repo: &str,
        path: &str,
        branch: &str,
    ) -> Result<Option<(String, String)>, GitHubError> {
        let uri = format!("/repos/{repo}/contents/{path}?ref={}", encode(branch));
        match self.send("GetContent", http::Method::GET, &uri, None, None).await {
            Ok(reply) => {
                let sha = reply
                    .body
                    .get("sha")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let encoded: String = reply
                    .body
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| {
                        error(
                            "GetContent",
                            GitHubErrorKind::Refused,
                            200,
                            format!("undecodable content: {e}"),
                        )
                    })?;
                Ok(Some((sha, String::from_utf8_lossy(&bytes).into_owned())))
            }
            Err(e) if e.kind == GitHubErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_file(
        &self,
        repo: &str,
        change: &FileChange,
        branch: &str,
        sha: Option<&str>,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "message": change.commit_message,
            "content": base64::engine::general_purpose::STANDARD.encode(change.content.as_bytes()),
            "branch": branch,
        });
        if let (Some(sha), Some(object)) = (sha, body.as_object_mut()) {
            object.insert("sha".into(), json!(sha));
        }
        self.pacer.acquire().await;
        self.send(
            "PutContent",
            http::Method::PUT,
            &format!("/repos/{repo}/contents/{}", change.path),
            Some(&body),
            None,
        )
        .await
        .map(|_| ())
    }
}

/// Percent-encodes a branch name for a query string or path segment (`/` stays for refs).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn pull_request_facts(pr: &Value) -> Option<PullRequestFacts> {
    Some(PullRequestFacts {
        url: pr.get("html_url")?.as_str()?.to_string(),
        number: pr.get("number")?.as_u64()?,
    })
}

/// The GraphQL query for one batch: an aliased `repository` field per repository.
pub fn batch_query(repos: &[(String, String)]) -> String {
    let mut query = String::from("query {\n");
    for (i, (full_name, path)) in repos.iter().enumerate() {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name.as_str(), ""));
        let literal = |s: &str| serde_json::to_string(s).unwrap_or_default();
        query.push_str(&format!(
            "  r{i}: repository(owner: {}, name: {}) {{ nameWithOwner isArchived defaultBranchRef {{ name target {{ oid }} }} \
             file: object(expression: {}) {{ ... on Blob {{ text }} }} }}\n",
            literal(owner),
            literal(name),
            literal(&format!("HEAD:{path}")),
        ));
    }
    query.push_str("  rateLimit { cost remaining resetAt }\n}\n");
    query
}

/// A GraphQL error of a 200 answer, classified as `send` classifies HTTP statuses.
fn graphql_error(operation: &'static str, status: StatusCode, e: &Value) -> GitHubError {
    let kind = match e.get("type").and_then(Value::as_str) {
        Some("RATE_LIMITED") => GitHubErrorKind::Transient,
        Some("FORBIDDEN") => GitHubErrorKind::AccessDenied,
        _ => GitHubErrorKind::Refused,
    };
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("GraphQL error");
    error(operation, kind, status.as_u16(), message)
}

/// One page of an organization's repositories. The login and the cursor are variables, so
/// no name needs quoting. Repositories have at most 20 topics, so one page of them is all.
/// No `rateLimit`: the budget is read from the `x-ratelimit-*` headers of every answer.
pub const ORGANIZATION_REPOSITORIES_QUERY: &str =
    "query OrganizationRepositories($login: String!, $after: String) {
  organization(login: $login) {
    repositories(first: 100, after: $after) {
      nodes { nameWithOwner isArchived isFork repositoryTopics(first: 20) { nodes { topic { name } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
";

/// The operation name of the organization listing in metrics and errors; it is paced and
/// budgeted as GraphQL all the same (`send` keys those on the path).
const LIST_ORGANIZATION_REPOSITORIES: &str = "ListOrganizationRepositories";

fn org_repository(node: &Value) -> Option<OrgRepository> {
    Some(OrgRepository {
        full_name: node.get("nameWithOwner")?.as_str()?.to_string(),
        archived: node.get("isArchived").and_then(Value::as_bool).unwrap_or(false),
        fork: node.get("isFork").and_then(Value::as_bool).unwrap_or(false),
        topics: node
            .pointer("/repositoryTopics/nodes")
            .and_then(Value::as_array)
            .map(|topics| {
                topics
                    .iter()
                    .filter_map(|t| t.pointer("/topic/name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[async_trait]
impl GitHub for GitHubClient {
    async fn repositories(
        &self,
        repos: &[(String, String)],
    ) -> Result<HashMap<String, Option<RepoFacts>>, GitHubError> {
        let mut out = HashMap::new();
        for batch in repos.chunks(super::BATCH_SIZE) {
            let body = json!({ "query": batch_query(batch) });
            let (reply, errors) = self.graphql("GraphQL", &body).await?;
            // Missing repositories come back as null with a NOT_FOUND error; anything else is a failure.
            if let Some(other) = errors
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) != Some("NOT_FOUND"))
            {
                return Err(graphql_error("GraphQL", reply.status, other));
            }
            let data = reply.body.get("data").cloned().unwrap_or(Value::Null);
            for (i, (full_name, _)) in batch.iter().enumerate() {
                let repo = data.get(format!("r{i}")).filter(|r| !r.is_null());
                let facts = repo.map(|r| RepoFacts {
                    default_branch: r
                        .pointer("/defaultBranchRef/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    head: r
                        .pointer("/defaultBranchRef/target/oid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    archived: r.get("isArchived").and_then(Value::as_bool).unwrap_or(false),
                    file: r
                        .pointer("/file/text")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
                out.insert(full_name.clone(), facts);
            }
        }
        Ok(out)
    }

    async fn workflow(&self, repo: &str, path: &str) -> Result<Option<WorkflowFacts>, GitHubError> {
        let uri = format!("/repos/{repo}/actions/workflows/{}", file_name(path));
        let extract = |w: &Value| {
            Cached::Workflow(Some(WorkflowFacts {
                id: w.get("id").and_then(Value::as_u64).unwrap_or_default(),
                state: w
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }))
        };
        match self.conditional_get("GetWorkflow", &uri, extract).await {
            Ok(Cached::Workflow(w)) => Ok(w),
            Ok(_) => Ok(None),
            Err(e) if e.kind == GitHubErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn newest_completed_run(&self, repo: &str, path: &str) -> Result<Option<RunFacts>, GitHubError> {
        let uri = format!(
            "/repos/{repo}/actions/workflows/{}/runs?status=completed&per_page=1",
            file_name(path)
        );
        let extract = |page: &Value| {
            Cached::Run(page.pointer("/workflow_runs/0").and_then(|run| {
                Some(RunFacts {
                    url: run.get("html_url")?.as_str()?.to_string(),
                    conclusion: run
                        .get("conclusion")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_string(),
                    started_at: run
                        .get("run_started_at")
                        .and_then(parse_time)
                        .or_else(|| run.get("created_at").and_then(parse_time))?,
                })
            }))
        };
        match self.conditional_get("ListWorkflowRuns", &uri, extract).await {
            Ok(Cached::Run(run)) => Ok(run),
            Ok(_) => Ok(None),
            Err(e) if e.kind == GitHubErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open_pull_request(&self, repo: &str) -> Result<Option<PullRequestFacts>, GitHubError> {
        let owner = repo.split('/').next().unwrap_or_default();
        let uri = format!(
            "/repos/{repo}/pulls?state=open&head={}&per_page=1",
            encode(&format!("{owner}:{BRANCH}"))
        );
        let extract = |list: &Value| Cached::PullRequest(list.get(0).and_then(pull_request_facts));
        match self.conditional_get("ListPullRequests", &uri, extract).await? {
            Cached::PullRequest(pr) => Ok(pr),
            _ => Ok(None),
        }
    }

    async fn newest_successful_run_sha(&self, repo: &str, path: &str) -> Result<Option<String>, GitHubError> {
        let uri = format!(
            "/repos/{repo}/actions/workflows/{}/runs?status=success&per_page=1",
            file_name(path)
        );
        match self
            .send("ListWorkflowRuns", http::Method::GET, &uri, None, None)
            .await
        {
            Ok(reply) => Ok(reply
                .body
                .pointer("/workflow_runs/0/head_sha")
                .and_then(Value::as_str)
                .map(str::to_string)),
            Err(e) if e.kind == GitHubErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn enable_workflow(&self, repo: &str, workflow_id: u64) -> Result<(), GitHubError> {
        let uri = format!("/repos/{repo}/actions/workflows/{workflow_id}/enable");
        self.send("EnableWorkflow", http::Method::PUT, &uri, None, None)
            .await
            .map(|_| ())
    }

    async fn propose_file(&self, repo: &str, change: &FileChange) -> Result<PullRequestFacts, GitHubError> {
        let lock = self.lock_for(repo);
        let _serialized = lock.lock().await;
        // An open pull request from our branch is the answer, whoever opened it and when.
        if let Some(pr) = self.open_pull_request(repo).await? {
            return Ok(pr);
        }
        let base = self
            .send(
                "GetRef",
                http::Method::GET,
                &format!("/repos/{repo}/git/ref/heads/{}", encode(&change.base_branch)),
                None,
                None,
            )
            .await?;
        let base_sha = base
            .body
            .pointer("/object/sha")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.pacer.acquire().await;
        let created = self
            .send(
                "CreateRef",
                http::Method::POST,
                &format!("/repos/{repo}/git/refs"),
                Some(&json!({"ref": format!("refs/heads/{BRANCH}"), "sha": base_sha})),
                None,
            )
            .await;
        match created {
            // The branch is left from an earlier attempt: it is ours, reuse it.
            Err(e) if e.kind == GitHubErrorKind::Refused && e.message.contains("already exists") => {}
            other => {
                other?;
            }
        }
        let existing = self.file(repo, &change.path, BRANCH).await?;
        if existing.as_ref().map(|(_, text)| text.as_str()) != Some(change.content.as_str()) {
            self.put_file(
                repo,
                change,
                BRANCH,
                existing.as_ref().map(|(sha, _)| sha.as_str()),
            )
            .await?;
        }
        self.pacer.acquire().await;
        let opened = self
            .send(
                "CreatePullRequest",
                http::Method::POST,
                &format!("/repos/{repo}/pulls"),
                Some(&json!({"title": change.title, "head": BRANCH, "base": change.base_branch, "body": change.body})),
                None,
            )
            .await;
        match opened {
            Ok(reply) => pull_request_facts(&reply.body).ok_or_else(|| {
                error(
                    "CreatePullRequest",
                    GitHubErrorKind::Refused,
                    201,
                    "no html_url in the response",
                )
            }),
            // Opened meanwhile by another replica: report that one.
            Err(e) if e.kind == GitHubErrorKind::Refused && e.message.contains("already exists") => {
                self.etags
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|k, _| !k.contains("/pulls?"));
                self.open_pull_request(repo).await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn commit_file(
        &self,
        repo: &str,
        change: &FileChange,
        replacing: Option<&str>,
    ) -> Result<(), GitHubError> {
        let lock = self.lock_for(repo);
        let _serialized = lock.lock().await;
        let current = self.file(repo, &change.path, &change.base_branch).await?;
        if current.as_ref().map(|(_, text)| text.as_str()) != replacing {
            return Err(error(
                "PutContent",
                GitHubErrorKind::Conflict,
                409,
                format!(
                    "{} changed since it was checked; checking again before writing",
                    change.path
                ),
            ));
        }
        self.put_file(
            repo,
            change,
            &change.base_branch,
            current.as_ref().map(|(sha, _)| sha.as_str()),
        )
        .await
    }

    async fn organization_repositories(&self, org: &str) -> Result<Option<Vec<OrgRepository>>, GitHubError> {
        let operation = LIST_ORGANIZATION_REPOSITORIES;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let body = json!({
                "query": ORGANIZATION_REPOSITORIES_QUERY,
                "operationName": "OrganizationRepositories",
                "variables": { "login": org, "after": after },
            });
            let (reply, errors) = self.graphql(operation, &body).await?;
            // An unknown (or invisible) organization is null with a NOT_FOUND error at its path.
            if errors.iter().any(|e| {
                e.get("type").and_then(Value::as_str) == Some("NOT_FOUND")
                    && e.pointer("/path/0").and_then(Value::as_str) == Some("organization")
            }) {
                return Ok(None);
            }
            if let Some(other) = errors.first() {
                return Err(graphql_error(operation, reply.status, other));
            }
            let Some(connection) = reply
                .body
                .pointer("/data/organization")
                .filter(|o| !o.is_null())
                .map(|o| o.get("repositories").cloned().unwrap_or(Value::Null))
            else {
                return Ok(None);
            };
            let nodes = connection
                .get("nodes")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            out.extend(nodes.iter().filter_map(org_repository));
            let more = connection
                .pointer("/pageInfo/hasNextPage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !more {
                return Ok(Some(out));
            }
            let next = connection
                .pointer("/pageInfo/endCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            // A next page without a new cursor would be asked for forever.
            if next.is_none() || next == after {
                return Err(error(
                    operation,
                    GitHubErrorKind::Refused,
                    reply.status.as_u16(),
                    format!("the repositories of {org}: a next page without a new cursor"),
                ));
            }
            after = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_is_beside_the_rest_root_on_enterprise_server() {
        assert_eq!(graphql_base("https://api.github.com"), "https://api.github.com");
        assert_eq!(graphql_base("https://api.github.com/"), "https://api.github.com");
        assert_eq!(
            graphql_base("https://ghe.example.com/api/v3"),
            "https://ghe.example.com/api"
        );
        assert_eq!(
            graphql_base("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api"
        );
    }

    #[test]
    fn the_batch_query_names_each_repository_and_its_file() {
        let q = batch_query(&[
            (
                "narrative-io/marketplace".into(),
                ".github/workflows/backup-daily.yml".into(),
            ),
            ("narrative-io/api".into(), ".github/workflows/backup.yaml".into()),
        ]);
        assert!(
            q.contains(r#"r0: repository(owner: "narrative-io", name: "marketplace")"#),
            "{q}"
        );
        assert!(
            q.contains(r#"object(expression: "HEAD:.github/workflows/backup-daily.yml")"#),
            "{q}"
        );
        assert!(
            q.contains(r#"r1: repository(owner: "narrative-io", name: "api")"#),
            "{q}"
        );
        assert!(q.contains("rateLimit"));
    }

    #[test]
    fn branch_names_are_encoded_for_queries() {
        assert_eq!(
            encode("narrative-io:backup-warden/backup-daily"),
            "narrative-io%3Abackup-warden/backup-daily"
        );
    }
}
