//! Coverage without a cluster, for GitOps teams: the instances and repositories a
//! `BackupCoverage` manifest scans that none of the given `BackedUpDatabase` and
//! `BackedUpRepository` manifests declares (`check --coverage`), and the manifests that
//! would declare them (`coverage export`), ready to commit.

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::json;

use super::{CheckError, Manifests, Row};
use crate::{
    api::{BackedUpRepository, BackupCoverage, GROUP},
    aws::{AwsClients, inventory::Inventory, kms::SdkKms, rds::SdkRds},
    controller::{
        admission::Claimant,
        adopt::{Adoptable, COVERAGE_LABEL},
    },
    github::{GitHub, GitHubClient, client::GitHubSettings},
    observe,
    policy::coverage::{Discovered, Tally, object_name, parts, tally},
};

/// One coverage's standing against the manifests: the counts and every undeclared
/// resource, of each kind it scans.
pub struct Standing<'a> {
    pub coverage: &'a BackupCoverage,
    pub databases: Option<Tally>,
    pub repositories: Option<Tally>,
}

/// Scans what each coverage of `manifests` names; declared means by an object among
/// `manifests`. Repositories need `github`.
pub async fn standings<'a>(
    manifests: &'a Manifests,
    aws: &Arc<AwsClients>,
    github: Option<&GitHubSettings>,
) -> Result<Vec<Standing<'a>>, CheckError> {
    let inventory = Inventory::new(
        Arc::new(SdkRds { clients: aws.clone() }),
        Arc::new(SdkKms { clients: aws.clone() }),
    );
    let github = github
        .map(GitHubClient::new)
        .transpose()
        .map_err(|e| CheckError::Observe(e.to_string()))?;
    let databases: HashSet<String> = manifests.databases.iter().map(|db| db.claim()).collect();
    let repositories: HashSet<String> = manifests.repositories.iter().map(|r| r.claim()).collect();
    let now = k8s_openapi::jiff::Timestamp::now();
    let count = |found: &[Discovered], selector, exemptions, declared| {
        tally(
            found,
            &selector,
            &exemptions,
            declared,
            &mut Default::default(),
            now,
            usize::MAX,
        )
    };
    let mut out = Vec::new();
    for coverage in &manifests.coverages {
        let spec = &coverage.spec;
        let failed = |e: String| CheckError::Observe(format!("BackupCoverage {}: {e}", name(coverage)));
        let (found, _) = observe::coverage::databases(&inventory, spec, Duration::from_secs(3600))
            .await
            .map_err(failed)?;
        let mut standing = Standing {
            coverage,
            databases: spec.databases.as_ref().map(|_| {
                count(
                    &found,
                    observe::coverage::database_selector(spec),
                    observe::coverage::database_exemptions(spec),
                    &databases,
                )
            }),
            repositories: None,
        };
        if let Some(scan) = &spec.repositories {
            let github = github.as_ref().ok_or_else(|| {
                failed("repositories need GitHub credentials (--github-token-file, GITHUB_TOKEN, or the --github-app-* flags)".into())
            })?;
            let mut listed = Vec::new();
            for org in &scan.organizations {
                let repos = github
                    .organization_repositories(org)
                    .await
                    .map_err(|e| failed(format!("GitHub organization {org}: {e}")))?
                    .ok_or_else(|| {
                        failed(format!(
                            "GitHub organization {org} does not exist or is not visible"
                        ))
                    })?;
                listed.extend(repos);
            }
            standing.repositories = Some(count(
                &observe::coverage::repositories(spec, &listed),
                observe::coverage::repository_selector(spec),
                observe::coverage::repository_exemptions(spec),
                &repositories,
            ));
        }
        out.push(standing);
    }
    Ok(out)
}

fn name(coverage: &BackupCoverage) -> String {
    coverage.metadata.name.clone().unwrap_or_default()
}

/// One row per undeclared resource, or one per kind saying the coverage is complete.
pub fn rows(standings: &[Standing<'_>]) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in standings {
        let kinds = [
            ("BackedUpDatabase", &s.databases),
            ("BackedUpRepository", &s.repositories),
        ];
        for (kind, tally) in kinds {
            let Some(t) = tally else { continue };
            let counts = format!(
                "{} in scope: {} declared, {} exempt, {} undeclared",
                t.discovered, t.declared, t.exempt, t.undeclared
            );
            let row = |check: &str, status, reason: &str, desired: String, observed, action: &str| Row {
                kind: "BackupCoverage",
                object: name(s.coverage),
                check: check.into(),
                status,
                reason: reason.into(),
                desired,
                observed,
                action: action.into(),
            };
            if t.gaps.is_empty() {
                let desired = format!("every resource declared by a {kind} or exempt");
                rows.push(row("Covered", "ok", "Covered", desired, counts, ""));
                continue;
            }
            for gap in &t.gaps {
                let what = match kind {
                    "BackedUpDatabase" => {
                        let (account, region, _) = parts(&gap.claim);
                        format!("RDS instance {} in {region} (account {account})", gap.name)
                    }
                    _ => format!("repository {}", gap.name),
                };
                let desired = format!("a {kind} or an exemption");
                let action = "declare it: backup-warden coverage export";
                rows.push(row(
                    "Undeclared",
                    "drift",
                    "Uncovered",
                    desired,
                    format!("{what}; {counts}"),
                    action,
                ));
            }
        }
    }
    rows
}

/// The manifests that declare every undeclared instance and repository, in each coverage's
/// namespace, as one YAML stream: named as Adopt names them (a name the manifests already
/// use is not taken again), a repository's spec from the coverage's repository template.
pub fn export(
    manifests: &Manifests,
    standings: &[Standing<'_>],
    mode: Option<&str>,
) -> Result<String, CheckError> {
    let used = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    let mut names: HashSet<(String, String)> =
        manifests.databases.iter().map(|d| used(&d.metadata)).collect();
    names.extend(manifests.repositories.iter().map(|r| used(&r.metadata)));
    let mut out = String::new();
    for s in standings {
        let spec = &s.coverage.spec;
        let namespace = &spec.namespace;
        let mut emit = |kind: &str, name: String, mut body: serde_json::Value| -> Result<(), CheckError> {
            if let Some(mode) = mode {
                body["mode"] = mode.into();
            }
            let manifest = json!({
                "apiVersion": format!("{GROUP}/v1alpha1"),
                "kind": kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {COVERAGE_LABEL: name_label(s.coverage)},
                },
                "spec": body,
            });
            out.push_str("---\n");
            out.push_str(
                &serde_saphyr::to_string(&manifest).map_err(|e| CheckError::Observe(e.to_string()))?,
            );
            Ok(())
        };
        for gap in s.databases.iter().flat_map(|t| &t.gaps) {
            let (account, region, _) = parts(&gap.claim);
            let taken = |n: &str| names.contains(&(namespace.clone(), n.to_string()));
            let name = object_name(&gap.claim, taken).unwrap_or_else(|| gap.claim.replace('/', "-"));
            names.insert((namespace.clone(), name.clone()));
            let mut instance = json!({"identifier": gap.name, "region": region});
            if let Some(role) = observe::coverage::role_for(spec, account) {
                instance["roleArn"] = role.into();
            }
            emit("BackedUpDatabase", name, json!({"instance": instance}))?;
        }
        let gaps: Vec<_> = s.repositories.iter().flat_map(|t| &t.gaps).collect();
        if gaps.is_empty() {
            continue;
        }
        let template = spec.adopt.repository_template.as_ref().ok_or_else(|| {
            CheckError::Observe(format!(
                "BackupCoverage {}: {} repositories are undeclared, and a BackedUpRepository needs a bucket: set spec.adopt.repositoryTemplate.storage",
                name(s.coverage),
                gaps.len()
            ))
        })?;
        for gap in gaps {
            let taken = |n: &str| names.contains(&(namespace.clone(), n.to_string()));
            let Some(name) = BackedUpRepository::name_for(&gap.claim, taken) else {
                continue;
            };
            names.insert((namespace.clone(), name.clone()));
            let mut body = serde_json::to_value(template).map_err(|e| CheckError::Observe(e.to_string()))?;
            body["repository"] = gap.name.clone().into();
            emit("BackedUpRepository", name, body)?;
        }
    }
    Ok(out)
}

/// The coverage's name as a label value (at most 63 characters).
fn name_label(coverage: &BackupCoverage) -> String {
    name(coverage).chars().take(63).collect()
}
