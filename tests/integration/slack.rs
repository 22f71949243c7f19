//! The Slack notifier against a fake incoming webhook: messages as rendered and within
//! Block Kit's limits, Retry-After honoured, a dead webhook left alone, pacing, digests
//! for floods, a caller never held up, and the webhook URL never shown.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backup_warden::report::slack::{
    CheckLine, Notification, Notifier, SlackNotifier, SlackOutcomes, SlackSettings, Transition, webhook_from,
};
use backup_warden_testing::{slack_fake::SlackFake, unique_name};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn check(name: &str, desired: &str, observed: &str) -> CheckLine {
    CheckLine {
        check: name.into(),
        desired: desired.into(),
        observed: observed.into(),
    }
}

fn drift(name: &str) -> Notification {
    Notification {
        kind: "BackedUpDatabase",
        namespace: "data-platform".into(),
        name: name.into(),
        transition: Transition::Drift,
        checks: vec![check("RetentionCompliant", "7 days", "1 day")],
        link: None,
    }
}

/// Fast settings for tests that are not about pacing or digests.
fn quick() -> SlackSettings {
    SlackSettings {
        per_second: 50.0,
        burst: 10,
        ..SlackSettings::default()
    }
}

fn texts(message: &Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["text"]["text"].as_str().expect("block text").to_string())
        .collect()
}

async fn wait_for_outcome(
    notifier: &SlackNotifier,
    what: &str,
    done: impl Fn(&SlackOutcomes) -> bool,
) -> SlackOutcomes {
    let deadline = Instant::now() + WAIT;
    loop {
        let outcomes = notifier.outcomes();
        if done(&outcomes) {
            return outcomes;
        }
        assert!(Instant::now() < deadline, "{what}: last {outcomes:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_drift_and_its_resolution_arrive_as_two_messages() {
    let slack = SlackFake::start().await;
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    let mut n = drift("marketplace-db");
    n.checks.push(check("DeletionProtected", "true", "false"));
    n.link = Some((
        "RDS console".into(),
        "https://console.aws.amazon.com/rds/home#database:id=marketplace-db".into(),
    ));
    notifier.notify(n.clone());
    notifier.notify(Notification {
        transition: Transition::Resolved,
        checks: vec![check("RetentionCompliant", "7 days", "7 days")],
        link: None,
        ..n
    });
    assert!(slack.wait_for_messages(2, WAIT).await);
    let messages = slack.messages();
    assert_eq!(
        texts(&messages[0]),
        [
            ":warning: BackedUpDatabase data-platform/marketplace-db drifted",
            "*RetentionCompliant* — desired: 7 days, observed: 1 day",
            "*DeletionProtected* — desired: true, observed: false",
            ":link: <https://console.aws.amazon.com/rds/home#database:id=marketplace-db|RDS console>",
        ]
    );
    assert_eq!(messages[0]["blocks"][0]["type"], "header");
    assert_eq!(
        messages[0]["text"],
        ":warning: BackedUpDatabase data-platform/marketplace-db drifted: RetentionCompliant, DeletionProtected"
    );
    assert_eq!(
        texts(&messages[1]),
        [
            ":white_check_mark: BackedUpDatabase data-platform/marketplace-db compliant again",
            "*RetentionCompliant* — desired: 7 days, observed: 7 days",
        ]
    );
    let outcomes = wait_for_outcome(&notifier, "two sent", |o| o.sent == 2).await;
    assert_eq!(
        outcomes,
        SlackOutcomes {
            sent: 2,
            ..SlackOutcomes::default()
        }
    );
}

#[tokio::test]
async fn eighty_failing_checks_with_huge_messages_fit_slacks_limits() {
    let slack = SlackFake::start().await;
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    let huge = "retention <1 day> & more ".repeat(400);
    let mut n = drift("huge-db");
    n.checks = (0..80)
        .map(|i| check(&format!("Check{i}"), &huge[..10_000], &huge[..10_000]))
        .collect();
    n.link = Some((
        "failed run".into(),
        "https://github.com/acme/api/actions/runs/1".into(),
    ));
    notifier.notify(n);
    // The fake refuses (400 invalid_blocks) what Slack would refuse.
    assert!(
        slack.wait_for_messages(1, WAIT).await,
        "{:?}",
        notifier.outcomes()
    );
    let blocks = texts(&slack.messages()[0]);
    assert_eq!(blocks.len(), 50);
    assert!(blocks.iter().all(|t| t.chars().count() <= 3000));
    assert!(blocks[1].ends_with('…'));
    assert!(blocks[1].contains("&lt;1 day&gt; &amp; more"));
    assert_eq!(blocks[48], "…and 33 more checks");
    assert_eq!(notifier.outcomes().failed_permanent, 0);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_delivers_once() {
    let slack = SlackFake::start().await;
    slack.respond_next(429, "rate_limited", Some(2), 1);
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    notifier.notify(drift("db-1"));
    assert!(slack.wait_for_messages(1, WAIT).await);
    let at = slack.received_at();
    assert_eq!(at.len(), 2, "refused once, then retried once");
    let gap = at[1] - at[0];
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    let outcomes = wait_for_outcome(&notifier, "sent", |o| o.sent == 1).await;
    assert_eq!((outcomes.rate_limited, outcomes.sent), (1, 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.messages().len(), 1, "delivered exactly once");
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_then_given_up() {
    let slack = SlackFake::start().await;
    slack.respond_next(503, "service_unavailable", None, 2);
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    notifier.notify(drift("db-1"));
    assert!(slack.wait_for_messages(1, WAIT).await);
    let at = slack.received_at();
    assert!(at[1] - at[0] >= Duration::from_millis(500), "backed off");
    assert!(at[2] - at[1] >= Duration::from_millis(1000), "backed off longer");

    slack.respond_next(500, "oops", None, 10);
    notifier.notify(drift("db-2"));
    let outcomes = wait_for_outcome(&notifier, "given up", |o| o.failed_transient == 1).await;
    assert_eq!(slack.requests(), 3 + 4, "four attempts, then it gives up");
    assert_eq!((outcomes.sent, outcomes.failed_permanent), (1, 0));
}

#[tokio::test]
async fn an_archived_channel_stops_all_sending() {
    let slack = SlackFake::start().await;
    slack.respond_next(410, "channel_is_archived", None, 1);
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    notifier.notify(drift("db-1"));
    wait_for_outcome(&notifier, "refused", |o| o.failed_permanent == 1).await;
    for i in 2..=4 {
        notifier.notify(drift(&format!("db-{i}")));
    }
    let outcomes = wait_for_outcome(&notifier, "all counted", |o| o.failed_permanent == 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.requests(), 1, "nothing sent after the 410");
    assert_eq!((outcomes.sent, outcomes.failed_transient), (0, 0));
}

#[tokio::test]
async fn a_refused_payload_is_not_retried() {
    let slack = SlackFake::start().await;
    slack.respond_next(400, "invalid_payload", None, 2);
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    notifier.notify(drift("db-1"));
    notifier.notify(drift("db-2"));
    notifier.notify(drift("db-3"));
    assert!(slack.wait_for_messages(1, WAIT).await);
    let outcomes = wait_for_outcome(&notifier, "counted", |o| o.sent == 1).await;
    assert_eq!(outcomes.failed_permanent, 2);
    assert_eq!(slack.requests(), 3, "one request per message, no retries");
}

#[tokio::test]
async fn messages_are_paced_to_the_rate_after_a_small_burst() {
    let slack = SlackFake::start().await;
    let settings = SlackSettings {
        per_second: 1.0,
        burst: 2,
        ..SlackSettings::default()
    };
    let (notifier, _task) = SlackNotifier::start(slack.url(), settings);
    for i in 0..5 {
        notifier.notify(drift(&format!("db-{i}")));
    }
    assert!(slack.wait_for_messages(5, WAIT).await);
    let at = slack.received_at();
    let took = at[4] - at[0];
    assert!(took >= Duration::from_millis(2500), "five messages in {took:?}");
    assert!(
        at[1] - at[0] < Duration::from_millis(500),
        "the burst goes at once"
    );
}

/// How many notifications the accepted messages stand for (a digest says in its header).
fn notifications_in(messages: &[Value]) -> usize {
    messages
        .iter()
        .map(|m| {
            let header = texts(m)[0].clone();
            match header.strip_prefix(":bell: ") {
                Some(rest) => rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a digest header starts with a count"),
                None => 1,
            }
        })
        .sum()
}

#[tokio::test]
async fn thirty_notifications_at_once_become_a_digest() {
    let slack = SlackFake::start().await;
    let (notifier, _task) = SlackNotifier::start(slack.url(), quick());
    for i in 0..30 {
        notifier.notify(drift(&format!("db-{i}")));
    }
    wait_for_outcome(&notifier, "a digest", |o| o.digests >= 1).await;
    let deadline = Instant::now() + WAIT;
    while notifications_in(&slack.messages()) < 30 {
        assert!(Instant::now() < deadline, "not all notifications arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = slack.messages();
    assert!(messages.len() < 30, "{} messages", messages.len());
    let digest = messages
        .iter()
        .find(|m| texts(m)[0].starts_with(":bell: "))
        .expect("a digest");
    let listed = texts(digest)[1..].join("\n");
    assert_eq!(listed.lines().count(), 30, "{listed}");
    assert!(listed.contains("• BackedUpDatabase `data-platform/db-29` drifted (1 check)"));
}

#[tokio::test]
async fn a_flood_spread_over_the_window_is_folded_into_digests() {
    let slack = SlackFake::start().await;
    let settings = SlackSettings {
        digest_window: Duration::from_secs(12),
        ..quick()
    };
    let (notifier, _task) = SlackNotifier::start(slack.url(), settings);
    for i in 0..30 {
        notifier.notify(drift(&format!("db-{i}")));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let deadline = Instant::now() + WAIT;
    while notifications_in(&slack.messages()) < 30 {
        assert!(Instant::now() < deadline, "not all notifications arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = slack.messages();
    let singles = messages
        .iter()
        .filter(|m| !texts(m)[0].starts_with(":bell: "))
        .count();
    // Never more than the threshold one by one (fewer if the sender fell behind).
    assert!((15..=20).contains(&singles), "{singles} single messages");
    assert!(messages.len() < 30, "{} messages", messages.len());
    assert!(notifier.outcomes().digests >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_returns_at_once_while_slack_hangs() {
    let slack = SlackFake::start().await;
    slack.delay_next(Duration::from_secs(30));
    let settings = SlackSettings {
        queue_capacity: 10,
        ..quick()
    };
    let (notifier, _task) = SlackNotifier::start(slack.url(), settings);
    notifier.notify(drift("db-0"));
    assert!(
        slack.wait_for_requests(1, WAIT).await,
        "the sender is stuck on Slack"
    );
    let started = Instant::now();
    for i in 1..=1000 {
        notifier.notify(drift(&format!("db-{i}")));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(200),
        "1000 notify calls took {took:?}"
    );
    let outcomes = notifier.outcomes();
    assert!(outcomes.dropped >= 990, "{outcomes:?}");
    let debug = format!("{notifier:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(
        !debug.contains(&slack.url()) && !debug.contains("XXXX"),
        "{debug}"
    );
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

// A current-thread runtime, so the sender task logs through this thread's subscriber.
#[tokio::test]
async fn the_webhook_url_is_never_logged_nor_in_an_error() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let slack = SlackFake::start().await;
    let secret = "XXXXXXXXXXXXXXXXXXXXXXXX";
    assert!(slack.url().contains(secret));
    slack.respond_next(403, "action_prohibited", None, 2);
    slack.respond_next(500, "oops", None, 4);
    slack.respond_next(410, "channel_is_archived", None, 1);
    let settings = SlackSettings {
        queue_capacity: 1,
        ..quick()
    };
    let (notifier, _task) = SlackNotifier::start(slack.url(), settings);
    for i in 0..5 {
        notifier.notify(drift(&format!("db-{i}")));
        wait_for_outcome(&notifier, "handled", |o| {
            o.failed_permanent + o.failed_transient + o.dropped > i
        })
        .await;
    }
    // The queue holds one: the second of two at once is dropped.
    notifier.notify(drift("db-5"));
    notifier.notify(drift("db-6"));
    let outcomes = wait_for_outcome(&notifier, "all handled", |o| {
        o.failed_permanent + o.failed_transient + o.dropped == 7
    })
    .await;
    assert_eq!(
        (
            outcomes.failed_permanent,
            outcomes.failed_transient,
            outcomes.dropped
        ),
        (5, 1, 1),
        "{outcomes:?}"
    );
    // A connection refused, with a secret of its own.
    let (refused, _task) =
        SlackNotifier::start("http://127.0.0.1:9/services/T1/B1/ZZZZZZZZZZZZ".into(), quick());
    refused.notify(drift("db-7"));
    wait_for_outcome(&refused, "given up", |o| o.failed_transient == 1).await;

    let text = logs.text();
    for expected in [
        "the Slack webhook refused a message",
        "action_prohibited",
        "gave up sending a Slack message",
        "the Slack webhook is gone",
        "dropping Slack notifications",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("the Slack webhook refused a message").count(),
        1,
        "one line per distinct refusal"
    );
    for secret in [secret, "ZZZZZZZZZZZZ", "/services/"] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    for n in [&notifier, &refused] {
        let debug = format!("{n:?}");
        assert!(!debug.contains("XXXX") && !debug.contains("ZZZZ"), "{debug}");
    }
}

#[test]
fn the_webhook_comes_from_the_file_first_then_the_environment() {
    let dir = std::env::temp_dir().join(unique_name("slack-webhook"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("url");
    let from_file = "https://hooks.slack.com/services/T1/B1/fromfile";
    let from_env = "https://hooks.slack.com/services/T1/B1/fromenv";
    std::fs::write(&file, format!("  {from_file}\n")).expect("write");

    assert_eq!(
        webhook_from(Some(&file), Some(from_env.into())).expect("valid"),
        Some(from_file.to_string())
    );
    assert_eq!(
        webhook_from(None, Some(format!(" {from_env} "))).expect("valid"),
        Some(from_env.to_string())
    );
    assert_eq!(webhook_from(None, Some("  ".into())).expect("unset"), None);
    assert_eq!(webhook_from(None, None).expect("unset"), None);

    std::fs::write(&file, "\n").expect("write");
    assert!(
        webhook_from(Some(&file), None).is_err(),
        "an empty Secret is a mistake"
    );
    let missing = dir.join("missing");
    let error = webhook_from(Some(&missing), Some(from_env.into())).expect_err("no file");
    assert!(error.to_string().contains("missing"), "{error}");

    for bad in [
        "http://hooks.slack.com/services/T1/B1/s3cr3t",
        "hooks.slack.com/services/T1/B1/s3cr3t",
        "https://hooks.slack.com/services/T1/B1/s3cr3t with spaces",
    ] {
        let error = webhook_from(None, Some(bad.into())).expect_err(bad);
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("Slack webhook"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        std::fs::write(&file, bad).expect("write");
        let error = webhook_from(Some(&file), None).expect_err(bad);
        assert!(!format!("{error} {error:?}").contains("s3cr3t"));
    }
    let _ = std::fs::remove_dir_all(dir);
}
