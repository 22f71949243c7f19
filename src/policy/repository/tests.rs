//! Table tests of the repository policy.

use super::*;

const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).expect("timestamp")
}

fn spec() -> BackedUpRepositorySpec {
    serde_json::from_value(serde_json::json!({
        "repository": "narrative-io/marketplace",
        "storage": {"bucket": "narrative-github-backups"},
    }))
    .expect("spec")
}

fn ours() -> LifecycleRuleFacts {
    LifecycleRuleFacts {
        id: "backup-warden-narrative-io-marketplace".into(),
        enabled: true,
        prefix: "narrative-io/marketplace/".into(),
        narrowed: false,
        expiration_days: Some(90),
    }
}

fn compliant() -> RepositoryObservation {
    RepositoryObservation {
        repo: Some(RepoFacts {
            default_branch: "main".into(),
            head: Some("0a1b2c".into()),
            archived: false,
            file: Some(workflow::render(&spec())),
        }),
        workflow: Some(WorkflowFacts {
            id: 7,
            state: "active".into(),
        }),
        last_run: Some(RunFacts {
            url: "https://github.com/narrative-io/marketplace/actions/runs/1".into(),
            conclusion: "success".into(),
            started_at: at(3 * 3600),
        }),
        pull_request: None,
        newest_backup: Some(BackupObject {
            key: "narrative-io/marketplace/2026-11-26.tar.gz".into(),
            last_modified: at(3 * 3600),
        }),
        lifecycle: Some(vec![ours()]),
        now: at(0),
    }
}

fn finding(findings: &[Finding], check: RepositoryCheck) -> &Finding {
    let check = ConditionType::from(check);
    findings.iter().find(|f| f.check == check).expect("finding")
}

fn policy() -> RepositoryPolicy {
    RepositoryPolicy::default()
}

fn repo(obs: &mut RepositoryObservation) -> &mut RepoFacts {
    obs.repo.as_mut().expect("repo")
}

#[test]
fn a_compliant_repository_passes_every_check_and_plans_nothing() {
    let findings = evaluate(&spec(), &compliant(), &policy());
    assert_eq!(
        findings.iter().map(|f| f.check).collect::<Vec<_>>(),
        ConditionType::REPOSITORY_CHECKS
    );
    assert!(findings.iter().all(Finding::is_pass), "{findings:?}");
    assert!(plan(&spec(), &compliant(), &findings, &policy()).is_empty());
}

#[test]
fn each_check_reports_its_drift() {
    type Change = fn(&mut RepositoryObservation);
    let cases: Vec<(RepositoryCheck, Change, Verdict, Reason, &str)> = vec![
        (
            WorkflowPresent,
            |o| {
                repo(o).file = None;
                o.workflow = None
            },
            Verdict::Drift,
            Reason::DriftDetected,
            ".github/workflows/backup-daily.yml is missing from main",
        ),
        (
            WorkflowCurrent,
            |o| repo(o).file = Some("on: push\njobs: {}\n".into()),
            Verdict::Drift,
            Reason::DriftDetected,
            "no job calls",
        ),
        (
            WorkflowEnabled,
            |o| {
                o.workflow = Some(WorkflowFacts {
                    id: 7,
                    state: "disabled_inactivity".into(),
                })
            },
            Verdict::Drift,
            Reason::DriftDetected,
            "disabled_inactivity",
        ),
        (
            LastRunSucceeded,
            |o| {
                o.last_run
                    .as_mut()
                    .map_or((), |r| r.conclusion = "failure".into())
            },
            Verdict::Drift,
            Reason::DriftDetected,
            "concluded failure: https://github.com/narrative-io/marketplace/actions/runs/1",
        ),
        (
            LastRunSucceeded,
            |o| o.last_run.as_mut().map_or((), |r| r.started_at = at(30 * 3600)),
            Verdict::Drift,
            Reason::Stale,
            "started 2027-01-14T02:00:00Z (limit 26h)",
        ),
        (
            LastRunSucceeded,
            |o| o.last_run = None,
            Verdict::Drift,
            Reason::Stale,
            "not completed a run",
        ),
        (
            BackupFresh,
            |o| {
                o.newest_backup
                    .as_mut()
                    .map_or((), |b| b.last_modified = at(50 * 3600))
            },
            Verdict::Drift,
            Reason::Stale,
            "was written 2027-01-13T06:00:00Z (limit 26h)",
        ),
        (
            BackupFresh,
            |o| o.newest_backup = None,
            Verdict::Drift,
            Reason::Stale,
            "no backup under s3://narrative-github-backups/narrative-io/marketplace/",
        ),
        (
            LifecycleCompliant,
            |o| o.lifecycle = Some(vec![]),
            Verdict::Drift,
            Reason::DriftDetected,
            "no lifecycle rule",
        ),
        (
            LifecycleCompliant,
            |o| {
                o.lifecycle = Some(vec![LifecycleRuleFacts {
                    enabled: false,
                    ..ours()
                }])
            },
            Verdict::Drift,
            Reason::DriftDetected,
            "no lifecycle rule",
        ),
        (
            LifecycleCompliant,
            |o| {
                o.lifecycle = Some(vec![LifecycleRuleFacts {
                    narrowed: true,
                    ..ours()
                }])
            },
            Verdict::Drift,
            Reason::DriftDetected,
            "no lifecycle rule",
        ),
        (
            LifecycleCompliant,
            |o| {
                o.lifecycle = Some(vec![LifecycleRuleFacts {
                    prefix: "other/".into(),
                    ..ours()
                }])
            },
            Verdict::Drift,
            Reason::DriftDetected,
            "no lifecycle rule",
        ),
        (
            LifecycleCompliant,
            |o| {
                o.lifecycle = Some(vec![
                    LifecycleRuleFacts {
                        id: "tmp".into(),
                        prefix: "".into(),
                        expiration_days: Some(30),
                        ..ours()
                    },
                    ours(),
                ])
            },
            Verdict::Blocked,
            Reason::DriftDetected,
            "rule \"tmp\" expires objects under narrative-io/marketplace/ after 30 days (policy 90 days)",
        ),
        (
            LifecycleCompliant,
            |o| o.lifecycle = None,
            Verdict::Blocked,
            Reason::Unsupported,
            "bucket narrative-github-backups not found",
        ),
    ];
    for (check, change, verdict, reason, text) in cases {
        let mut obs = compliant();
        change(&mut obs);
        let findings = evaluate(&spec(), &obs, &policy());
        let f = finding(&findings, check);
        assert_eq!((f.verdict, f.reason), (verdict, reason), "{check:?}: {f:?}");
        assert!(
            f.message.contains(text),
            "{check:?}: {:?} lacks {text:?}",
            f.message
        );
    }
}

#[test]
fn a_broader_rule_with_a_longer_expiry_covers_the_prefix() {
    let mut obs = compliant();
    obs.lifecycle = Some(vec![LifecycleRuleFacts {
        id: "all".into(),
        prefix: "".into(),
        expiration_days: Some(365),
        ..ours()
    }]);
    assert!(finding(&evaluate(&spec(), &obs, &policy()), LifecycleCompliant).is_pass());
}

#[test]
fn missing_and_archived_repositories_block_everything() {
    let mut obs = compliant();
    obs.repo = None;
    let findings = evaluate(&spec(), &obs, &policy());
    assert!(
        findings
            .iter()
            .all(|f| f.verdict == Verdict::Blocked && f.reason == Reason::RepositoryNotFound)
    );
    assert!(plan(&spec(), &obs, &findings, &policy()).is_empty());

    let mut obs = compliant();
    repo(&mut obs).archived = true;
    repo(&mut obs).file = None;
    let findings = evaluate(&spec(), &obs, &policy());
    assert!(findings.iter().all(|f| f.reason == Reason::RepositoryArchived));
    assert!(findings[0].message.contains("archived"));
    assert!(plan(&spec(), &obs, &findings, &policy()).is_empty());
}

#[test]
fn a_missing_file_is_proposed_by_pull_request_by_default_and_committed_on_request() {
    let mut obs = compliant();
    repo(&mut obs).file = None;
    obs.workflow = None;
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(
        plan(&spec(), &obs, &findings, &policy()),
        [RepoAction::ProposeWorkflow {
            content: workflow::render(&spec())
        }]
    );

    let mut commit = spec();
    commit.workflow.delivery = Delivery::Commit;
    let findings = evaluate(&commit, &obs, &policy());
    assert_eq!(
        plan(&commit, &obs, &findings, &policy()),
        [RepoAction::CommitWorkflow {
            content: workflow::render(&commit),
            replacing: None
        }]
    );
}

#[test]
fn an_open_pull_request_is_reported_and_not_opened_again() {
    let mut obs = compliant();
    repo(&mut obs).file = None;
    obs.workflow = None;
    obs.pull_request = Some(PullRequestFacts {
        url: "https://github.com/narrative-io/marketplace/pull/12".into(),
        number: 12,
    });
    let findings = evaluate(&spec(), &obs, &policy());
    let f = finding(&findings, WorkflowPresent);
    assert_eq!((f.verdict, f.reason), (Verdict::Blocked, Reason::PullRequestOpen));
    assert!(f.message.contains("pull/12 waits for review"));
    assert!(plan(&spec(), &obs, &findings, &policy()).is_empty());
}

#[test]
fn an_outdated_file_is_replaced_naming_what_was_evaluated() {
    let mut obs = compliant();
    let old = "on:\n  schedule:\n  - cron: '0 4 * * *'\njobs:\n  b:\n    uses: narrative-io/github-common/.github/workflows/backup.yml@v0\n";
    repo(&mut obs).file = Some(old.into());
    let mut commit = spec();
    commit.workflow.delivery = Delivery::Commit;
    let findings = evaluate(&commit, &obs, &policy());
    assert_eq!(
        plan(&commit, &obs, &findings, &policy()),
        [RepoAction::CommitWorkflow {
            content: workflow::render(&commit),
            replacing: Some(old.into())
        }]
    );
}

#[test]
fn a_disabled_workflow_is_enabled_and_a_missing_rule_added() {
    let mut obs = compliant();
    obs.workflow = Some(WorkflowFacts {
        id: 42,
        state: "disabled_manually".into(),
    });
    obs.lifecycle = Some(vec![]);
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(
        plan(&spec(), &obs, &findings, &policy()),
        [
            RepoAction::EnableWorkflow { id: 42 },
            RepoAction::AddLifecycleRule {
                id: "backup-warden-narrative-io-marketplace".into(),
                prefix: "narrative-io/marketplace/".into(),
                days: 90
            },
        ]
    );
}

#[test]
fn audit_plans_nothing() {
    let mut obs = compliant();
    repo(&mut obs).file = None;
    obs.lifecycle = Some(vec![]);
    obs.workflow = Some(WorkflowFacts {
        id: 1,
        state: "disabled_manually".into(),
    });
    let mut audit = spec();
    audit.mode = Mode::Audit;
    let findings = evaluate(&audit, &obs, &policy());
    assert!(plan(&audit, &obs, &findings, &policy()).is_empty());
    let everywhere = RepositoryPolicy {
        audit_only: true,
        ..policy()
    };
    assert!(plan(&spec(), &obs, &evaluate(&spec(), &obs, &everywhere), &everywhere).is_empty());
}

#[test]
fn freshness_is_reported_never_acted_on() {
    let mut obs = compliant();
    obs.newest_backup = None;
    obs.last_run = None;
    let findings = evaluate(&spec(), &obs, &policy());
    assert!(plan(&spec(), &obs, &findings, &policy()).is_empty());
}

#[test]
fn the_check_table_lists_every_check_once_in_declaration_order() {
    let table: Vec<RepositoryCheck> = CHECKS.iter().map(|c| c.check).collect();
    assert_eq!(table, RepositoryCheck::ALL);
}

fn shared(prefix: &str) -> BackedUpRepositorySpec {
    let mut spec = spec();
    spec.storage.lifecycle_rule_prefix = Some(prefix.into());
    spec
}

#[test]
fn repositories_naming_one_rule_prefix_share_one_rule() {
    let mut obs = compliant();
    obs.lifecycle = Some(vec![]);
    for (prefix, id) in [
        ("", "backup-warden-shared-whole-bucket"),
        ("narrative-io/", "backup-warden-shared-narrative-io"),
    ] {
        let spec = shared(prefix);
        let findings = evaluate(&spec, &obs, &policy());
        assert_eq!(
            plan(&spec, &obs, &findings, &policy()),
            [RepoAction::AddLifecycleRule {
                id: id.into(),
                prefix: prefix.into(),
                days: 90
            }]
        );
    }
    // Another repository of the organisation finds the rule there and adds nothing.
    let mut other = shared("narrative-io/");
    other.repository = "narrative-io/api".into();
    obs.lifecycle = Some(vec![LifecycleRuleFacts {
        id: "backup-warden-shared-narrative-io".into(),
        prefix: "narrative-io/".into(),
        ..ours()
    }]);
    let findings = evaluate(&other, &obs, &policy());
    assert!(finding(&findings, LifecycleCompliant).is_pass());
    assert!(plan(&other, &obs, &findings, &policy()).is_empty());
    // The repository's own rule stays as before when no shared prefix is named.
    assert_eq!(
        lifecycle_rule_id(&spec()),
        "backup-warden-narrative-io-marketplace"
    );
    // A long prefix still makes an id within S3's 255 characters, distinct per prefix.
    let long = |tail: &str| lifecycle_rule_id(&shared(&format!("{}{tail}/", "a".repeat(300))));
    assert!(long("x").len() <= 255);
    assert_ne!(long("x"), long("y"));
}

#[test]
fn our_own_shorter_rule_is_raised_and_another_ones_blocks() {
    let mut longer = spec();
    longer.storage.retention_days = 120;
    let mut obs = compliant(); // holds ours(), 90 days
    let findings = evaluate(&longer, &obs, &policy());
    let f = finding(&findings, LifecycleCompliant);
    assert_eq!(
        (f.verdict, f.reason),
        (Verdict::Drift, Reason::DriftDetected),
        "{f:?}"
    );
    assert_eq!(
        plan(&longer, &obs, &findings, &policy()),
        [RepoAction::AddLifecycleRule {
            id: "backup-warden-narrative-io-marketplace".into(),
            prefix: "narrative-io/marketplace/".into(),
            days: 120
        }]
    );
    obs.lifecycle = Some(vec![LifecycleRuleFacts {
        id: "someone-elses".into(),
        ..ours()
    }]);
    let findings = evaluate(&longer, &obs, &policy());
    assert_eq!(finding(&findings, LifecycleCompliant).verdict, Verdict::Blocked);
    assert!(plan(&longer, &obs, &findings, &policy()).is_empty());
}

#[test]
fn a_bucket_at_s3s_rule_limit_blocks_a_new_rule_and_says_how_to_share() {
    let mut obs = compliant();
    obs.lifecycle = Some(
        (0..MAX_LIFECYCLE_RULES)
            .map(|i| LifecycleRuleFacts {
                id: format!("other-{i}"),
                prefix: format!("other-{i}/"),
                ..ours()
            })
            .collect(),
    );
    let findings = evaluate(&spec(), &obs, &policy());
    let f = finding(&findings, LifecycleCompliant);
    assert_eq!(f.verdict, Verdict::Blocked, "{f:?}");
    assert!(f.message.contains("lifecycleRulePrefix"), "{}", f.message);
    assert!(plan(&spec(), &obs, &findings, &policy()).is_empty());
}
