//! The GitHub client against the fake: GitHub App installation tokens, rate limits waited
//! out rather than hammered, and a commit never made over a file that changed.

use std::{process::Command, time::Duration};

use backup_warden::github::{
    FileChange, GitHub, GitHubAuth, GitHubClient, GitHubErrorKind, client::GitHubSettings,
};
use backup_warden_testing::github_fake::GitHubFake;

const PATH: &str = ".github/workflows/backup-daily.yml";

fn settings(fake: &GitHubFake, auth: GitHubAuth) -> GitHubSettings {
    GitHubSettings {
        base_url: fake.base_url(),
        auth,
        concurrency: 4,
        writes_per_minute: 100,
        writes_per_hour: 1000,
        reads_per_minute: 10_000,
        timeouts: backup_warden::timeouts::Timeouts::default(),
    }
}

fn token_client(fake: &GitHubFake) -> GitHubClient {
    GitHubClient::new(&settings(fake, GitHubAuth::Token(fake.token().to_string()))).expect("client")
}

fn change(content: &str) -> FileChange {
    FileChange {
        path: PATH.into(),
        content: content.into(),
        base_branch: "main".into(),
        commit_message: "backup".into(),
        title: "backup".into(),
        body: "why".into(),
    }
}

#[tokio::test]
async fn a_github_app_gets_an_installation_token_and_uses_it() {
    let fake = GitHubFake::start().await;
    fake.add_repo("narrative-io/marketplace", "main");
    let key = Command::new("openssl")
        .args(["genrsa", "2048"])
        .output()
        .expect("openssl genrsa");
    assert!(key.status.success());
    let auth = GitHubAuth::App {
        app_id: 42,
        installation_id: 7,
        private_key_pem: String::from_utf8(key.stdout).expect("pem"),
    };
    let client = GitHubClient::new(&settings(&fake, auth)).expect("client");
    let repos = client
        .repositories(&[("narrative-io/marketplace".into(), PATH.into())])
        .await
        .expect("sweep");
    assert!(repos["narrative-io/marketplace"].is_some());
    assert_eq!(fake.issued_installation_tokens(), 1);
    client
        .workflow("narrative-io/marketplace", PATH)
        .await
        .expect("REST with the same token");
    assert_eq!(
        fake.issued_installation_tokens(),
        1,
        "the installation token is reused while valid"
    );
}

/// Enterprise Server serves REST under `/api/v3` and GraphQL at `/api/graphql`: with its
/// REST root configured, the sweep (GraphQL) and the REST calls both reach it.
#[tokio::test]
async fn github_enterprise_server_gets_graphql_beside_the_rest_root() {
    let fake = GitHubFake::start_enterprise().await;
    assert!(fake.base_url().ends_with("/api/v3"), "{}", fake.base_url());
    fake.add_repo("narrative-io/marketplace", "main");
    let client = token_client(&fake);
    let repos = client
        .repositories(&[("narrative-io/marketplace".into(), PATH.into())])
        .await
        .expect("the sweep reaches /api/graphql");
    let facts = repos["narrative-io/marketplace"].as_ref().expect("found");
    assert_eq!(facts.default_branch, "main");
    client
        .workflow("narrative-io/marketplace", PATH)
        .await
        .expect("REST under /api/v3");
}

#[tokio::test]
async fn rate_limits_are_waited_out_not_hammered() {
    for secondary in [false, true] {
        let fake = GitHubFake::start().await;
        fake.add_repo("narrative-io/api", "main");
        fake.put_file("narrative-io/api", "main", PATH, "on: push\njobs: {}\n");
        let client = token_client(&fake);
        fake.rate_limit_next(1, secondary);
        let err = client
            .workflow("narrative-io/api", PATH)
            .await
            .expect_err("rate limited");
        assert_eq!(err.kind, GitHubErrorKind::Transient, "{err}");
        let wait = err.retry_after.expect("says when to come back");
        assert!(wait <= Duration::from_secs(120), "{wait:?}");

        // While the limit holds, nothing is sent.
        let sent = fake.requests().len();
        let again = client
            .workflow("narrative-io/api", PATH)
            .await
            .expect_err("still limited");
        assert_eq!(again.kind, GitHubErrorKind::Transient);
        assert_eq!(
            fake.requests().len(),
            sent,
            "no request while rate limited (secondary: {secondary})"
        );
        if secondary {
            tokio::time::sleep(wait).await;
            assert!(
                client
                    .workflow("narrative-io/api", PATH)
                    .await
                    .expect("after the wait")
                    .is_some()
            );
        }
    }
}

#[tokio::test]
async fn a_commit_is_never_made_over_a_file_that_changed() {
    let fake = GitHubFake::start().await;
    fake.add_repo("narrative-io/web", "main");
    fake.put_file("narrative-io/web", "main", PATH, "evaluated\n");
    let client = token_client(&fake);
    // Someone edits the file after backup-warden checked it.
    fake.put_file("narrative-io/web", "main", PATH, "edited by a person\n");
    let err = client
        .commit_file("narrative-io/web", &change("rendered\n"), Some("evaluated\n"))
        .await
        .expect_err("conflict");
    assert_eq!(err.kind, GitHubErrorKind::Conflict);
    assert_eq!(
        fake.file("narrative-io/web", "main", PATH).as_deref(),
        Some("edited by a person\n")
    );

    client
        .commit_file(
            "narrative-io/web",
            &change("rendered\n"),
            Some("edited by a person\n"),
        )
        .await
        .expect("commit");
    assert_eq!(
        fake.file("narrative-io/web", "main", PATH).as_deref(),
        Some("rendered\n")
    );
}

#[tokio::test]
async fn proposing_twice_opens_one_pull_request() {
    let fake = GitHubFake::start().await;
    fake.add_repo("narrative-io/etl", "main");
    let client = token_client(&fake);
    let first = client
        .propose_file("narrative-io/etl", &change("rendered\n"))
        .await
        .expect("propose");
    let second = client
        .propose_file("narrative-io/etl", &change("rendered\n"))
        .await
        .expect("propose again");
    assert_eq!(first, second);
    assert_eq!(fake.pull_requests("narrative-io/etl").len(), 1);
    assert_eq!(fake.count("POST", "/repos/narrative-io/etl/pulls"), 1);
}

/// GitHub counts REST and GraphQL apart: with the REST budget spent, the repository sweep
/// (GraphQL) still runs, and REST waits for its reset.
#[tokio::test]
async fn a_spent_rest_budget_does_not_stop_graphql() {
    let fake = GitHubFake::start().await;
    fake.add_repo("narrative-io/api", "main");
    fake.put_file("narrative-io/api", "main", PATH, "on: push\njobs: {}\n");
    fake.set_hourly_limits(1, 5_000);
    let client = token_client(&fake);
    // The last REST request of the hour passes and says the budget is spent.
    client
        .workflow("narrative-io/api", PATH)
        .await
        .expect("the last one");
    let err = client
        .workflow("narrative-io/api", PATH)
        .await
        .expect_err("REST waits for the reset");
    assert_eq!(err.kind, GitHubErrorKind::Transient, "{err}");
    let swept = client
        .repositories(&[("narrative-io/api".to_string(), PATH.to_string())])
        .await
        .expect("GraphQL has its own budget");
    assert!(swept["narrative-io/api"].is_some());
}

/// An organization's repositories, 100 a GraphQL query, by name, with what a coverage scan
/// reads of each: archived, fork, topics.
#[tokio::test]
async fn an_organization_is_listed_a_hundred_repositories_a_query() {
    let fake = GitHubFake::start().await;
    for i in 0..250 {
        fake.add_repo(&format!("narrative-io/service-{i:03}"), "main");
    }
    fake.add_repo("someone-else/service-000", "main");
    fake.set_archived("narrative-io/service-007", true);
    fake.set_fork("narrative-io/service-150", true);
    fake.set_topics("narrative-io/service-249", &["Backup", "rds", "backup"]);
    let client = token_client(&fake);
    fake.reset_requests();

    let repos = client
        .organization_repositories("narrative-io")
        .await
        .expect("listed")
        .expect("the organization exists");
    assert_eq!(repos.len(), 250);
    let names: Vec<&str> = repos.iter().map(|r| r.full_name.as_str()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("narrative-io/service-{i:03}")).collect();
    assert_eq!(names, expected, "each once, by name, no other owner's");
    let by_name = |name: &str| {
        repos
            .iter()
            .find(|r| r.full_name == format!("narrative-io/{name}"))
            .expect("listed")
    };
    assert!(by_name("service-007").archived);
    assert!(!by_name("service-007").fork);
    assert!(by_name("service-150").fork);
    assert_eq!(by_name("service-249").topics, ["backup", "rds"]);
    assert!(by_name("service-000").topics.is_empty());
    assert_eq!(repos.iter().filter(|r| r.archived || r.fork).count(), 2);

    assert_eq!(fake.count("POST", "/graphql"), 3, "three pages of at most 100");
    assert_eq!(fake.graphql_batches(), [100, 100, 100]);

    fake.reset_requests();
    let unknown = client
        .organization_repositories("no-such-org")
        .await
        .expect("an unknown organization is an answer, not an error");
    assert_eq!(unknown, None);
    assert_eq!(fake.count("POST", "/graphql"), 1);
}
