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

/// A replica with leader election and the webhook receiver on `hook`, advertising it.
fn hooked(namespace: &str, identity: &str, metrics: &str, hook: &str, secret: &std::path::Path) -> Child {
    let env = testing::env();
    Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .args(["run", "--listen-address", metrics])
        .args([
            "--namespace",
            namespace,
            "--leader-election",
            "--lease-namespace",
            namespace,
        ])
        .args(["--aws-endpoint-url", &env.aws_endpoint])
        .args([
            "--tenancy-file",
            &testing::open_tenancy_file().display().to_string(),
        ])
        .args(["--github-webhook-listen-address", hook])
        .arg("--github-webhook-secret-file")
        .arg(secret)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("BACKUP_WARDEN_POD_NAME", identity)
        .env("BACKUP_WARDEN_POD_IP", "127.0.0.1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start controller")
}

fn post_ping(hook: &str, delivery: &str) -> (u16, String) {
    use hmac::Mac;
    use std::io::{Read, Write};
    let body = "{}";
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shared").expect("key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let Ok(mut stream) = std::net::TcpStream::connect(hook) else {
        return (0, String::new());
    };
    let _ = write!(
        stream,
        "POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: {delivery}\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn counted(metrics: &str, outcome: &str) -> u64 {
    let addr: std::net::SocketAddr = metrics.parse().expect("addr");
    let scrape = testing::http_get(addr, "/metrics")
        .map(|(_, s)| s)
        .unwrap_or_default();
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "backup_warden_events_total{{outcome=\"{outcome}\",source=\"github\"}} "
            ))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

// Blocking HTTP beside the processes: the test's own runtime only waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_to_the_standby_is_handled_by_the_leader() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "leader-hooks").await;
    let dir = std::env::temp_dir().join(testing::unique_name("leader-hooks"));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "shared").expect("secret");
    let replicas: Vec<(String, String, String)> = ["first", "second"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
            )
        })
        .collect();
    let mut children: Vec<Child> = replicas
        .iter()
        .map(|(name, metrics, hook)| hooked(&namespace, name, metrics, hook, &secret))
        .collect();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(h) = holder(&leases).await.filter(|h| !h.is_empty()) {
            break h;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lease = leases.get("backup-warden").await.expect("lease");
    let advertised = lease
        .metadata
        .annotations
        .and_then(|a| a.get("backupwarden.io/webhook-address").cloned());
    let (leading, standing) = if replicas[0].0 == leader {
        (&replicas[0], &replicas[1])
    } else {
        (&replicas[1], &replicas[0])
    };
    assert_eq!(advertised.as_deref(), Some(leading.2.as_str()));
    // The standby's receiver answers, with the leader's answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, response) = loop {
        let answer = tokio::task::spawn_blocking({
            let hook = standing.2.clone();
            move || post_ping(&hook, "d-standby")
        })
        .await
        .expect("post");
        if answer.0 != 0 {
            break answer;
        }
        assert!(Instant::now() < deadline, "the standby's receiver never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 202, "{response}");
    assert!(response.contains("passed to the leader"), "{response}");
    assert_eq!(counted(&leading.1, "ignored"), 1, "the leader handled the ping");
    assert_eq!(counted(&standing.1, "forwarded"), 1);
    // The same delivery again, to the leader: a replay.
    let hook = leading.2.clone();
    let (again, _) = tokio::task::spawn_blocking(move || post_ping(&hook, "d-standby"))
        .await
        .expect("post");
    assert_eq!(again, 409);
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(dir);
}
