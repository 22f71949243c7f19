//! Drift reaches people exactly once: Slack messages counted through a whole lifecycle
//! (drift → quiet reconciles → resolved → controller restart → drift again), and the
//! metrics agree with the objects' conditions and pass `promtool check metrics`.

use std::{sync::Arc, time::Duration};

use crate::support;
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    controller::Timing,
    policy::database::Policy,
    report::slack::{SlackNotifier, SlackSettings},
};
use backup_warden_testing::{self as testing, RunningController, condition, slack_fake::SlackFake, wait_for};
use kube::{Api, api::PostParams};
use serde_json::json;

const SOURCE: &str = "us-east-1";

fn reconciles(ctx: &backup_warden::controller::Context) -> u64 {
    ctx.metrics
        .reconciles
        .with_label_values(&["BackedUpDatabase"])
        .get()
}

/// The value of one series in the text format, if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
}

#[tokio::test]
async fn slack_hears_once_per_transition_and_metrics_match_conditions() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "notify").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);

    let object = support::replicated_database(&account, ("orders-db", "orders"), 1, "Audit", json!({})).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    dbs.create(&PostParams::default(), &object).await.expect("create");

    let slack = SlackFake::start().await;
    let timing = Timing {
        resync: Duration::from_millis(300),
        ..testing::fast_timing()
    };
    let start = |notifier: Arc<SlackNotifier>| async {
        let aws = env.aws_clients().await;
        let rds = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
        env.context_with(rds, aws, Policy::default(), timing, Some(notifier))
            .await
    };
    let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
    let ctx = start(notifier).await;
    let controller = RunningController::start(ctx.clone(), &namespace);

    // Drift: one message, naming the check, what is wanted and what was found.
    assert!(
        slack.wait_for_messages(1, Duration::from_secs(30)).await,
        "no drift message"
    );
    let first = slack.messages()[0].to_string();
    assert!(
        first.contains("RetentionCompliant") && first.contains("retention is 1 day (policy 7 days)"),
        "{first}"
    );
    assert!(
        first.contains("console.aws.amazon.com/rds"),
        "links the RDS console: {first}"
    );

    // Ten reconciles with nothing new: no message.
    let seen = reconciles(&ctx);
    while reconciles(&ctx) < seen + 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.messages().len(), 1, "quiet while nothing changes");

    // The metrics say the same as the conditions, and are well-formed.
    let db = dbs.get("orders").await.expect("get");
    let text = ctx.metrics.render();
    for check in ConditionType::DATABASE_CHECKS {
        let status = condition(&db, check).map(|c| c.0).unwrap_or_default();
        let gauge = sample(
            &text,
            "backup_warden_check_compliant",
            &[("name", "orders"), ("check", check.as_str())],
        );
        // A series only while the check fails (not for True, nor Unknown).
        assert_eq!(gauge, (status == "False").then_some(0.0), "{check:?} is {status}");
    }
    assert_eq!(
        sample(&text, "backup_warden_objects", &[("namespace", &namespace)]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "backup_warden_checks_failing",
            &[("namespace", &namespace), ("check", "RetentionCompliant")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "backup_warden_ready", &[("name", "orders")]),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "backup_warden_backup_age_seconds",
            &[("name", "orders"), ("location", "source")]
        )
        .is_some()
    );
    assert!(
        sample(
            &text,
            "backup_warden_external_calls_total",
            &[("operation", "DescribeDBInstances"), ("outcome", "success")]
        )
        .is_some_and(|v| v > 0.0)
    );
    testing::promtool_check_metrics(&text);

    // Resolved: one message.
    rds.modify_db_instance()
        .db_instance_identifier("orders-db")
        .backup_retention_period(7)
        .send()
        .await
        .expect("fix");
    wait_for(&dbs, "orders", Duration::from_secs(30), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert!(
        slack.wait_for_messages(2, Duration::from_secs(10)).await,
        "no resolved message"
    );
    assert!(
        slack.messages()[1].to_string().contains("compliant again"),
        "{}",
        slack.messages()[1]
    );

    // A restarted controller (empty memory) says nothing new.
    drop(controller);
    let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
    let ctx = start(notifier).await;
    let _controller = RunningController::start(ctx.clone(), &namespace);
    while reconciles(&ctx) < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.messages().len(), 2, "a restart repeats nothing");

    // Drift again: one message.
    rds.modify_db_instance()
        .db_instance_identifier("orders-db")
        .backup_retention_period(2)
        .send()
        .await
        .expect("drift");
    assert!(
        slack.wait_for_messages(3, Duration::from_secs(30)).await,
        "no second drift message"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(slack.messages().len(), 3);
    let text = ctx.metrics.render();
    assert_eq!(
        sample(
            &text,
            "backup_warden_check_compliant",
            &[("name", "orders"), ("check", "RetentionCompliant")]
        ),
        Some(0.0)
    );

    // A deleted object's series go away, and its namespace's counts with it.
    dbs.delete("orders", &Default::default()).await.expect("delete");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sample(
        &ctx.metrics.render(),
        "backup_warden_ready",
        &[("name", "orders")],
    )
    .is_some()
        || sample(
            &ctx.metrics.render(),
            "backup_warden_objects",
            &[("namespace", &namespace)],
        )
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "series of a deleted object remain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Declared again in Enforce: the drift (retention 2 days) is found and fixed in the same
    // reconcile. Nobody was told of it, so one message says both, not just "compliant again".
    let mut enforced = object.clone();
    enforced.metadata.name = Some("orders-enforced".into());
    enforced.spec.mode = backup_warden::api::Mode::Enforce;
    dbs.create(&PostParams::default(), &enforced)
        .await
        .expect("create");
    assert!(
        slack.wait_for_messages(4, Duration::from_secs(30)).await,
        "no message for a drift fixed at once"
    );
    let healed = slack.messages()[3].to_string();
    for text in [
        "orders-enforced drifted and was fixed",
        "retention is 2 days (policy 7 days)",
        "fixed, now:",
    ] {
        assert!(healed.contains(text), "{text:?} not in {healed}");
    }
    wait_for(&dbs, "orders-enforced", Duration::from_secs(30), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(slack.messages().len(), 4, "one message, nothing after it");
}

/// A reconcile given a copy older than the stored object (the watch has not delivered the
/// last status write yet) decides against what is stored: no message is repeated, and the
/// newer status is not written over.
#[tokio::test]
async fn a_reconcile_of_a_stale_copy_repeats_no_message() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "notify-stale").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    let object = support::replicated_database(&account, ("stale-db", "stale"), 1, "Audit", json!({})).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    dbs.create(&PostParams::default(), &object).await.expect("create");

    let slack = SlackFake::start().await;
    let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
    let aws = env.aws_clients().await;
    let sdk = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
    // Every look reads AWS afresh: nothing cached answers.
    let timing = Timing {
        resync: Duration::from_millis(1),
        ..testing::fast_timing()
    };
    let ctx = env
        .context_with(sdk, aws, Policy::default(), timing, Some(notifier))
        .await;
    let reconcile = |object: BackedUpDatabase| {
        backup_warden::controller::pipeline::reconcile(Arc::new(object), ctx.clone())
    };

    reconcile(dbs.get("stale").await.expect("get"))
        .await
        .expect("drift");
    assert!(
        slack.wait_for_messages(1, Duration::from_secs(10)).await,
        "no drift message"
    );
    rds.modify_db_instance()
        .db_instance_identifier("stale-db")
        .backup_retention_period(7)
        .send()
        .await
        .expect("fix");
    let drifted = dbs.get("stale").await.expect("get");
    reconcile(drifted.clone()).await.expect("resolved");
    assert!(
        slack.wait_for_messages(2, Duration::from_secs(10)).await,
        "no resolved message"
    );
    let resolved = dbs.get("stale").await.expect("get");
    let stored = |db: &BackedUpDatabase| {
        let status = db.status.as_ref().expect("status");
        (
            condition(db, ConditionType::Ready).map(|c| c.0),
            status.notified_drift.clone(),
        )
    };
    assert_eq!(stored(&resolved), (Some("True".into()), Vec::<String>::new()));

    // The copy from before the resolution, as a lagging cache would hand it over.
    reconcile(drifted).await.expect("stale copy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slack.messages().len(),
        2,
        "a stale copy repeats nothing: {:?}",
        slack.messages()
    );
    let after = dbs.get("stale").await.expect("get");
    assert_eq!(stored(&after), stored(&resolved));
}
