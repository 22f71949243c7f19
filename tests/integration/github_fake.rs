//! The fake GitHub answers as GitHub documents: GraphQL batches, contents writes and their
//! conflicts, conditional GETs, pull requests, workflows and runs, the missing `workflow`
//! scope, rate limits and the app installation-token flow.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use backup_warden_testing::github_fake::{GitHubFake, git_blob_sha};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// --- A tiny HTTP/1.1 client ------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn remaining(&self) -> u64 {
        self.header("x-ratelimit-remaining")
            .expect("x-ratelimit-remaining")
            .parse()
            .unwrap()
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the answer.
async fn send(
    github: &GitHubFake,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let authority = github.base_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/vnd.github+json\r\nUser-Agent: backup-warden-tests\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        head.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(body.as_bytes()).await.expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).expect("hex size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

/// A client holding the fake's token.
struct Api<'a> {
    github: &'a GitHubFake,
    auth: String,
}

impl<'a> Api<'a> {
    fn new(github: &'a GitHubFake) -> Self {
        Self {
            github,
            auth: format!("Bearer {}", github.token()),
        }
    }

    fn with_token(github: &'a GitHubFake, token: &str) -> Self {
        Self {
            github,
            auth: format!("token {token}"),
        }
    }

    async fn get(&self, path: &str) -> Response {
        send(self.github, "GET", path, Some(&self.auth), &[], None).await
    }

    async fn get_if_none_match(&self, path: &str, etag: &str) -> Response {
        send(
            self.github,
            "GET",
            path,
            Some(&self.auth),
            &[("If-None-Match", etag)],
            None,
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> Response {
        send(self.github, "PUT", path, Some(&self.auth), &[], Some(&body)).await
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        send(self.github, "POST", path, Some(&self.auth), &[], Some(&body)).await
    }

    async fn put_empty(&self, path: &str) -> Response {
        send(self.github, "PUT", path, Some(&self.auth), &[], None).await
    }

    async fn graphql(&self, query: &str, variables: Value) -> Response {
        self.post("/graphql", json!({"query": query, "variables": variables}))
            .await
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

const WORKFLOW: &str = ".github/workflows/backup-daily.yml";
const WORKFLOW_YAML: &str = "name: Daily backup\non:\n  schedule:\n    - cron: '0 3 * * *'\njobs: {}\n";

/// The query shape the controller sends, for the given repositories.
fn batch_query(repos: &[&str]) -> String {
    let mut query = String::from("query {\n");
    for (i, full_name) in repos.iter().enumerate() {
        let (owner, name) = full_name.split_once('/').unwrap();
        query.push_str(&format!(
            "  r{i}: repository(owner: \"{owner}\", name: \"{name}\") {{ nameWithOwner isArchived \
             defaultBranchRef {{ name target {{ oid }} }} \
             file: object(expression: \"HEAD:{WORKFLOW}\") {{ ... on Blob {{ oid text }} }} }}\n"
        ));
    }
    query.push_str("  rateLimit { cost remaining resetAt }\n}\n");
    query
}

// --- Tests -----------------------------------------------------------------------------

#[test]
fn blob_shas_are_git_object_ids() {
    assert_eq!(git_blob_sha(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    assert_eq!(
        git_blob_sha(b"hello\n"),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    assert_eq!(
        git_blob_sha(b"test content\n"),
        "d670460b4b4aece5915caf5c68d12f560a9fe3e4"
    );
}

#[tokio::test]
async fn graphql_batch_reports_missing_repositories_and_present_or_absent_files() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/with-file", "main");
    github.add_repo("acme/without-file", "trunk");
    github.set_archived("acme/without-file", true);
    github.put_file("acme/with-file", "main", WORKFLOW, WORKFLOW_YAML);
    let api = Api::new(&github);

    let response = api
        .graphql(
            &batch_query(&["acme/with-file", "acme/without-file", "acme/gone"]),
            json!({}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-ratelimit-resource"), Some("graphql"));
    let body = response.json();
    let data = &body["data"];

    assert_eq!(data["r0"]["nameWithOwner"], "acme/with-file");
    assert_eq!(data["r0"]["isArchived"], false);
    assert_eq!(data["r0"]["defaultBranchRef"]["name"], "main");
    assert_eq!(
        data["r0"]["defaultBranchRef"]["target"]["oid"].as_str(),
        github.branch_sha("acme/with-file", "main").as_deref()
    );
    assert_eq!(data["r0"]["file"]["text"], WORKFLOW_YAML);
    assert_eq!(data["r0"]["file"]["oid"], git_blob_sha(WORKFLOW_YAML.as_bytes()));

    assert_eq!(data["r1"]["isArchived"], true);
    assert_eq!(data["r1"]["defaultBranchRef"]["name"], "trunk");
    assert_eq!(data["r1"]["file"], Value::Null);

    assert_eq!(data["r2"], Value::Null);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["type"], "NOT_FOUND");
    assert_eq!(errors[0]["path"], json!(["r2"]));
    assert_eq!(
        errors[0]["message"],
        "Could not resolve to a Repository with the name 'acme/gone'."
    );

    assert_eq!(data["rateLimit"]["cost"], 1);
    assert_eq!(data["rateLimit"]["remaining"], 4_999);
    assert_eq!(response.remaining(), 4_999);
    assert_eq!(github.graphql_batches(), vec![3]);

    // Variables, a named fragment and a branch expression work too.
    let query = "query Batch($owner: String!, $name: String!) { \
                 a: repository(owner: $owner, name: $name) { ...Repo } } \
                 fragment Repo on Repository { nameWithOwner object(expression: \"main:README.md\") { __typename ... on Blob { text } } }";
    let response = api
        .graphql(query, json!({"owner": "acme", "name": "with-file"}))
        .await;
    let body = response.json();
    assert_eq!(body["data"]["a"]["object"]["__typename"], "Blob");
    assert_eq!(body["data"]["a"]["object"]["text"], "# with-file\n");

    // More than 100 repositories in one query is refused.
    let names: Vec<String> = (0..101).map(|i| format!("acme/r{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let body = api.graphql(&batch_query(&names), json!({})).await.json();
    assert_eq!(body["errors"][0]["type"], "MAX_NODE_LIMIT_EXCEEDED");
    assert!(body.get("data").is_none());
    assert_eq!(github.graphql_batches(), vec![3, 1, 101]);

    // Unknown fields fail validation as a whole.
    let body = api
        .graphql(
            "{ repository(owner: \"acme\", name: \"with-file\") { stars } }",
            json!({}),
        )
        .await
        .json();
    assert_eq!(
        body["errors"][0]["message"],
        "Field 'stars' doesn't exist on type 'Repository'"
    );
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn contents_create_then_conflicts_on_stale_or_missing_sha() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let api = Api::new(&github);
    let path = "/repos/acme/api/contents/.github/workflows/backup-daily.yml";

    let created = api
        .put(
            path,
            json!({"message": "Add backup", "content": b64(WORKFLOW_YAML)}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    let sha = created["content"]["sha"].as_str().unwrap().to_string();
    assert_eq!(sha, git_blob_sha(WORKFLOW_YAML.as_bytes()));
    assert_eq!(created["content"]["path"], WORKFLOW);
    assert_eq!(created["content"]["name"], "backup-daily.yml");
    assert_eq!(created["commit"]["message"], "Add backup");
    assert_eq!(
        created["commit"]["sha"].as_str(),
        github.branch_sha("acme/api", "main").as_deref()
    );
    assert_eq!(
        github.file("acme/api", "main", WORKFLOW).as_deref(),
        Some(WORKFLOW_YAML)
    );

    // Reading it back: base64 in 60-character lines, the same blob sha.
    let long = "x".repeat(200);
    github.put_file("acme/api", "main", "long.txt", &long);
    let file = api.get("/repos/acme/api/contents/long.txt?ref=main").await.json();
    assert_eq!(file["type"], "file");
    assert_eq!(file["encoding"], "base64");
    let content = file["content"].as_str().unwrap();
    assert!(content.lines().all(|l| l.len() <= 60) && content.lines().next().unwrap().len() == 60);
    assert!(content.ends_with('\n'));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(content.replace('\n', ""))
        .unwrap();
    assert_eq!(decoded, long.as_bytes());
    assert_eq!(file["sha"], git_blob_sha(long.as_bytes()));
    assert_eq!(file["size"], 200);

    let missing_sha = api
        .put(path, json!({"message": "Again", "content": b64("name: x\n")}))
        .await;
    assert_eq!(missing_sha.status, 422);
    assert_eq!(
        missing_sha.json()["message"],
        "Invalid request.\n\n\"sha\" wasn't supplied."
    );

    let stale = "0123456789012345678901234567890123456789";
    let conflict = api
        .put(
            path,
            json!({"message": "Again", "content": b64("name: x\n"), "sha": stale}),
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.json()["message"],
        format!("{WORKFLOW} does not match {stale}")
    );

    let updated = api
        .put(
            path,
            json!({"message": "Update", "content": b64("name: x\n"), "sha": sha}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        github.file("acme/api", "main", WORKFLOW).as_deref(),
        Some("name: x\n")
    );

    let no_branch = api
        .put(
            "/repos/acme/api/contents/a.txt",
            json!({"message": "m", "content": b64("a"), "branch": "nope"}),
        )
        .await;
    assert_eq!(no_branch.status, 404);
    assert_eq!(api.get("/repos/acme/api/contents/absent.txt").await.status, 404);
    assert_eq!(api.get("/repos/acme/nope/contents/README.md").await.status, 404);

    github.set_archived("acme/api", true);
    let archived = api
        .put(
            "/repos/acme/api/contents/a.txt",
            json!({"message": "m", "content": b64("a")}),
        )
        .await;
    assert_eq!(archived.status, 403);
    assert_eq!(
        archived.json()["message"],
        "Repository was archived so is read-only."
    );
}

#[tokio::test]
async fn etag_answers_304_which_does_not_count_against_the_rate_limit() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    github.put_file("acme/api", "main", WORKFLOW, WORKFLOW_YAML);
    let api = Api::new(&github);

    let first = api.get("/repos/acme/api").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["default_branch"], "main");
    assert_eq!(first.json()["full_name"], "acme/api");
    let etag = first.header("etag").expect("etag").to_string();
    let remaining = first.remaining();
    assert_eq!(remaining, 4_999);
    assert_eq!(first.header("x-ratelimit-limit"), Some("5000"));
    assert_eq!(first.header("x-ratelimit-used"), Some("1"));
    assert_eq!(first.header("x-ratelimit-resource"), Some("core"));
    assert!(first.header("x-ratelimit-reset").unwrap().parse::<u64>().unwrap() > now());

    let cached = api.get_if_none_match("/repos/acme/api", &etag).await;
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    assert_eq!(cached.remaining(), remaining, "a 304 is not charged");

    let other = api
        .get_if_none_match("/repos/acme/api", "W/\"something-else\"")
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.remaining(), remaining - 1);

    // The runs list's ETag changes when its runs do.
    let runs_path = "/repos/acme/api/actions/workflows/backup-daily.yml/runs?per_page=1";
    let runs = api.get(runs_path).await;
    let runs_etag = runs.header("etag").unwrap().to_string();
    assert_eq!(api.get_if_none_match(runs_path, &runs_etag).await.status, 304);
    github.add_run("acme/api", WORKFLOW, Some("success"), "2026-01-01T03:00:00Z");
    let changed = api.get_if_none_match(runs_path, &runs_etag).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(runs_etag.as_str()));

    let recorded = github.requests();
    assert_eq!(recorded.iter().filter(|r| r.status == 304).count(), 2);
    assert!(
        recorded
            .iter()
            .filter(|r| r.status == 304)
            .all(|r| r.if_none_match)
    );
    assert_eq!(recorded[0].path, "/repos/acme/api");
    assert_eq!(recorded[3].query, "per_page=1");
    assert_eq!(github.count("GET", "/repos/acme/api/actions/"), 3);
    github.reset_requests();
    assert!(github.requests().is_empty());
}

#[tokio::test]
async fn pull_request_flow_and_duplicates() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let api = Api::new(&github);
    let branch = "backup-warden/backup-daily";

    let main = api.get("/repos/acme/api/git/ref/heads/main").await.json();
    assert_eq!(main["ref"], "refs/heads/main");
    assert_eq!(main["object"]["type"], "commit");
    let main_sha = main["object"]["sha"].as_str().unwrap().to_string();
    assert_eq!(
        api.get(&format!("/repos/acme/api/git/ref/heads/{branch}"))
            .await
            .status,
        404
    );

    let created = api
        .post(
            "/repos/acme/api/git/refs",
            json!({"ref": format!("refs/heads/{branch}"), "sha": main_sha}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let again = api
        .post(
            "/repos/acme/api/git/refs",
            json!({"ref": format!("refs/heads/{branch}"), "sha": main_sha}),
        )
        .await;
    assert_eq!(again.status, 422);
    assert_eq!(again.json()["message"], "Reference already exists");
    let unknown = api
        .post(
            "/repos/acme/api/git/refs",
            json!({"ref": "refs/heads/x", "sha": "1".repeat(40)}),
        )
        .await;
    assert_eq!(unknown.status, 422);
    let got = api
        .get(&format!("/repos/acme/api/git/ref/heads/{branch}"))
        .await
        .json();
    assert_eq!(got["object"]["sha"], main_sha.as_str());
    assert_eq!(
        github.branches("acme/api"),
        vec![branch.to_string(), "main".to_string()]
    );

    let pull = json!({"title": "Add daily backup", "head": branch, "base": "main", "body": "Managed by backup-warden."});
    let empty = api.post("/repos/acme/api/pulls", pull.clone()).await;
    assert_eq!(empty.status, 422);
    assert_eq!(
        empty.json()["errors"][0]["message"],
        format!("No commits between main and {branch}")
    );

    let put = api
        .put(
            "/repos/acme/api/contents/.github/workflows/backup-daily.yml",
            json!({"message": "Add backup", "content": b64(WORKFLOW_YAML), "branch": branch}),
        )
        .await;
    assert_eq!(put.status, 201);
    assert_eq!(github.file("acme/api", "main", WORKFLOW), None);

    let opened = api.post("/repos/acme/api/pulls", pull.clone()).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let opened = opened.json();
    assert_eq!(opened["number"], 1);
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["head"]["ref"], branch);
    assert_eq!(opened["head"]["label"], format!("acme:{branch}"));
    assert_eq!(opened["base"]["ref"], "main");
    assert_eq!(opened["html_url"], "https://github.com/acme/api/pull/1");

    let duplicate = api.post("/repos/acme/api/pulls", pull).await;
    assert_eq!(duplicate.status, 422);
    let duplicate = duplicate.json();
    assert_eq!(duplicate["message"], "Validation Failed");
    assert_eq!(
        duplicate["errors"],
        json!([{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for acme:{branch}.")}])
    );

    let listed = api
        .get(&format!(
            "/repos/acme/api/pulls?state=open&head=acme:{}&base=main",
            branch.replace('/', "%2F")
        ))
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["number"], 1);
    let other_head = api
        .get("/repos/acme/api/pulls?state=open&head=acme:other")
        .await
        .json();
    assert_eq!(other_head, json!([]));

    let pulls = github.pull_requests("acme/api");
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (pulls[0].head_ref.as_str(), pulls[0].base.as_str()),
        (branch, "main")
    );
    assert_eq!(pulls[0].body.as_deref(), Some("Managed by backup-warden."));

    github.merge_pull_request("acme/api", 1);
    assert_eq!(
        github.file("acme/api", "main", WORKFLOW).as_deref(),
        Some(WORKFLOW_YAML)
    );
    assert!(github.pull_requests("acme/api")[0].merged);
    assert_eq!(
        api.get("/repos/acme/api/pulls?state=open").await.json(),
        json!([])
    );
    // Merged onto the default branch, the file is now a registered workflow.
    assert_eq!(
        api.get("/repos/acme/api/actions/workflows/backup-daily.yml")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn workflows_are_registered_from_the_default_branch_and_can_be_enabled() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let api = Api::new(&github);
    let by_file = "/repos/acme/api/actions/workflows/backup-daily.yml";
    assert_eq!(api.get(by_file).await.status, 404);

    github.put_file("acme/api", "main", WORKFLOW, WORKFLOW_YAML);
    github.put_file("acme/api", "main", ".github/workflows/unnamed.yaml", "on: push\n");
    let workflow = api.get(by_file).await.json();
    assert_eq!(workflow["name"], "Daily backup");
    assert_eq!(workflow["path"], WORKFLOW);
    assert_eq!(workflow["state"], "active");
    let id = workflow["id"].as_u64().unwrap();
    assert_eq!(Some(id), github.workflow_id("acme/api", WORKFLOW));
    assert_eq!(
        workflow["html_url"],
        format!("https://github.com/acme/api/blob/main/{WORKFLOW}")
    );
    let unnamed = api
        .get("/repos/acme/api/actions/workflows/unnamed.yaml")
        .await
        .json();
    assert_eq!(unnamed["name"], ".github/workflows/unnamed.yaml");

    github.set_workflow_state("acme/api", WORKFLOW, "disabled_inactivity");
    let by_id = format!("/repos/acme/api/actions/workflows/{id}");
    assert_eq!(api.get(&by_id).await.json()["state"], "disabled_inactivity");

    let enabled = api.put_empty(&format!("{by_id}/enable")).await;
    assert_eq!(enabled.status, 204);
    assert!(enabled.body.is_empty());
    assert_eq!(
        github.workflow_state("acme/api", WORKFLOW).as_deref(),
        Some("active")
    );
    assert_eq!(api.get(by_file).await.json()["state"], "active");

    assert_eq!(api.put_empty(&format!("{by_file}/disable")).await.status, 204);
    assert_eq!(
        github.workflow_state("acme/api", WORKFLOW).as_deref(),
        Some("disabled_manually")
    );
    assert_eq!(
        api.put_empty("/repos/acme/api/actions/workflows/nope.yml/enable")
            .await
            .status,
        404
    );

    // A workflow file only on another branch is not registered.
    github.create_branch("acme/api", "feature", "main");
    github.put_file(
        "acme/api",
        "feature",
        ".github/workflows/other.yml",
        "name: Other\n",
    );
    assert_eq!(
        api.get("/repos/acme/api/actions/workflows/other.yml")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_and_paginated() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    github.put_file("acme/api", "main", WORKFLOW, WORKFLOW_YAML);
    let api = Api::new(&github);
    let middle = github.add_run("acme/api", WORKFLOW, Some("failure"), "2026-01-02T03:00:00Z");
    let newest = github.add_run("acme/api", WORKFLOW, None, "2026-01-03T04:00:00+01:00");
    let oldest = github.add_run("acme/api", WORKFLOW, Some("success"), "2026-01-01T03:00:00Z");

    let response = api
        .get("/repos/acme/api/actions/workflows/backup-daily.yml/runs?per_page=2&page=1")
        .await;
    assert_eq!(response.status, 200);
    let link = response.header("link").expect("link header").to_string();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    let body = response.json();
    assert_eq!(body["total_count"], 3);
    let runs = body["workflow_runs"].as_array().unwrap();
    assert_eq!(
        runs.iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![newest, middle]
    );
    assert_eq!(runs[0]["status"], "in_progress");
    assert_eq!(runs[0]["conclusion"], Value::Null);
    assert_eq!(runs[0]["created_at"], "2026-01-03T03:00:00Z");
    assert_eq!(runs[0]["run_started_at"], "2026-01-03T03:00:00Z");
    assert_eq!(runs[1]["status"], "completed");
    assert_eq!(runs[1]["conclusion"], "failure");
    assert_eq!(runs[1]["event"], "schedule");
    assert_eq!(runs[1]["head_branch"], "main");
    assert_eq!(runs[1]["path"], WORKFLOW);
    assert_eq!(runs[1]["name"], "Daily backup");
    assert_eq!(runs[1]["run_number"], 1);
    assert_eq!(
        runs[1]["workflow_id"].as_u64(),
        github.workflow_id("acme/api", WORKFLOW)
    );
    assert_eq!(
        runs[1]["html_url"],
        format!("https://github.com/acme/api/actions/runs/{middle}")
    );

    let page2 = api
        .get("/repos/acme/api/actions/workflows/backup-daily.yml/runs?per_page=2&page=2")
        .await
        .json();
    assert_eq!(page2["workflow_runs"][0]["id"].as_u64(), Some(oldest));

    let successes = api
        .get("/repos/acme/api/actions/workflows/backup-daily.yml/runs?status=success")
        .await
        .json();
    assert_eq!(successes["total_count"], 1);
    let completed = api
        .get("/repos/acme/api/actions/workflows/backup-daily.yml/runs?status=completed&branch=main&event=schedule")
        .await
        .json();
    assert_eq!(completed["total_count"], 2);

    github.complete_run("acme/api", newest, "success");
    let single = api
        .get(&format!("/repos/acme/api/actions/runs/{newest}"))
        .await
        .json();
    assert_eq!(single["conclusion"], "success");
}

#[tokio::test]
async fn workflow_writes_without_the_workflow_scope_are_refused() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let api = Api::new(&github);
    github.deny_workflow_writes(true);

    let refused = api
        .put(
            "/repos/acme/api/contents/.github/workflows/backup-daily.yml",
            json!({"message": "m", "content": b64(WORKFLOW_YAML)}),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json()["message"],
        "refusing to allow a Personal Access Token to create or update workflow `.github/workflows/backup-daily.yml` without `workflow` scope"
    );
    assert_eq!(github.file("acme/api", "main", WORKFLOW), None);

    let elsewhere = api
        .put(
            "/repos/acme/api/contents/docs/backup.md",
            json!({"message": "m", "content": b64("x")}),
        )
        .await;
    assert_eq!(elsewhere.status, 201);

    github.deny_workflow_writes(false);
    let allowed = api
        .put(
            "/repos/acme/api/contents/.github/workflows/backup-daily.yml",
            json!({"message": "m", "content": b64(WORKFLOW_YAML)}),
        )
        .await;
    assert_eq!(allowed.status, 201);
}

#[tokio::test]
async fn injected_primary_and_secondary_rate_limits() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let api = Api::new(&github);

    github.rate_limit_next(1, false);
    let limited = api.get("/repos/acme/api").await;
    assert_eq!(limited.status, 403);
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = limited.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset >= now() && reset <= now() + 2);
    assert!(
        limited.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded")
    );
    assert_eq!(api.get("/repos/acme/api").await.status, 200);

    // GraphQL reports a primary limit with 200 and a RATE_LIMITED error.
    github.rate_limit_next(1, false);
    let limited = api.graphql(&batch_query(&["acme/api"]), json!({})).await;
    assert_eq!(limited.status, 200);
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.json()["errors"][0]["type"], "RATE_LIMITED");

    github.rate_limit_next(2, true);
    for _ in 0..2 {
        let limited = api.get("/repos/acme/api").await;
        assert_eq!(limited.status, 403);
        assert_eq!(limited.header("retry-after"), Some("1"));
        assert!(
            limited.json()["message"]
                .as_str()
                .unwrap()
                .contains("secondary rate limit")
        );
    }
    assert_eq!(api.get("/repos/acme/api").await.status, 200);

    github.secondary_rate_limit_status(429);
    github.rate_limit_next(1, true);
    let limited = api.get("/repos/acme/api").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));

    // GET /rate_limit is not charged and shows the budgets.
    let before = github.rate_limit_remaining("core");
    let status = api.get("/rate_limit").await.json();
    assert_eq!(status["resources"]["core"]["remaining"].as_u64(), Some(before));
    assert_eq!(status["rate"]["limit"], 5_000);
    assert_eq!(status["resources"]["graphql"]["used"], 0);
    assert_eq!(github.rate_limit_remaining("core"), before);
}

fn jwt(claims: Value) -> String {
    let encode = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        encode(json!({"alg": "RS256", "typ": "JWT"})),
        encode(claims),
        "c2lnbmF0dXJl"
    )
}

#[tokio::test]
async fn app_installation_tokens_authenticate_and_expire() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");
    let path = "/app/installations/4242/access_tokens";
    let app_jwt = jwt(json!({"iat": now() - 60, "exp": now() + 540, "iss": "123456"}));

    let issued = send(
        &github,
        "POST",
        path,
        Some(&format!("Bearer {app_jwt}")),
        &[],
        None,
    )
    .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let issued = issued.json();
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_"));
    let expires_at = issued["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z'));
    assert!(expires_at.as_bytes()[10] == b'T');
    assert_eq!(issued["permissions"]["workflows"], "write");
    assert_eq!(github.issued_installation_tokens(), 1);

    let as_app = Api::with_token(&github, &token);
    assert_eq!(as_app.get("/repos/acme/api").await.status, 200);

    // An app without the workflows permission gets the app's wording.
    github.deny_workflow_writes(true);
    let refused = as_app
        .put(
            "/repos/acme/api/contents/.github/workflows/backup-daily.yml",
            json!({"message": "m", "content": b64("x")}),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.json()["message"].as_str().unwrap().contains("GitHub App"));

    // The JWT is for /app only; a token is not a JWT; malformed or expired JWTs fail.
    assert_eq!(
        send(
            &github,
            "GET",
            "/repos/acme/api",
            Some(&format!("Bearer {app_jwt}")),
            &[],
            None
        )
        .await
        .status,
        401
    );
    let with_token = send(
        &github,
        "POST",
        path,
        Some(&format!("Bearer {}", github.token())),
        &[],
        None,
    )
    .await;
    assert_eq!(with_token.status, 401);
    assert_eq!(
        with_token.json()["message"],
        "A JSON web token could not be decoded"
    );
    let expired = jwt(json!({"iat": now() - 1_200, "exp": now() - 600, "iss": 123456}));
    assert_eq!(
        send(
            &github,
            "POST",
            path,
            Some(&format!("Bearer {expired}")),
            &[],
            None
        )
        .await
        .status,
        401
    );
    let no_issuer = jwt(json!({"iat": now(), "exp": now() + 600}));
    assert_eq!(
        send(
            &github,
            "POST",
            path,
            Some(&format!("Bearer {no_issuer}")),
            &[],
            None
        )
        .await
        .status,
        401
    );
    assert_eq!(github.issued_installation_tokens(), 1);

    github.expire_installation_tokens();
    let after = as_app.get("/repos/acme/api").await;
    assert_eq!(after.status, 401);
    assert_eq!(after.json()["message"], "Bad credentials");
}

#[tokio::test]
async fn requests_without_valid_credentials_are_unauthorized() {
    let github = GitHubFake::start().await;
    github.add_repo("acme/api", "main");

    let anonymous = send(&github, "GET", "/repos/acme/api", None, &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["message"], "Requires authentication");
    let wrong = send(
        &github,
        "GET",
        "/repos/acme/api",
        Some("Bearer ghp_wrong"),
        &[],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["message"], "Bad credentials");
    let graphql = send(
        &github,
        "POST",
        "/graphql",
        Some("token nope"),
        &[],
        Some(&json!({"query": "{ rateLimit { cost } }"})),
    )
    .await;
    assert_eq!(graphql.status, 401);

    let classic = Api::with_token(&github, github.token());
    assert_eq!(classic.get("/repos/acme/api").await.status, 200);
    assert_eq!(
        classic.get("/repos/acme/nope").await.json()["message"],
        "Not Found"
    );
    assert_eq!(github.count("GET", "/repos/acme/"), 4);
    assert_eq!(github.requests().iter().filter(|r| r.status == 401).count(), 3);
}
