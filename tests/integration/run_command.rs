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
