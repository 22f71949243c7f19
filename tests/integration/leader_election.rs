//! Two controller processes against one API server: only the leader acts; when it is
//! killed, the other takes over within 20 s and heals what drifted, with no duplicate key
//! or replication.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use backup_warden::api::{BackedUpDatabase, ConditionType};
use backup_warden_testing::{self as testing, condition, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::PostParams};
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn controller(namespace: &str, identity: &str, log: &std::path::Path) -> Child {
    let env = testing::env();
    Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .args(["run", "--listen-address", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--namespace",
            namespace,
            "--leader-election",
            "--lease-namespace",
            namespace,
        ])
        .args([
            "--aws-endpoint-url",
            &env.aws_endpoint,
            "--tenancy-file",
            &testing::open_tenancy_file().display().to_string(),
            "--resync-interval",
            "3s",
            "--settle-interval",
            "1s",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("BACKUP_WARDEN_POD_NAME", identity)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("BACKUP_WARDEN_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(log).expect("log")))
        .stderr(Stdio::null())
        .spawn()
        .expect("start controller")
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("backup-warden")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

fn enforced(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"enforcing\""))
        .count()
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "leader").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "ha-db", 1).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let dir = std::env::temp_dir().join(testing::unique_name("leader"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));

    let mut a = controller(&namespace, "replica-a", &log_a);
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder(&leases).await.as_deref() != Some("replica-a") {
        assert!(Instant::now() < deadline, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut b = controller(&namespace, "replica-b", &log_b);

    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpDatabase = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "metadata": {"name": "ha"},
        "spec": {"instance": {"identifier": "ha-db", "region": "us-east-1", "roleArn": testing::role_arn(&account)}},
    }))
    .expect("object");
    dbs.create(&PostParams::default(), &object).await.expect("create");
    let ready = |db: &BackedUpDatabase| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True");
    wait_for(&dbs, "ha", Duration::from_secs(60), ready).await;
    assert!(enforced(&log_a) > 0, "the leader acted");
    assert_eq!(enforced(&log_b), 0, "the standby did nothing");
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    // The leader dies without a word; the standby takes over within 20 s.
    a.kill().expect("kill a");
    a.wait().expect("reap a");
    let killed = Instant::now();
    while holder(&leases).await.as_deref() != Some("replica-b") {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no takeover within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("takeover after {:.1}s", killed.elapsed().as_secs_f64());

    // Drift made now is healed by the new leader, with no second key or replication.
    rds.modify_db_instance()
        .db_instance_identifier("ha-db")
        .backup_retention_period(2)
        .send()
        .await
        .expect("drift");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = rds
            .describe_db_instances()
            .db_instance_identifier("ha-db")
            .send()
            .await
            .expect("describe");
        if out.db_instances()[0].backup_retention_period() == Some(7) {
            break;
        }
        assert!(Instant::now() < deadline, "the new leader did not heal the drift");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(enforced(&log_b) > 0, "the new leader acted");
    let replicas = aws_sdk_rds::Client::new(&env.aws_config_in("us-west-2", &account).await)
        .describe_db_instance_automated_backups()
        .send()
        .await
        .expect("replicas");
    assert_eq!(
        replicas.db_instance_automated_backups().len(),
        1,
        "one replication across the takeover"
    );
    let keys = aws_sdk_kms::Client::new(&env.aws_config_in("us-west-2", &account).await)
        .list_keys()
        .send()
        .await
        .expect("keys");
    assert_eq!(keys.keys().len(), 1, "one key across the takeover");

    // A clean shutdown hands the lease over at once.
    Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status()
        .expect("term b");
    b.wait().expect("reap b");
    assert_eq!(holder(&leases).await, None, "released on shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
