//! The REST endpoints: one function per endpoint, each taking the locked model and the
//! parsed request and returning a [`Reply`]. Errors use GitHub's documented statuses and
//! messages.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::render;
use super::sha1;
use super::state::{PullRequest, Repo, Run, State, now_rfc3339};

/// A parsed request, as the routes see it.
pub(super) struct Request<'a> {
    pub method: &'a str,
    /// The percent-decoded path.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// Whether the caller authenticated with an installation token (a GitHub App) rather
    /// than a personal access token.
    pub as_app: bool,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `per_page` (default 30, at most 100) and `page` (default 1).
    fn pagination(&self) -> (usize, usize) {
        let per_page = self
            .param("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = self
            .param("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        (per_page, page)
    }

    /// The body as a JSON object, or GitHub's 400.
    fn json_body(&self) -> Result<Map<String, Value>, Reply> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Reply::error(400, "Problems parsing JSON", DOCS)),
        }
    }
}

/// What an endpoint answers; the server adds the common headers, the ETag and the
/// rate-limit accounting.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn error(status: u16, message: &str, documentation_url: &str) -> Reply {
        Reply::json(status, render::error(status, message, documentation_url))
    }

    pub fn not_found(documentation_url: &str) -> Reply {
        Reply::error(404, "Not Found", documentation_url)
    }

    /// `422 Validation Failed` with GitHub's `errors` array.
    fn validation_failed(documentation_url: &str, errors: Value) -> Reply {
        Reply::json(
            422,
            json!({
                "message": "Validation Failed",
                "errors": errors,
                "documentation_url": documentation_url,
                "status": "422",
            }),
        )
    }

    fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

type Outcome = Result<Reply, Reply>;

const DOCS: &str = "https://docs.github.com/rest";
const DOCS_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
const DOCS_WORKFLOW: &str = "https://docs.github.com/rest/actions/workflows#get-a-workflow";
const DOCS_ENABLE: &str = "https://docs.github.com/rest/actions/workflows#enable-a-workflow";
const DOCS_RUNS: &str =
    "https://docs.github.com/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow";
const DOCS_RUN: &str = "https://docs.github.com/rest/actions/workflow-runs#get-a-workflow-run";
const DOCS_GET_REF: &str = "https://docs.github.com/rest/git/refs#get-a-reference";
const DOCS_CREATE_REF: &str = "https://docs.github.com/rest/git/refs#create-a-reference";
const DOCS_GET_CONTENT: &str = "https://docs.github.com/rest/repos/contents#get-repository-content";
const DOCS_PUT_CONTENT: &str = "https://docs.github.com/rest/repos/contents#create-or-update-file-contents";
const DOCS_CREATE_PULL: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const DOCS_GET_PULL: &str = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request";
const DOCS_UPDATE_PULL: &str = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request";
const DOCS_APP_TOKEN: &str =
    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";

/// Dispatches a REST request (everything but `/graphql`).
pub(super) fn route(state: &mut State, req: &Request) -> Reply {
    let trimmed = req.path.trim_matches('/');
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let outcome = match (req.method, segments.as_slice()) {
        ("GET", ["rate_limit"]) => Ok(rate_limit(state)),
        ("POST", ["app", "installations", id, "access_tokens"]) => installation_token(state, id),
        (_, ["repos", owner, name, rest @ ..]) => repo_route(state, req, owner, name, rest),
        _ => Err(Reply::not_found(DOCS)),
    };
    outcome.unwrap_or_else(|reply| reply)
}

fn repo_route(state: &mut State, req: &Request, owner: &str, name: &str, rest: &[&str]) -> Outcome {
    let key = format!("{owner}/{name}").to_ascii_lowercase();
    if !state.repos.contains_key(&key) {
        return Err(Reply::not_found(DOCS_REPO));
    }
    match (req.method, rest) {
        ("GET", []) => Ok(Reply::ok(render::repository(&state.base_url, repo(state, &key)?))),
        ("GET", ["actions", "workflows", id]) => get_workflow(state, &key, id),
        ("PUT", ["actions", "workflows", id, action @ ("enable" | "disable")]) => {
            set_workflow_enabled(state, &key, id, *action == "enable")
        }
        ("GET", ["actions", "workflows", id, "runs"]) => list_runs(state, req, &key, id),
        ("GET", ["actions", "runs", id]) => get_run(state, &key, id),
        ("GET", ["git", "ref", "heads", branch @ ..]) if !branch.is_empty() => {
            get_ref(state, &key, &branch.join("/"))
        }
        ("POST", ["git", "refs"]) => create_ref(state, req, &key),
        ("GET", ["contents", path @ ..]) => get_contents(state, req, &key, &path.join("/")),
        ("PUT", ["contents", path @ ..]) if !path.is_empty() => {
            put_contents(state, req, &key, &path.join("/"))
        }
        ("GET", ["pulls"]) => list_pulls(state, req, &key),
        ("POST", ["pulls"]) => create_pull(state, req, &key),
        ("GET", ["pulls", number]) => get_pull(state, &key, number),
        ("PATCH", ["pulls", number]) => update_pull(state, req, &key, number),
        _ => Err(Reply::not_found(DOCS)),
    }
}

fn repo<'s>(state: &'s State, key: &str) -> Result<&'s Repo, Reply> {
    state.repos.get(key).ok_or_else(|| Reply::not_found(DOCS_REPO))
}

/// An archived repository refuses every write.
fn writable<'s>(state: &'s mut State, key: &str) -> Result<&'s mut Repo, Reply> {
    let repo = state
        .repos
        .get_mut(key)
        .ok_or_else(|| Reply::not_found(DOCS_REPO))?;
    if repo.archived {
        return Err(Reply::error(
            403,
            "Repository was archived so is read-only.",
            DOCS,
        ));
    }
    Ok(repo)
}

// --- Actions -------------------------------------------------------------------------

fn get_workflow(state: &State, key: &str, id: &str) -> Outcome {
    let repo = repo(state, key)?;
    let workflow = repo.workflow(id).ok_or_else(|| Reply::not_found(DOCS_WORKFLOW))?;
    Ok(Reply::ok(render::workflow(&state.base_url, repo, workflow)))
}

fn set_workflow_enabled(state: &mut State, key: &str, id: &str, enable: bool) -> Outcome {
    let repo = writable(state, key)?;
    let workflow = repo
        .workflow_mut(id)
        .ok_or_else(|| Reply::not_found(DOCS_ENABLE))?;
    workflow.state = if enable { "active" } else { "disabled_manually" }.to_string();
    workflow.updated_at = now_rfc3339();
    Ok(Reply::no_content())
}

/// The `status` filter accepts both statuses and conclusions.
fn run_matches_status(run: &Run, status: &str) -> bool {
    run.status == status || run.conclusion.as_deref() == Some(status)
}

fn list_runs(state: &State, req: &Request, key: &str, id: &str) -> Outcome {
    let repo = repo(state, key)?;
    let workflow = repo.workflow(id).ok_or_else(|| Reply::not_found(DOCS_RUNS))?;
    let mut runs: Vec<&Run> = repo
        .runs
        .iter()
        .filter(|r| r.workflow_path == workflow.path)
        .filter(|r| req.param("branch").is_none_or(|b| r.head_branch == b))
        .filter(|r| req.param("event").is_none_or(|e| r.event == e))
        .filter(|r| req.param("status").is_none_or(|s| run_matches_status(r, s)))
        .collect();
    // Newest first; times are normalized to UTC `Z`, so they order as strings.
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let (per_page, page) = req.pagination();
    let total = runs.len();
    let items: Vec<Value> = runs
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| render::run(&state.base_url, repo, r))
        .collect();
    let reply = Reply::ok(json!({"total_count": total, "workflow_runs": items}));
    Ok(with_links(reply, &state.base_url, req, page, per_page, total))
}

fn get_run(state: &State, key: &str, id: &str) -> Outcome {
    let repo = repo(state, key)?;
    let run = id
        .parse::<u64>()
        .ok()
        .and_then(|id| repo.runs.iter().find(|r| r.id == id))
        .ok_or_else(|| Reply::not_found(DOCS_RUN))?;
    Ok(Reply::ok(render::run(&state.base_url, repo, run)))
}

// --- Git refs ------------------------------------------------------------------------

fn get_ref(state: &State, key: &str, branch: &str) -> Outcome {
    let repo = repo(state, key)?;
    let sha = repo
        .branches
        .get(branch)
        .ok_or_else(|| Reply::not_found(DOCS_GET_REF))?;
    Ok(Reply::ok(render::git_ref(&state.base_url, repo, branch, sha)))
}

fn create_ref(state: &mut State, req: &Request, key: &str) -> Outcome {
    let body = req.json_body()?;
    let invalid = |message: &str| Reply::error(422, message, DOCS_CREATE_REF);
    let Some(full_ref) = body.get("ref").and_then(Value::as_str) else {
        return Err(invalid("Invalid request.\n\n\"ref\" wasn't supplied."));
    };
    let Some(sha) = body.get("sha").and_then(Value::as_str) else {
        return Err(invalid("Invalid request.\n\n\"sha\" wasn't supplied."));
    };
    // Only branches are modelled.
    let Some(branch) = full_ref
        .strip_prefix("refs/heads/")
        .filter(|b| valid_branch_name(b))
    else {
        return Err(invalid("Reference name is invalid"));
    };
    let base = state.base_url.clone();
    let State { repos, ids, .. } = state;
    let repo = repos.get_mut(key).ok_or_else(|| Reply::not_found(DOCS_REPO))?;
    if repo.archived {
        return Err(Reply::error(
            403,
            "Repository was archived so is read-only.",
            DOCS,
        ));
    }
    if repo.branches.contains_key(branch) {
        return Err(invalid("Reference already exists"));
    }
    if !repo.commits.contains_key(sha) {
        return Err(invalid("Object does not exist"));
    }
    repo.move_branch(branch, sha.to_string(), ids);
    let body = render::git_ref(&base, repo, branch, sha);
    let location = format!("{base}/repos/{}/git/refs/heads/{branch}", repo.full_name());
    Ok(Reply::json(201, body).with_header("location", location))
}

fn valid_branch_name(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('/')
        && !branch.ends_with('/')
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
}

// --- Contents ------------------------------------------------------------------------

fn get_contents(state: &State, req: &Request, key: &str, path: &str) -> Outcome {
    let repo = repo(state, key)?;
    let git_ref = req.param("ref").unwrap_or(&repo.default_branch);
    let commit = repo.resolve(git_ref).ok_or_else(|| {
        Reply::error(
            404,
            &format!("No commit found for the ref {git_ref}"),
            DOCS_GET_CONTENT,
        )
    })?;
    let path = path.trim_matches('/');
    if let Some(bytes) = commit.tree.get(path) {
        return Ok(Reply::ok(render::file_content(
            &state.base_url,
            repo,
            git_ref,
            path,
            bytes,
        )));
    }
    if path.is_empty() || commit.is_dir(path) {
        let entries: Vec<Value> = commit
            .children(path)
            .into_iter()
            .map(|(name, is_dir)| {
                let child = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                let blob = if is_dir {
                    None
                } else {
                    commit.tree.get(&child).map(Vec::as_slice)
                };
                render::content_entry(&state.base_url, repo, git_ref, &child, blob)
            })
            .collect();
        return Ok(Reply::ok(Value::Array(entries)));
    }
    Err(Reply::not_found(DOCS_GET_CONTENT))
}

fn put_contents(state: &mut State, req: &Request, key: &str, path: &str) -> Outcome {
    let body = req.json_body()?;
    let invalid = |message: &str| Reply::error(422, message, DOCS_PUT_CONTENT);
    let Some(message) = body.get("message").and_then(Value::as_str) else {
        return Err(invalid("Invalid request.\n\n\"message\" wasn't supplied."));
    };
    let Some(encoded) = body.get("content").and_then(Value::as_str) else {
        return Err(invalid("Invalid request.\n\n\"content\" wasn't supplied."));
    };
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let Ok(content) = base64::engine::general_purpose::STANDARD.decode(compact) else {
        return Err(invalid("content is not valid Base64"));
    };
    let given_sha = body.get("sha").and_then(Value::as_str);
    let path = path.trim_matches('/').to_string();

    let deny_workflows = state.deny_workflow_writes;
    let base = state.base_url.clone();
    let State { repos, ids, .. } = state;
    let repo = repos.get_mut(key).ok_or_else(|| Reply::not_found(DOCS_REPO))?;
    if repo.archived {
        return Err(Reply::error(
            403,
            "Repository was archived so is read-only.",
            DOCS,
        ));
    }
    let branch = body
        .get("branch")
        .and_then(Value::as_str)
        .unwrap_or(&repo.default_branch)
        .to_string();
    let Some(head) = repo.branch_head(&branch) else {
        return Err(Reply::error(
            404,
            &format!("Branch {branch} not found"),
            DOCS_PUT_CONTENT,
        ));
    };
    match (head.tree.get(&path), given_sha) {
        (Some(_), None) => return Err(invalid("Invalid request.\n\n\"sha\" wasn't supplied.")),
        (Some(existing), Some(sha)) if sha1::git_blob(existing) != sha => {
            return Err(Reply::error(
                409,
                &format!("{path} does not match {sha}"),
                DOCS_PUT_CONTENT,
            ));
        }
        _ => {}
    }
    if head.is_dir(&path) {
        return Err(invalid("Invalid request.\n\n\"path\" is a directory."));
    }
    if deny_workflows && path.starts_with(".github/workflows/") {
        let message = if req.as_app {
            format!(
                "refusing to allow a GitHub App to create or update workflow `{path}` without `workflows` permission"
            )
        } else {
            format!(
                "refusing to allow a Personal Access Token to create or update workflow `{path}` without `workflow` scope"
            )
        };
        return Err(Reply::error(403, &message, DOCS_PUT_CONTENT));
    }
    let created = !head.tree.contains_key(&path);
    let sha = repo
        .commit_files(&branch, vec![(path.clone(), content.clone())], message, ids)
        .ok_or_else(|| Reply::error(404, &format!("Branch {branch} not found"), DOCS_PUT_CONTENT))?;
    let commit = repo
        .commits
        .get(&sha)
        .map(|c| render::commit(&base, repo, c))
        .unwrap_or(Value::Null);
    let entry = render::content_entry(&base, repo, &branch, &path, Some(&content));
    Ok(Reply::json(
        if created { 201 } else { 200 },
        json!({"content": entry, "commit": commit}),
    ))
}

// --- Pull requests -------------------------------------------------------------------

/// `owner:branch` or `branch`, as the `head` parameter accepts it; `None` for another owner.
fn head_branch<'h>(repo: &Repo, head: &'h str) -> Option<&'h str> {
    match head.split_once(':') {
        Some((owner, branch)) => owner.eq_ignore_ascii_case(&repo.owner).then_some(branch),
        None => Some(head),
    }
}

fn list_pulls(state: &State, req: &Request, key: &str) -> Outcome {
    let repo = repo(state, key)?;
    let wanted_state = req.param("state").unwrap_or("open");
    let head = req.param("head");
    let mut pulls: Vec<&PullRequest> = repo
        .pulls
        .iter()
        .filter(|p| wanted_state == "all" || p.state == wanted_state)
        .filter(|p| head.is_none_or(|h| head_branch(repo, h) == Some(p.head_ref.as_str())))
        .filter(|p| req.param("base").is_none_or(|b| p.base_ref == b))
        .collect();
    pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
    if req.param("direction") == Some("asc") {
        pulls.reverse();
    }
    let (per_page, page) = req.pagination();
    let total = pulls.len();
    let items: Vec<Value> = pulls
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| render::pull_request(&state.base_url, repo, p))
        .collect();
    Ok(with_links(
        Reply::ok(Value::Array(items)),
        &state.base_url,
        req,
        page,
        per_page,
        total,
    ))
}

fn create_pull(state: &mut State, req: &Request, key: &str) -> Outcome {
    let body = req.json_body()?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let missing: Vec<Value> = ["title", "head", "base"]
        .into_iter()
        .filter(|f| text(f).is_none())
        .map(|f| json!({"resource": "PullRequest", "field": f, "code": "missing_field"}))
        .collect();
    if !missing.is_empty() {
        return Err(Reply::validation_failed(DOCS_CREATE_PULL, Value::Array(missing)));
    }
    let (title, head, base_ref) = (
        text("title").unwrap_or_default(),
        text("head").unwrap_or_default(),
        text("base").unwrap_or_default(),
    );
    let invalid = |field: &str| {
        Reply::validation_failed(
            DOCS_CREATE_PULL,
            json!([{"resource": "PullRequest", "field": field, "code": "invalid"}]),
        )
    };
    let custom = |message: String| {
        Reply::validation_failed(
            DOCS_CREATE_PULL,
            json!([{"resource": "PullRequest", "code": "custom", "message": message}]),
        )
    };

    let base_url = state.base_url.clone();
    let id = state.ids.next();
    let repo = writable(state, key)?;
    let head_ref = head_branch(repo, &head)
        .map(str::to_string)
        .ok_or_else(|| invalid("head"))?;
    let head_sha = repo
        .branches
        .get(&head_ref)
        .cloned()
        .ok_or_else(|| invalid("head"))?;
    let base_sha = repo
        .branches
        .get(&base_ref)
        .cloned()
        .ok_or_else(|| invalid("base"))?;
    if repo
        .pulls
        .iter()
        .any(|p| p.state == "open" && p.head_ref == head_ref && p.base_ref == base_ref)
    {
        return Err(custom(format!(
            "A pull request already exists for {}:{head_ref}.",
            repo.owner
        )));
    }
    if repo.is_ancestor(&head_sha, &base_sha) {
        return Err(custom(format!("No commits between {base_ref} and {head_ref}")));
    }
    let now = now_rfc3339();
    let number = repo.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    repo.pulls.push(PullRequest {
        id,
        number,
        title,
        body: text("body"),
        head_ref,
        base_ref,
        state: "open".to_string(),
        draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
        created_at: now.clone(),
        updated_at: now,
        closed_at: None,
        merged_at: None,
        merge_commit_sha: None,
        closed_head_sha: None,
    });
    let pull = repo
        .pulls
        .last()
        .map(|p| render::pull_request(&base_url, repo, p))
        .unwrap_or(Value::Null);
    let location = format!("{base_url}/repos/{}/pulls/{number}", repo.full_name());
    Ok(Reply::json(201, pull).with_header("location", location))
}

fn get_pull(state: &State, key: &str, number: &str) -> Outcome {
    let repo = repo(state, key)?;
    let pull = number
        .parse::<u64>()
        .ok()
        .and_then(|n| repo.pulls.iter().find(|p| p.number == n))
        .ok_or_else(|| Reply::not_found(DOCS_GET_PULL))?;
    let mut body = render::pull_request(&state.base_url, repo, pull);
    if let Some(object) = body.as_object_mut() {
        object.insert("merged".into(), json!(pull.merged_at.is_some()));
        object.insert("mergeable".into(), json!(pull.state == "open"));
    }
    Ok(Reply::ok(body))
}

fn update_pull(state: &mut State, req: &Request, key: &str, number: &str) -> Outcome {
    let body = req.json_body()?;
    let base_url = state.base_url.clone();
    let repo = writable(state, key)?;
    let index = number
        .parse::<u64>()
        .ok()
        .and_then(|n| repo.pulls.iter().position(|p| p.number == n))
        .ok_or_else(|| Reply::not_found(DOCS_UPDATE_PULL))?;
    let head_sha = repo.pull_head_sha(&repo.pulls[index]);
    let pull = &mut repo.pulls[index];
    if let Some(title) = body.get("title").and_then(Value::as_str) {
        pull.title = title.to_string();
    }
    if let Some(text) = body.get("body") {
        pull.body = text.as_str().map(str::to_string);
    }
    if let Some(base) = body.get("base").and_then(Value::as_str) {
        pull.base_ref = base.to_string();
    }
    match body.get("state").and_then(Value::as_str) {
        Some("closed") if pull.state == "open" => {
            pull.state = "closed".to_string();
            pull.closed_at = Some(now_rfc3339());
            pull.closed_head_sha = Some(head_sha);
        }
        Some("open") if pull.state == "closed" && pull.merged_at.is_none() => {
            pull.state = "open".to_string();
            pull.closed_at = None;
            pull.closed_head_sha = None;
        }
        Some("open" | "closed") | None => {}
        Some(_) => {
            return Err(Reply::validation_failed(
                DOCS_UPDATE_PULL,
                json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
            ));
        }
    }
    pull.updated_at = now_rfc3339();
    Ok(Reply::ok(render::pull_request(
        &base_url,
        repo,
        &repo.pulls[index],
    )))
}

// --- Rate limit and app authentication -----------------------------------------------

fn rate_limit(state: &State) -> Reply {
    let b = &state.budgets;
    let core = render::rate_resource(b.core.limit, b.core.used, b.reset);
    let graphql = render::rate_resource(b.graphql.limit, b.graphql.used, b.reset);
    let minute = super::state::now_epoch() + 60;
    Reply::ok(json!({
        "resources": {
            "core": core,
            "graphql": graphql,
            "search": render::rate_resource(30, 0, minute),
            "code_search": render::rate_resource(10, 0, minute),
            "integration_manifest": render::rate_resource(5_000, 0, b.reset),
        },
        "rate": core,
    }))
}

/// `POST /app/installations/{id}/access_tokens` (the JWT was checked by the server).
fn installation_token(state: &mut State, id: &str) -> Outcome {
    let id: u64 = id.parse().map_err(|_| Reply::not_found(DOCS_APP_TOKEN))?;
    state.issued_installation_tokens += 1;
    let seed = format!(
        "installation {id} token {} {}",
        state.issued_installation_tokens,
        state.ids.next()
    );
    let token = format!("ghs_{}", &sha1::hex(seed.as_bytes())[..36]);
    let (expires_epoch, expires_at) = render::in_one_hour();
    state.installation_tokens.insert(token.clone(), expires_epoch);
    let workflows = if state.deny_workflow_writes {
        None
    } else {
        Some("write")
    };
    let mut permissions = json!({
        "actions": "write",
        "contents": "write",
        "metadata": "read",
        "pull_requests": "write",
    });
    if let (Some(level), Some(object)) = (workflows, permissions.as_object_mut()) {
        object.insert("workflows".into(), json!(level));
    }
    Ok(Reply::json(
        201,
        json!({
            "token": token,
            "expires_at": expires_at,
            "permissions": permissions,
            "repository_selection": "all",
        }),
    ))
}

// --- Pagination ----------------------------------------------------------------------

/// GitHub's `Link` header (`next`, `last`, `first`, `prev`) for a paginated list.
fn with_links(reply: Reply, base: &str, req: &Request, page: usize, per_page: usize, total: usize) -> Reply {
    let last = total.div_ceil(per_page).max(1);
    if last <= 1 {
        return reply;
    }
    let url = |p: usize| {
        let mut query: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.push(format!("per_page={per_page}"));
        query.push(format!("page={p}"));
        format!("<{base}{}?{}>", req.path, query.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    reply.with_header("link", links.join(", "))
}
