//! `backup-warden run` as a process: it serves /healthz and /readyz once it has checked the
//! CRDs, stops cleanly on SIGTERM, and refuses to start, saying how to install the CRDs,
//! when they are missing.

use std::{
    net::SocketAddr,
    process::{Child, Command},
    time::{Duration, Instant},
};

use backup_warden::api::{BackedUpRepository, ConditionType};
use backup_warden_testing::{self as testing, free_port, http_get, http_status, output_of, wait_exit};
use kube::{Api, api::PostParams};

fn spawn_run(kubeconfig: &std::path::Path, addr: SocketAddr, namespace: &str) -> Child {
    testing::spawn_controller(
        env!("CARGO_BIN_EXE_backup-warden"),
        kubeconfig,
        addr,
        namespace,
        &[],
    )
}

#[tokio::test]
async fn run_serves_health_and_stops_on_sigterm() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "run").await;
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = spawn_run(&env.kubeconfig, addr, &namespace);

    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(addr, "/readyz") != Some(200) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "run exited early: {}",
            output_of(child)
        );
        assert!(Instant::now() < deadline, "/readyz not 200 within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_status(addr, "/healthz"), Some(200));
    assert_eq!(http_status(addr, "/nope"), Some(404));
    let (status, scrape) = http_get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    // GitHub is not configured: no GitHub series (a 0 would read as "rate limit exhausted").
    assert!(
        !scrape.contains("backup_warden_github_rate_limit_remaining"),
        "{scrape}"
    );
    // The process and the build are described.
    for series in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        &format!(
            "backup_warden_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(scrape.contains(series), "no {series:?} in {scrape}");
    }
    testing::promtool_check_metrics(&scrape);

    // Without GitHub credentials a repository says so in its status instead of showing nothing.
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);
    let repo: BackedUpRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "docs"},
        "spec": {"repository": "narrative-io/docs", "storage": {"bucket": "backups", "region": "us-east-1"}},
    }))
    .expect("object");
    repos.create(&PostParams::default(), &repo).await.expect("create");
    let repo = testing::wait_for(&repos, "docs", Duration::from_secs(30), |r| {
        testing::repo_condition(r, ConditionType::Stalled).is_some()
    })
    .await;
    for t in [ConditionType::Ready, ConditionType::Stalled] {
        let (status, reason, message) = testing::repo_condition(&repo, t).expect("condition");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            (
                if t == ConditionType::Ready {
                    "False"
                } else {
                    "True"
                },
                "CredentialsMissing"
            ),
            "{t:?}"
        );
        assert!(message.contains("no GitHub credentials"), "{message}");
    }
    assert_eq!(
        repo.status.and_then(|s| s.observed_generation),
        repo.metadata.generation
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(
        status.success(),
        "SIGTERM should end run cleanly, got {status}: {}",
        output_of(child)
    );
    assert_eq!(http_status(addr, "/healthz"), None, "the port is released");
}

/// An API server that knows no custom resources: every request is a 404 `Status`, as
/// kube-apiserver answers for a resource whose CRD is not installed.
async fn api_server_without_crds() -> SocketAddr {
    use axum::{
        Router,
        http::{StatusCode, header},
    };
    let app = Router::new().fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound",
                "details": {}, "code": 404
            })
            .to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn run_without_crds_says_how_to_install_them() {
    let api = api_server_without_crds().await;
    let dir = std::env::temp_dir().join(testing::unique_name("kubeconfig"));
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://{api}'}}\n\
             users:\n- name: u\n  user: {{token: not-a-real-token}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
    )
    .expect("write kubeconfig");

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = spawn_run(&kubeconfig, addr, "default");
    let status = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut child, Duration::from_secs(30));
        (status, output_of(child))
    })
    .await
    .expect("join");
    let (status, output) = status;
    assert!(!status.success(), "run must fail without CRDs");
    assert!(
        output.contains("backedupdatabases.backupwarden.io is not installed"),
        "{output}"
    );
    assert!(
        output.contains("backup-warden crd | kubectl apply --server-side -f -"),
        "{output}"
    );
    assert!(
        !output.contains("not-a-real-token"),
        "no credential in logs: {output}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn run_reads_the_event_queue_and_serves_signed_webhooks_only() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "run-events").await;
    let sqs = aws_sdk_sqs::Client::new(&env.aws_config("us-east-1").await);
    let queue = sqs
        .create_queue()
        .queue_name(testing::unique_name("run-events"))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_string();
    let dir = std::env::temp_dir().join(testing::unique_name("run-events"));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret\n").expect("secret");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let hook: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (hook_text, secret_text) = (hook.to_string(), secret.display().to_string());
    let mut child = testing::spawn_controller(
        env!("CARGO_BIN_EXE_backup-warden"),
        &env.kubeconfig,
        addr,
        &namespace,
        &[
            "--aws-endpoint-url",
            &env.aws_endpoint,
            "--events-queue-url",
            &queue,
            "--github-webhook-listen-address",
            &hook_text,
            "--github-webhook-secret-file",
            &secret_text,
        ],
    );
    // The queue is polled: the gauge moves past the start time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let polled = |scrape: &str| {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix("backup_warden_event_queue_last_poll_timestamp_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let first = loop {
        if let Some(value) = http_get(addr, "/metrics")
            .and_then(|(_, s)| polled(&s))
            .filter(|v| *v > 0.0)
        {
            break value;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "run exited: {}",
            output_of(child)
        );
        assert!(Instant::now() < deadline, "the queue gauge was never set");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // An event nobody's object is concerned by: received at once (long polling), counted.
    sqs.send_message()
        .queue_url(&queue)
        .message_body(
            serde_json::json!({"detail-type": "AWS API Call via CloudTrail", "detail": {
                "eventSource": "rds.amazonaws.com", "eventName": "ModifyDBInstance",
                "awsRegion": "us-east-1", "eventTime": "2026-12-01T10:00:00Z",
                "requestParameters": {"dBInstanceIdentifier": "nobody-db"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = http_get(addr, "/metrics").map(|(_, s)| s).unwrap_or_default();
        let now = polled(&scrape).unwrap_or_default();
        if now > first && scrape.contains("backup_warden_events_total{outcome=\"ignored\",source=\"aws\"} 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the event was not received: {scrape}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The receiver answers on its own port, and only to what is signed with the secret.
    let post = move |signature: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(hook).expect("connect");
        let body = "{}";
        write!(
            stream,
            "POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: d1\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.split_whitespace().nth(1).unwrap_or_default().to_string()
    };
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(b"{}");
    let signed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let (forged, good) = tokio::task::spawn_blocking(move || (post("sha256=00"), post(&signed)))
        .await
        .expect("posts");
    assert_eq!((forged.as_str(), good.as_str()), ("401", "202"));
    let _ = std::fs::remove_dir_all(dir);
    // SIGTERM, as the pod's termination sends it: the event sources stop with the rest.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
