//! GitHub webhook events, to the repositories they changed. Pure: the receiver hands each
//! admitted delivery here. GitHub sends no event when a workflow is disabled: the sweep
//! keeps catching that.

use serde_json::Value;

use super::Target;

/// What one delivery says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Changed(Vec<Target>),
    /// An event that changes nothing backup-warden keeps; why, for the log.
    Ignored(String),
}

const WORKFLOWS: &str = ".github/workflows/";

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Parses a delivery of event `event` (`X-GitHub-Event`); `Err` when the body cannot be read.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, String> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if event == "ping" {
        return Ok(Parsed::Ignored("ping".into()));
    }
    let repository = || {
        text(&payload, "/repository/full_name")
            .map(str::to_string)
            .ok_or_else(|| format!("{event}: no repository.full_name"))
    };
    let one = |name: String| Ok(Parsed::Changed(vec![Target::Repository { name }]));
    match event {
        "push" => {
            let name = repository()?;
            let default = text(&payload, "/repository/default_branch").unwrap_or("main");
            if text(&payload, "/ref") != Some(&format!("refs/heads/{default}")) {
                return Ok(Parsed::Ignored("push to another branch".into()));
            }
            // The payload lists at most 20 commits: a push of more, or one without them,
            // may have touched the workflows.
            let commits = payload.get("commits").and_then(Value::as_array);
            let listed_all = commits.is_some_and(|c| !c.is_empty() && c.len() < 20);
            let touched = commits.into_iter().flatten().any(|c| {
                ["added", "removed", "modified"].iter().any(|k| {
                    c.get(*k)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .any(|p| p.starts_with(WORKFLOWS))
                })
            });
            if touched || !listed_all {
                one(name)
            } else {
                Ok(Parsed::Ignored("push without a workflow change".into()))
            }
        }
        "workflow_run" => match text(&payload, "/action") {
            Some("completed") => one(repository()?),
            action => Ok(Parsed::Ignored(format!("workflow_run {}", action.unwrap_or("?")))),
        },
        "repository" => {
            let name = repository()?;
            let listed = |full_name: String, gone: bool| Target::Listed {
                repository: crate::github::OrgRepository {
                    full_name,
                    archived: payload
                        .pointer("/repository/archived")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    fork: payload
                        .pointer("/repository/fork")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    topics: payload
                        .pointer("/repository/topics")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect(),
                },
                gone,
            };
            let owner = name.split_once('/').map_or("", |(o, _)| o);
            let short = name.split_once('/').map_or("", |(_, n)| n);
            // Where it was, for a rename or a transfer.
            let before = match text(&payload, "/action") {
                Some("renamed") => {
                    text(&payload, "/changes/repository/name/from").map(|from| format!("{owner}/{from}"))
                }
                Some("transferred") => text(&payload, "/changes/owner/from/organization/login")
                    .or_else(|| text(&payload, "/changes/owner/from/user/login"))
                    .map(|from| format!("{from}/{short}")),
                _ => None,
            };
            match text(&payload, "/action") {
                Some(
                    action @ ("created" | "deleted" | "archived" | "unarchived" | "transferred" | "renamed"),
                ) => {
                    let gone = action == "deleted";
                    let mut targets = vec![
                        Target::Repository { name: name.clone() },
                        listed(name.clone(), gone),
                    ];
                    if let Some(before) = before {
                        targets.push(Target::Repository { name: before.clone() });
                        targets.push(listed(before, true));
                    }
                    Ok(Parsed::Changed(targets))
                }
                action => Ok(Parsed::Ignored(format!("repository {}", action.unwrap_or("?")))),
            }
        }
        other => Ok(Parsed::Ignored(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repo(name: &str) -> Vec<Target> {
        vec![Target::Repository { name: name.into() }]
    }

    fn push(commits: Value) -> Vec<u8> {
        json!({
            "ref": "refs/heads/main",
            "repository": {"full_name": "acme/shop", "default_branch": "main"},
            "commits": commits,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_push_matters_when_it_touches_the_workflows_on_the_default_branch() {
        let touched =
            push(json!([{"added": [], "removed": [".github/workflows/backup-daily.yml"], "modified": []}]));
        assert_eq!(parse("push", &touched), Ok(Parsed::Changed(repo("acme/shop"))));
        let elsewhere = push(json!([{"added": ["README.md"], "removed": [], "modified": []}]));
        assert_eq!(
            parse("push", &elsewhere),
            Ok(Parsed::Ignored("push without a workflow change".into()))
        );
        // No commits listed (a tag-like push, or too many): looked at anyway.
        assert_eq!(
            parse("push", &push(json!([]))),
            Ok(Parsed::Changed(repo("acme/shop")))
        );
        let branch = json!({"ref": "refs/heads/feature", "repository": {"full_name": "acme/shop", "default_branch": "main"}, "commits": []});
        assert_eq!(
            parse("push", branch.to_string().as_bytes()),
            Ok(Parsed::Ignored("push to another branch".into()))
        );
    }

    #[test]
    fn runs_and_repository_changes() {
        let run = |action: &str| {
            json!({"action": action, "repository": {"full_name": "acme/shop"}})
                .to_string()
                .into_bytes()
        };
        assert_eq!(
            parse("workflow_run", &run("completed")),
            Ok(Parsed::Changed(repo("acme/shop")))
        );
        assert_eq!(
            parse("workflow_run", &run("requested")),
            Ok(Parsed::Ignored("workflow_run requested".into()))
        );
        assert_eq!(
            parse("repository", &run("edited")),
            Ok(Parsed::Ignored("repository edited".into()))
        );
        let listed = |name: &str, archived: bool, gone: bool| Target::Listed {
            repository: crate::github::OrgRepository {
                full_name: name.into(),
                archived,
                fork: false,
                topics: Vec::new(),
            },
            gone,
        };
        let archived =
            json!({"action": "archived", "repository": {"full_name": "acme/shop", "archived": true}});
        assert_eq!(
            parse("repository", archived.to_string().as_bytes()),
            Ok(Parsed::Changed(vec![
                Target::Repository {
                    name: "acme/shop".into()
                },
                listed("acme/shop", true, false)
            ]))
        );
        let renamed = json!({"action": "renamed", "repository": {"full_name": "acme/store"},
            "changes": {"repository": {"name": {"from": "shop"}}}});
        assert_eq!(
            parse("repository", renamed.to_string().as_bytes()),
            Ok(Parsed::Changed(vec![
                Target::Repository {
                    name: "acme/store".into()
                },
                listed("acme/store", false, false),
                Target::Repository {
                    name: "acme/shop".into()
                },
                listed("acme/shop", false, true),
            ]))
        );
        let moved = json!({"action": "transferred", "repository": {"full_name": "beta/shop", "topics": ["No-Backup"]},
            "changes": {"owner": {"from": {"organization": {"login": "acme"}}}}});
        let Ok(Parsed::Changed(targets)) = parse("repository", moved.to_string().as_bytes()) else {
            panic!("transferred")
        };
        assert!(
            matches!(&targets[3], Target::Listed { repository, gone: true } if repository.full_name == "acme/shop"),
            "{targets:?}"
        );
        assert!(
            matches!(&targets[1], Target::Listed { repository, gone: false } if repository.topics == ["no-backup"])
        );
        let deleted = json!({"action": "deleted", "repository": {"full_name": "acme/shop"}});
        assert_eq!(
            parse("repository", deleted.to_string().as_bytes()),
            Ok(Parsed::Changed(vec![
                Target::Repository {
                    name: "acme/shop".into()
                },
                listed("acme/shop", false, true)
            ]))
        );
        assert_eq!(parse("ping", b"{}"), Ok(Parsed::Ignored("ping".into())));
        assert_eq!(
            parse("issues", &run("opened")),
            Ok(Parsed::Ignored("issues".into()))
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        assert!(parse("push", b"{oops").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            parse("workflow_run", br#"{"action": "completed"}"#),
            Err("workflow_run: no repository.full_name".into())
        );
    }
}
