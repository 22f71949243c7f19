//! Coverage without a cluster, for GitOps teams: the instances a `BackupCoverage` manifest
//! scans that none of the given `BackedUpDatabase` manifests declares (`check --coverage`),
//! and the manifests that would declare them (`coverage export`), ready to commit.

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::json;

use super::{CheckError, Manifests, Row};
use crate::{
    api::{BackupCoverage, GROUP},
    aws::{AwsClients, inventory::Inventory, kms::SdkKms, rds::SdkRds},
    controller::{admission::Claimant, adopt::COVERAGE_LABEL},
    observe,
    policy::coverage::{Tally, object_name, parts, tally},
};

/// One coverage's standing against the manifests: its counts and every undeclared instance.
pub struct Standing<'a> {
    pub coverage: &'a BackupCoverage,
    pub tally: Tally,
}

/// Scans what each coverage of `manifests` names; declared means by a `BackedUpDatabase`
/// among `manifests`.
pub async fn standings<'a>(
    manifests: &'a Manifests,
    aws: &Arc<AwsClients>,
) -> Result<Vec<Standing<'a>>, CheckError> {
    let inventory = Inventory::new(
        Arc::new(SdkRds { clients: aws.clone() }),
        Arc::new(SdkKms { clients: aws.clone() }),
    );
    let declared: HashSet<String> = manifests.databases.iter().map(|db| db.claim()).collect();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut out = Vec::new();
    for coverage in &manifests.coverages {
        let spec = &coverage.spec;
        let (found, _) = observe::coverage::databases(&inventory, spec, Duration::from_secs(3600))
            .await
            .map_err(|e| CheckError::Observe(format!("BackupCoverage {}: {e}", name(coverage))))?;
        let mut first_seen = Default::default();
        let tally = tally(
            &found,
            &observe::coverage::database_selector(spec),
            &observe::coverage::database_exemptions(spec),
            &declared,
            &mut first_seen,
            now,
            usize::MAX,
        );
        out.push(Standing { coverage, tally });
    }
    Ok(out)
}

fn name(coverage: &BackupCoverage) -> String {
    coverage.metadata.name.clone().unwrap_or_default()
}

/// One row per undeclared instance, or one saying the coverage is complete.
pub fn rows(standings: &[Standing<'_>]) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in standings {
        let t = &s.tally;
        let counts = format!(
            "{} in scope: {} declared, {} exempt, {} undeclared",
            t.discovered, t.declared, t.exempt, t.undeclared
        );
        if t.gaps.is_empty() {
            rows.push(Row {
                kind: "BackupCoverage",
                object: name(s.coverage),
                check: "Covered".into(),
                status: "ok",
                reason: "Covered".into(),
                desired: "every instance declared or exempt".into(),
                observed: counts,
                action: String::new(),
            });
            continue;
        }
        for gap in &t.gaps {
            let (account, region, _) = parts(&gap.claim);
            rows.push(Row {
                kind: "BackupCoverage",
                object: name(s.coverage),
                check: "Undeclared".into(),
                status: "drift",
                reason: "Uncovered".into(),
                desired: "a BackedUpDatabase or an exemption".into(),
                observed: format!(
                    "RDS instance {} in {region} (account {account}); {counts}",
                    gap.name
                ),
                action: "declare it: backup-warden coverage export".into(),
            });
        }
    }
    rows
}

/// The `BackedUpDatabase` manifests that declare every undeclared instance, in each
/// coverage's namespace, as one YAML stream. Named after the instance; when two instances
/// share an identifier (in other regions or accounts), the region and then the account are
/// added, and a name the manifests already use is not taken again.
pub fn export(
    manifests: &Manifests,
    standings: &[Standing<'_>],
    mode: Option<&str>,
) -> Result<String, CheckError> {
    let mut names: HashSet<(String, String)> = manifests
        .databases
        .iter()
        .map(|db| {
            (
                db.metadata.namespace.clone().unwrap_or_default(),
                db.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut out = String::new();
    for s in standings {
        let namespace = &s.coverage.spec.namespace;
        for gap in &s.tally.gaps {
            let (account, region, _) = parts(&gap.claim);
            let taken = |n: &str| names.contains(&(namespace.clone(), n.to_string()));
            let name = object_name(&gap.claim, taken).unwrap_or_else(|| gap.claim.replace('/', "-"));
            names.insert((namespace.clone(), name.clone()));
            let role = observe::coverage::role_for(&s.coverage.spec, account);
            let mut instance = json!({"identifier": gap.name, "region": region});
            if let Some(role) = role {
                instance["roleArn"] = role.into();
            }
            let mut spec = json!({"instance": instance});
            if let Some(mode) = mode {
                spec["mode"] = mode.into();
            }
            let manifest = json!({
                "apiVersion": format!("{GROUP}/v1alpha1"),
                "kind": "BackedUpDatabase",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {COVERAGE_LABEL: name_label(s.coverage)},
                },
                "spec": spec,
            });
            out.push_str("---\n");
            out.push_str(
                &serde_saphyr::to_string(&manifest).map_err(|e| CheckError::Observe(e.to_string()))?,
            );
        }
    }
    Ok(out)
}

/// The coverage's name as a label value (at most 63 characters).
fn name_label(coverage: &BackupCoverage) -> String {
    name(coverage).chars().take(63).collect()
}
