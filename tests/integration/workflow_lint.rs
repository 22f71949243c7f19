//! The rendered backup-daily.yml is a valid GitHub Actions workflow, as actionlint (built
//! from the Go module proxy by hack/actionlint.sh) judges it, for every delivery and
//! schedule shape the API allows.

use std::process::Command;

use backup_warden::{api::BackedUpRepositorySpec, workflow};
use backup_warden_testing as testing;
use serde_json::json;

fn actionlint() -> String {
    let out = Command::new("bash")
        .arg(testing::repo_root().join("hack/actionlint.sh"))
        .output()
        .expect("run hack/actionlint.sh");
    assert!(
        out.status.success(),
        "hack/actionlint.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn lint(text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(testing::unique_name("actionlint"));
    let workflows = dir.join(".github/workflows");
    std::fs::create_dir_all(&workflows).expect("dir");
    let file = workflows.join("backup-daily.yml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(actionlint())
        .arg("-no-color")
        .arg(&file)
        .current_dir(&dir)
        .output()
        .expect("run actionlint");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn rendered_workflows_pass_actionlint() {
    let specs = [
        json!({"repository": "narrative-io/marketplace", "storage": {"bucket": "narrative-github-backups"}}),
        json!({"repository": "narrative-io/api", "storage": {"bucket": "b.with.dots", "region": "eu-west-1", "prefix": "gh/api/"},
               "workflow": {"schedule": "0 0 * * *", "allowedRefs": ["v2", "main"], "uses": "platform/shared/.github/workflows/backup.yaml"}}),
    ];
    for spec in specs {
        let spec: BackedUpRepositorySpec = serde_json::from_value(spec).expect("spec");
        let text = workflow::render(&spec);
        let (ok, output) = lint(&text);
        assert!(
            ok,
            "actionlint refused the rendered workflow:\n{output}\n---\n{text}"
        );
    }
}

#[test]
fn actionlint_does_refuse_a_broken_workflow() {
    // Proves the check can fail: a reusable-workflow job may not also have steps.
    let broken = "on:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  backup:\n    uses: o/r/.github/workflows/backup.yml@main\n    steps:\n      - run: echo\n";
    let (ok, output) = lint(broken);
    assert!(!ok, "actionlint accepted a broken workflow: {output}");
}
