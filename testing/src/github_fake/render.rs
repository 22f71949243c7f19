//! GitHub's REST payloads, built from the model. Field sets follow the documented
//! responses (docs.github.com/rest), trimmed to what a client can reasonably read.

use base64::Engine as _;
use serde_json::{Value, json};

use super::sha1;
use super::state::{Commit, PullRequest, Repo, Run, Workflow, epoch_rfc3339, now_epoch};

/// GitHub's legacy global node id: base64 of `0{len(type)}:{type}{id}`.
pub(super) fn node_id(type_name: &str, id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("0{}:{type_name}{id}", type_name.len()))
}

fn api(base: &str, repo: &Repo) -> String {
    format!("{base}/repos/{}", repo.full_name())
}

fn owner(base: &str, repo: &Repo) -> Value {
    json!({
        "login": repo.owner,
        "id": 1,
        "node_id": node_id("Organization", 1),
        "type": "Organization",
        "url": format!("{base}/users/{}", repo.owner),
        "html_url": format!("https://github.com/{}", repo.owner),
        "site_admin": false,
    })
}

pub(super) fn repository(base: &str, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "owner": owner(base, repo),
        "private": repo.private,
        "visibility": if repo.private { "private" } else { "public" },
        "html_url": repo.html_url(),
        "url": api(base, repo),
        "fork": repo.fork,
        "archived": repo.archived,
        "topics": repo.topics,
        "disabled": false,
        "default_branch": repo.default_branch,
        "created_at": repo.created_at,
        "updated_at": repo.pushed_at,
        "pushed_at": repo.pushed_at,
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
    })
}

/// A shortened repository, as embedded in pull requests.
fn repository_summary(base: &str, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "private": repo.private,
        "html_url": repo.html_url(),
        "url": api(base, repo),
    })
}

pub(super) fn workflow(base: &str, repo: &Repo, workflow: &Workflow) -> Value {
    let name = repo.workflow_name(&workflow.path);
    json!({
        "id": workflow.id,
        "node_id": node_id("Workflow", workflow.id),
        "name": name,
        "path": workflow.path,
        "state": workflow.state,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "url": format!("{}/actions/workflows/{}", api(base, repo), workflow.id),
        "html_url": format!("{}/blob/{}/{}", repo.html_url(), repo.default_branch, workflow.path),
        "badge_url": format!("{}/workflows/{}/badge.svg", repo.html_url(), encode_path_segment(&name)),
    })
}

pub(super) fn run(base: &str, repo: &Repo, run: &Run) -> Value {
    let workflow_id = repo
        .workflows
        .get(&run.workflow_path)
        .map(|w| w.id)
        .unwrap_or_default();
    let url = format!("{}/actions/runs/{}", api(base, repo), run.id);
    json!({
        "id": run.id,
        "node_id": node_id("WorkflowRun", run.id),
        "name": repo.workflow_name(&run.workflow_path),
        "display_title": repo.workflow_name(&run.workflow_path),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.workflow_path,
        "run_number": run.run_number,
        "run_attempt": 1,
        "event": run.event,
        "status": run.status,
        "conclusion": run.conclusion,
        "workflow_id": workflow_id,
        "url": url,
        "html_url": format!("{}/actions/runs/{}", repo.html_url(), run.id),
        "jobs_url": format!("{url}/jobs"),
        "logs_url": format!("{url}/logs"),
        "workflow_url": format!("{}/actions/workflows/{workflow_id}", api(base, repo)),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "run_started_at": run.run_started_at,
        "pull_requests": [],
        "repository": repository_summary(base, repo),
    })
}

/// Base64 as GitHub's contents API writes it: lines of 60 characters, each ending in `\n`.
pub(super) fn wrapped_base64(content: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(content);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for line in flat.as_bytes().chunks(60) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out
}

/// A contents entry without its content: what directory listings and writes return.
pub(super) fn content_entry(
    base: &str,
    repo: &Repo,
    git_ref: &str,
    path: &str,
    blob: Option<&[u8]>,
) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (kind, sha, size) = match blob {
        Some(bytes) => ("file", sha1::git_blob(bytes), bytes.len()),
        None => ("dir", sha1::hex(format!("tree {path}").as_bytes()), 0),
    };
    let url = format!("{}/contents/{}?ref={}", api(base, repo), path, git_ref);
    let git_url = format!(
        "{}/git/{}s/{sha}",
        api(base, repo),
        if blob.is_some() { "blob" } else { "tree" }
    );
    let html_url = format!(
        "{}/{}/{git_ref}/{path}",
        repo.html_url(),
        if blob.is_some() { "blob" } else { "tree" }
    );
    let download_url = blob.map(|_| {
        format!(
            "https://raw.githubusercontent.com/{}/{git_ref}/{path}",
            repo.full_name()
        )
    });
    json!({
        "type": kind,
        "name": name,
        "path": path,
        "sha": sha,
        "size": size,
        "url": url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": download_url,
        "_links": {"self": url, "git": git_url, "html": html_url},
    })
}

/// The full file payload of `GET /contents/{path}`.
pub(super) fn file_content(base: &str, repo: &Repo, git_ref: &str, path: &str, bytes: &[u8]) -> Value {
    let mut entry = content_entry(base, repo, git_ref, path, Some(bytes));
    if let Some(object) = entry.as_object_mut() {
        object.insert("encoding".into(), json!("base64"));
        object.insert("content".into(), json!(wrapped_base64(bytes)));
    }
    entry
}

pub(super) fn commit(base: &str, repo: &Repo, commit: &Commit) -> Value {
    let person = json!({"name": "backup-warden", "email": "backup-warden@users.noreply.github.com", "date": commit.date});
    json!({
        "sha": commit.sha,
        "node_id": node_id("Commit", u64::from_str_radix(&commit.sha[..8], 16).unwrap_or_default()),
        "url": format!("{}/git/commits/{}", api(base, repo), commit.sha),
        "html_url": format!("{}/commit/{}", repo.html_url(), commit.sha),
        "author": person,
        "committer": person,
        "message": commit.message,
        "tree": {"sha": commit.tree_sha(), "url": format!("{}/git/trees/{}", api(base, repo), commit.tree_sha())},
        "parents": commit.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{}/git/commits/{p}", api(base, repo)),
            "html_url": format!("{}/commit/{p}", repo.html_url()),
        })).collect::<Vec<_>>(),
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null},
    })
}

pub(super) fn git_ref(base: &str, repo: &Repo, branch: &str, sha: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": node_id("Ref", repo.id),
        "url": format!("{}/git/refs/heads/{branch}", api(base, repo)),
        "object": {"sha": sha, "type": "commit", "url": format!("{}/git/commits/{sha}", api(base, repo))},
    })
}

pub(super) fn pull_request(base: &str, repo: &Repo, pull: &PullRequest) -> Value {
    let url = format!("{}/pulls/{}", api(base, repo), pull.number);
    let base_sha = repo.branches.get(&pull.base_ref).cloned().unwrap_or_default();
    json!({
        "id": pull.id,
        "node_id": node_id("PullRequest", pull.id),
        "number": pull.number,
        "state": pull.state,
        "locked": false,
        "title": pull.title,
        "body": pull.body,
        "draft": pull.draft,
        "user": {"login": "backup-warden[bot]", "id": 2, "type": "Bot"},
        "url": url,
        "html_url": format!("{}/pull/{}", repo.html_url(), pull.number),
        "diff_url": format!("{}/pull/{}.diff", repo.html_url(), pull.number),
        "issue_url": format!("{}/issues/{}", api(base, repo), pull.number),
        "head": {
            "label": format!("{}:{}", repo.owner, pull.head_ref),
            "ref": pull.head_ref,
            "sha": repo.pull_head_sha(pull),
            "repo": repository_summary(base, repo),
        },
        "base": {
            "label": format!("{}:{}", repo.owner, pull.base_ref),
            "ref": pull.base_ref,
            "sha": base_sha,
            "repo": repository_summary(base, repo),
        },
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merge_commit_sha,
    })
}

/// One resource of `GET /rate_limit`.
pub(super) fn rate_resource(limit: u64, used: u64, reset: i64) -> Value {
    json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset})
}

/// An error body as GitHub writes it.
pub(super) fn error(status: u16, message: &str, documentation_url: &str) -> Value {
    json!({"message": message, "documentation_url": documentation_url, "status": status.to_string()})
}

/// `expires_at` one hour from now.
pub(super) fn in_one_hour() -> (i64, String) {
    let at = now_epoch() + 3_600;
    (at, epoch_rfc3339(at))
}

fn encode_path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
