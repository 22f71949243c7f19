//! The `backup-daily.yml` workflow: rendered from a `BackedUpRepository`, and checked (as
//! parsed YAML, so comments and key order do not matter) for calling the reusable backup
//! workflow at an allowed ref on a daily schedule. Pure: text in, text or verdict out.

use serde_json::Value;

use crate::{api::repository::BackedUpRepositorySpec, github::FileChange};

/// The workflow file `content` as a change to the repository whose object is `(namespace,
/// name)`: the commit, and the pull request's text that explains it.
pub fn proposal(
    spec: &BackedUpRepositorySpec,
    object: &(String, String),
    base_branch: &str,
    content: &str,
) -> FileChange {
    let prefix = spec.storage_prefix();
    FileChange {
        path: spec.workflow.path.clone(),
        content: content.to_string(),
        base_branch: base_branch.to_string(),
        commit_message: format!("Add the daily backup workflow ({})", spec.workflow.path),
        title: "Back this repository up daily (backup-warden)".to_string(),
        body: format!(
            "The company backup policy says every repository is backed up to S3 once a day.\n\n\
             This adds `{path}`, which calls the shared reusable workflow `{uses}` on the schedule `{cron}` (UTC). \
             Backups land in `s3://{bucket}/{prefix}` and are kept {days} days.\n\n\
             Opened by backup-warden for the BackedUpRepository `{ns}/{name}`; change that resource, not this file. \
             Merging this pull request makes the repository compliant.",
            path = spec.workflow.path,
            uses = spec.reusable_workflow(),
            cron = spec.workflow.schedule,
            bucket = spec.storage.bucket,
            days = spec.storage.retention_days,
            ns = object.0,
            name = object.1,
        ),
    }
}

/// Renders the workflow file a repository should carry.
pub fn render(spec: &BackedUpRepositorySpec) -> String {
    let reusable = spec.reusable_workflow();
    let git_ref = spec.workflow.allowed_refs.first().map_or("main", String::as_str);
    let schedule = &spec.workflow.schedule;
    let bucket = &spec.storage.bucket;
    let region = &spec.storage.region;
    let prefix = spec.storage_prefix();
    format!(
        "# Managed by backup-warden (BackedUpRepository {repository}): backs this repository up to S3\n\
         # once a day through the shared reusable workflow. Change the BackedUpRepository, not this file.\n\
         name: Daily backup\n\
         \n\
         on:\n\
         \x20 schedule:\n\
         \x20   - cron: \"{schedule}\"\n\
         \x20 workflow_dispatch: {{}}\n\
         \n\
         permissions:\n\
         \x20 contents: read\n\
         \x20 id-token: write\n\
         \n\
         jobs:\n\
         \x20 backup:\n\
         \x20   uses: {reusable}@{git_ref}\n\
         \x20   with:\n\
         \x20     bucket: {bucket}\n\
         \x20     region: {region}\n\
         \x20     prefix: {prefix}\n\
         \x20   secrets: inherit\n",
        repository = spec.repository,
    )
}

/// Why a workflow file is not current, if it is not.
pub fn check(text: &str, reusable: &str, allowed_refs: &[String]) -> Result<(), String> {
    let doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| format!("the file is not valid YAML: {}", first_line(&e.to_string())))?;
    let calls: Vec<&str> = doc
        .get("jobs")
        .and_then(Value::as_object)
        .map(|jobs| {
            jobs.values()
                .filter_map(|job| job.get("uses").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let wanted = |call: &&str| {
        call.split_once('@')
            .is_some_and(|(path, git_ref)| path == reusable && allowed_refs.iter().any(|r| r == git_ref))
    };
    if !calls.iter().any(wanted) {
        let refs = allowed_refs.join(", ");
        return Err(if calls.is_empty() {
            format!("no job calls {reusable} (allowed refs: {refs})")
        } else {
            format!("jobs call {} instead of {reusable}@{{{refs}}}", calls.join(", "))
        });
    }
    let crons: Vec<&str> = doc
        .get("on")
        .and_then(|on| on.get("schedule"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.get("cron").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !crons.iter().any(|c| is_daily(c)) {
        return Err(if crons.is_empty() {
            "the workflow has no schedule".to_string()
        } else {
            format!("the schedule {} is not daily", crons.join(", "))
        });
    }
    Ok(())
}

/// A cron that fires at least once every day: fixed minute and hour(s), any day.
pub fn is_daily(cron: &str) -> bool {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let numbers = |f: &str, max: u32| f.split(',').all(|n| n.parse::<u32>().is_ok_and(|n| n <= max));
    fields.len() == 5 && numbers(fields[0], 59) && numbers(fields[1], 23) && fields[2..] == ["*", "*", "*"]
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BackedUpRepositorySpec {
        serde_json::from_value(serde_json::json!({
            "repository": "narrative-io/marketplace",
            "storage": {"bucket": "narrative-github-backups"},
        }))
        .expect("spec")
    }

    const REUSABLE: &str = "narrative-io/github-common/.github/workflows/backup.yml";

    fn main_only() -> Vec<String> {
        vec!["main".to_string()]
    }

    #[test]
    fn the_rendered_file_is_current() {
        let text = render(&spec());
        assert_eq!(check(&text, REUSABLE, &main_only()), Ok(()));
        assert!(text.contains("uses: narrative-io/github-common/.github/workflows/backup.yml@main"));
        assert!(text.contains("cron: \"17 3 * * *\""));
        assert!(text.contains("prefix: narrative-io/marketplace/"));
    }

    #[test]
    fn comments_and_key_order_do_not_matter() {
        let text = "jobs:\n  nightly:\n    secrets: inherit  # keep\n    uses: narrative-io/github-common/.github/workflows/backup.yml@v2\n\
                    # the trigger\non:\n  schedule:\n  - cron: '0 4 * * *'\nname: x\n";
        assert_eq!(check(text, REUSABLE, &["main".into(), "v2".into()]), Ok(()));
    }

    #[test]
    fn what_is_not_current_is_said() {
        let cases = [
            ("jobs: [", "not valid YAML"),
            (
                "on:\n  schedule:\n  - cron: '0 4 * * *'\njobs:\n  b:\n    runs-on: ubuntu-latest\n",
                "no job calls",
            ),
            (
                "on:\n  schedule:\n  - cron: '0 4 * * *'\njobs:\n  b:\n    uses: narrative-io/github-common/.github/workflows/backup.yml@dev\n",
                "instead of narrative-io/github-common/.github/workflows/backup.yml@{main}",
            ),
            (
                "on:\n  schedule:\n  - cron: '0 4 * * *'\njobs:\n  b:\n    uses: someone/else/.github/workflows/backup.yml@main\n",
                "jobs call someone/else",
            ),
            (
                "on: push\njobs:\n  b:\n    uses: narrative-io/github-common/.github/workflows/backup.yml@main\n",
                "no schedule",
            ),
            (
                "on:\n  schedule:\n  - cron: '0 4 * * 1'\njobs:\n  b:\n    uses: narrative-io/github-common/.github/workflows/backup.yml@main\n",
                "0 4 * * 1 is not daily",
            ),
        ];
        for (text, why) in cases {
            let verdict = check(text, REUSABLE, &main_only());
            assert!(
                verdict.as_ref().is_err_and(|e| e.contains(why)),
                "{text:?}: {verdict:?}"
            );
        }
    }

    #[test]
    fn daily_crons() {
        for daily in ["17 3 * * *", "0 0 * * *", "30 1,13 * * *"] {
            assert!(is_daily(daily), "{daily}");
        }
        for not_daily in [
            "0 3 * * 1",
            "0 3 1 * *",
            "*/5 * * * *",
            "0 3 * *",
            "61 3 * * *",
            "0 24 * * *",
        ] {
            assert!(!is_daily(not_daily), "{not_daily}");
        }
    }
}
