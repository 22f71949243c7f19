//! `backup-warden check` against the emulator, without a cluster: a table (or JSON) of
//! every check, exit 0 when compliant, 1 on drift, 2 on error, and nothing written.

use std::process::{Command, Output};

use backup_warden_testing as testing;

/// `backup-warden check` with throwaway AWS credentials, calling AWS at `aws_endpoint`.
fn check_command(aws_endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backup-warden"));
    command
        .arg("check")
        .args(["--aws-endpoint-url", aws_endpoint])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("GITHUB_TOKEN");
    command
}

/// A manifest file in a fresh directory (removed by the caller).
fn manifest_file(prefix: &str, manifest: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(testing::unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write");
    (dir, file)
}

fn check(args: &[&str], manifest: &str) -> Output {
    let (dir, file) = manifest_file("check", manifest);
    let out = check_command(&testing::env().aws_endpoint)
        .arg("-f")
        .arg(&file)
        .args(args)
        .output()
        .expect("run check");
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn manifest(identifier: &str, account: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team}}\n---\n\
         apiVersion: backupwarden.io/v1alpha1\nkind: BackedUpDatabase\nmetadata: {{name: orders, namespace: team}}\n\
         spec:\n  instance: {{identifier: {identifier}, region: us-east-1, roleArn: '{}'}}\n{extra}",
        testing::role_arn(account)
    )
}

#[tokio::test]
async fn drift_exits_1_with_a_row_per_check_and_writes_nothing() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "orders-db", 1).await;

    let out = check(&[], &manifest("orders-db", &account, ""));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "drift: {table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.starts_with("KIND"), "{table}");
    assert_eq!(table.lines().count(), 1 + 7, "a row per check: {table}");
    let retention = table
        .lines()
        .find(|l| l.contains("RetentionCompliant"))
        .expect("row");
    for text in [
        "drift",
        "retention of at least 7 days",
        "retention is 1 day (policy 7 days)",
        // `check` changes nothing: the action is what Enforce will do, not what was done.
        "will raise backup retention from 1 day to 7 days",
    ] {
        assert!(retention.contains(text), "{retention:?} lacks {text:?}");
    }

    let json = check(&["--output", "json"], &manifest("orders-db", &account, ""));
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(7));
    assert_eq!(rows[0]["object"], "team/orders");

    // Never writes: the instance is as it was, no replication, no key.
    let out = rds
        .describe_db_instances()
        .db_instance_identifier("orders-db")
        .send()
        .await
        .expect("describe");
    assert_eq!(out.db_instances()[0].backup_retention_period(), Some(1));
    let kms = aws_sdk_kms::Client::new(&env.aws_config_in("us-west-2", &account).await);
    assert!(kms.list_keys().send().await.expect("keys").keys().is_empty());
}

#[tokio::test]
async fn a_compliant_database_exits_0_and_errors_exit_2() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "ledger-db", 7).await;
    let kms = aws_sdk_kms::Client::new(&env.aws_config_in("us-west-2", &account).await);
    let key = kms
        .create_key()
        .send()
        .await
        .expect("key")
        .key_metadata
        .and_then(|m| m.arn)
        .expect("arn");
    aws_sdk_rds::Client::new(&env.aws_config_in("us-west-2", &account).await)
        .start_db_instance_automated_backups_replication()
        .source_db_instance_arn(format!("arn:aws:rds:us-east-1:{account}:db:ledger-db"))
        .kms_key_id(&key)
        .backup_retention_period(7)
        .send()
        .await
        .expect("replication");
    let extra = format!("  replication: {{kmsKey: {{arn: '{key}'}}}}\n");
    let out = check(&[], &manifest("ledger-db", &account, &extra));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = check(&[], "kind: [unclosed");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));
    let out = check(&[], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert_eq!(out.status.code(), Some(2));
    let repo = "apiVersion: backupwarden.io/v1alpha1\nkind: BackedUpRepository\nmetadata: {name: r}\nspec: {repository: o/r, storage: {bucket: b-1}}\n";
    let out = check(&[], repo);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GitHub credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port that counts nothing but connections: `check` must not open one for an invalid manifest.
struct NoCalls(std::net::TcpListener);

impl NoCalls {
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Self(listener)
    }

    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("addr"))
    }

    fn called(&self) -> bool {
        self.0.accept().is_ok()
    }
}

fn check_files(files: &[&std::path::Path], aws_endpoint: &str) -> Output {
    let mut command = check_command(aws_endpoint);
    for file in files {
        command.arg("-f").arg(file);
    }
    command.output().expect("run check")
}

#[test]
fn an_invalid_manifest_exits_2_naming_file_object_and_field_and_observes_nothing() {
    let aws = NoCalls::new();
    let bad = testing::repo_root().join("tests/manifests/bad/db-kms-wrong-region.yaml");
    let good = testing::repo_root().join("examples/backedupdatabase-marketplace-db.yaml");
    let out = check_files(&[&good, &bad], &aws.url());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = format!(
        "error: {}: BackedUpDatabase db-kms-wrong-region: spec.replication.kmsKey.arn: ",
        bad.display()
    );
    assert!(
        stderr.starts_with(&expected),
        "{stderr:?} does not start with {expected:?}"
    );
    assert!(
        stderr.contains("must be a key in spec.replication.destinationRegion"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report for an invalid input");
    assert!(!aws.called(), "check called AWS for an invalid manifest");

    // Every invalid manifest is named, each with its namespace when it has one.
    let (dir, file) = manifest_file(
        "check-invalid",
        "apiVersion: backupwarden.io/v1alpha1\nkind: BackedUpRepository\nmetadata: {name: r, namespace: team}\n\
         spec: {repository: narrative-io/.., storage: {bucket: a..b}}\n---\n\
         apiVersion: backupwarden.io/v1alpha1\nkind: BackedUpDatabase\nmetadata: {name: d}\n\
         spec: {instance: {identifier: d, region: us-east-1}, freshness: {maxRestoreLag: 1d}}\n",
    );
    let out = check_files(&[&file], &aws.url());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for field in [
        "BackedUpRepository team/r: spec.repository: ",
        "BackedUpRepository team/r: spec.storage.bucket: ",
        "BackedUpDatabase d: spec.freshness.maxRestoreLag: ",
    ] {
        assert!(stderr.contains(field), "{stderr} lacks {field}");
    }
    assert!(!aws.called() && !stderr.contains("panicked"));
}

#[tokio::test]
async fn a_reader_that_goes_away_is_no_panic() {
    let env = testing::env();
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "pipe-db", 1).await;
    let (dir, file) = manifest_file("check-pipe", &manifest("pipe-db", &account, ""));

    // The reader is gone before check writes a byte: every write meets a closed pipe.
    let mut child = check_command(&env.aws_endpoint)
        .args(["-o", "json", "-f"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the verdict (drift) still: {stderr}");
    assert!(stderr.is_empty(), "no error spew: {stderr}");

    // As a user types it, through a shell pipeline.
    let script = format!(
        "'{}' check -o json -f '{}' --aws-endpoint-url '{}' | head -c 10; status=${{PIPESTATUS[0]}}; echo; echo \"check=$status\"",
        env!("CARGO_BIN_EXE_backup-warden"),
        file.display(),
        env.aws_endpoint
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("bash");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("[\n  {"), "{stdout}");
    assert!(stdout.contains("check=1"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// One multi-document file of more objects than the YAML parser's per-stream document limit
/// (1,024) is read whole: documents are streamed one at a time.
#[test]
fn a_file_of_1500_objects_is_read_and_every_one_checked() {
    let account = testing::unique_account();
    let role = testing::role_arn(&account);
    let manifest: String = (0..1500)
        .map(|i| {
            format!(
                "---\napiVersion: backupwarden.io/v1alpha1\nkind: BackedUpDatabase\nmetadata:\n  name: db-{i}\n  \
                 namespace: team\nspec:\n  mode: Audit\n  instance:\n    identifier: db-{i}\n    region: us-east-1\n    \
                 roleArn: {role}\n"
            )
        })
        .collect();
    let out = check(&["--output", "json"], &manifest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // None of the instances exists: every object is checked and found missing (exit 1).
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let objects: std::collections::BTreeSet<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["object"].as_str())
        .collect();
    assert_eq!(objects.len(), 1500, "{stderr}");
}
