//! The in-process AWS model the scale benchmark runs against behaves as the emulator and
//! AWS do where the controller can tell: listings cost a request per 100 items, an empty
//! bucket refuses with ThrottlingException after the SDK's retries, and a started
//! replication is pending before it replicates.

use std::{sync::Arc, time::Duration};

use backup_warden::aws::{ApiCalls, AwsErrorKind, Scope, budget::Rate, rds::Rds};
use backup_warden_testing::model::AwsModel;

fn scope() -> Scope {
    Scope::new(Some("arn:aws:iam::210987654321:role/backup-warden"), "eu-west-1")
}

#[tokio::test]
async fn listings_cost_one_request_per_page_and_an_empty_bucket_throttles() {
    let calls = Arc::new(ApiCalls::default());
    let rate = Rate {
        per_second: 0.5,
        burst: 4,
    };
    let model = AwsModel::new(calls.clone(), rate, Duration::from_millis(100));
    for i in 0..250 {
        model.add_instance(&scope(), &format!("db-{i:03}"), 1);
    }
    assert_eq!(model.instances(&scope()).await.expect("list").len(), 250);
    assert_eq!(calls.calls("DescribeDBInstances"), 3);
    // One token left: the next request passes, the one after waits out the SDK's retries
    // (1 s, then 2 s: at 0.5/s one token comes back) and passes on its last attempt.
    assert!(model.instance(&scope(), "db-001").await.expect("read").is_some());
    assert!(model.instance(&scope(), "db-002").await.expect("read").is_some());
    let snapshot = calls.snapshot();
    let count = snapshot
        .values()
        .map(|c| (c.calls, c.errors))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(count, (7, 2), "{snapshot:?}");
    // With no token for the three attempts, the call fails as AWS answers.
    let none = AwsModel::new(
        Arc::new(ApiCalls::default()),
        Rate {
            per_second: 0.01,
            burst: 1,
        },
        Duration::ZERO,
    );
    none.instance(&scope(), "x").await.expect("the first passes");
    let refused = none.instance(&scope(), "x").await.expect_err("throttled");
    assert_eq!(
        (refused.kind, refused.code.as_str()),
        (AwsErrorKind::Transient, "ThrottlingException")
    );
}

#[tokio::test]
async fn a_started_replication_is_pending_then_replicating() {
    let model = AwsModel::new(
        Arc::new(ApiCalls::default()),
        Rate::default(),
        Duration::from_millis(200),
    );
    model.add_instance(&scope(), "orders", 7);
    let source = model
        .instance(&scope(), "orders")
        .await
        .expect("read")
        .expect("found")
        .arn;
    let destination = Scope::new(scope().role_arn.as_deref(), "us-west-2");
    let started = model
        .start_replication(
            &destination,
            &source,
            "arn:aws:kms:us-west-2:210987654321:key/k",
            7,
        )
        .await
        .expect("start");
    assert_eq!(started.status, "pending");
    assert!(
        model
            .start_replication(&destination, &source, "k", 7)
            .await
            .is_err(),
        "a second start for the same source is refused"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let now = model
        .automated_backups_of(&destination, &source)
        .await
        .expect("read");
    assert_eq!(
        now.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["replicating"]
    );
}
