//! `backup-warden check`: validates manifests as the API server would (the shared
//! [`crate::api::validation`]), then evaluates them once against AWS and GitHub, without a
//! cluster, with the controller's own observe and evaluate code, and never writes. For CI
//! pipelines and cron jobs: exit 0 when compliant, 1 on drift, 2 on error (an invalid
//! manifest is an error, and nothing is observed for it).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;
use serde_json::Value;

pub mod coverage;

use crate::{
    api::{
        BackedUpDatabase, BackedUpRepository, BackupCoverage, RetainedAuditTrail,
        validation::{ManifestValidator, SchemaError},
    },
    aws::{
        ApiCalls, AwsClients, AwsSettings, inventory::BucketInventory, inventory::Inventory, kms::SdkKms,
        rds::SdkRds, s3::SdkS3,
    },
    github::{GitHub, GitHubClient, client::GitHubSettings, inventory::RepoInventory},
    policy::{Finding, Verdict, database::Policy, repository::RepositoryPolicy, trail::TrailPolicy},
};

/// One row of the report.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    pub kind: &'static str,
    pub object: String,
    pub check: String,
    pub status: &'static str,
    pub reason: String,
    pub desired: String,
    pub observed: String,
    /// What the controller would do about it (nothing in Audit mode: the plan is empty).
    pub action: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: String, message: String },
    /// Manifests the API server would refuse, each with every reason.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidManifest>),
    #[error("the manifest validator cannot be built: {0}")]
    Validator(#[from] SchemaError),
    #[error(
        "no BackedUpDatabase, BackedUpRepository, RetainedAuditTrail or BackupCoverage in the given manifests"
    )]
    Empty,
    #[error("{0}")]
    Observe(String),
}

/// One manifest the API server would refuse, and why: one line per field.
#[derive(Debug)]
pub struct InvalidManifest {
    pub path: String,
    pub kind: String,
    /// namespace/name, or the name alone when the manifest names no namespace.
    pub object: String,
    pub errors: Vec<String>,
}

impl std::fmt::Display for InvalidManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {} {}: {e}", self.path, self.kind, self.object))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The objects of backup-warden's kinds in some manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    pub databases: Vec<BackedUpDatabase>,
    pub repositories: Vec<BackedUpRepository>,
    pub coverages: Vec<BackupCoverage>,
    pub trails: Vec<RetainedAuditTrail>,
}

/// The objects of every kind in the given files, directories (recursively, *.yaml/*.yml) or
/// `-`, each validated as the API server would on a create (schema, defaults, CEL rules,
/// metadata) and read back as the controller would read it from the API server.
pub fn load(inputs: &[PathBuf]) -> Result<Manifests, CheckError> {
    let mut files = Vec::new();
    for input in inputs {
        if input == Path::new("-") {
            files.push(input.clone());
        } else {
            collect(input, &mut files)?;
        }
    }
    let validator = ManifestValidator::new()?;
    let (mut found, mut invalid) = (Manifests::default(), Vec::new());
    for file in files {
        let path = file.display().to_string();
        let read_err = |source| CheckError::Read {
            path: path.clone(),
            source,
        };
        let mut reader: Box<dyn std::io::Read> = if file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(&file).map_err(read_err)?,
            ))
        };
        // Streamed one document at a time, with the parser's limits per document: a file of
        // any number of objects is read, none of them held as text.
        for doc in serde_saphyr::read::<_, Value>(&mut reader) {
            let doc = doc.map_err(|e| CheckError::Yaml {
                path: path.clone(),
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?;
            if !is_ours(&doc) {
                continue;
            }
            let doc = &doc;
            match read(&validator, doc) {
                Ok(Object::Database(db)) => found.databases.push(*db),
                Ok(Object::Repository(repo)) => found.repositories.push(*repo),
                Ok(Object::Coverage(coverage)) => found.coverages.push(*coverage),
                Ok(Object::Trail(trail)) => found.trails.push(*trail),
                Err(errors) => invalid.push(InvalidManifest {
                    path: path.clone(),
                    kind: text_at(doc, "/kind").unwrap_or("object").to_string(),
                    object: object_name(doc),
                    errors,
                }),
            }
        }
    }
    if !invalid.is_empty() {
        return Err(CheckError::Invalid(invalid));
    }
    if found.databases.is_empty()
        && found.repositories.is_empty()
        && found.coverages.is_empty()
        && found.trails.is_empty()
    {
        return Err(CheckError::Empty);
    }
    Ok(found)
}

enum Object {
    Database(Box<BackedUpDatabase>),
    Repository(Box<BackedUpRepository>),
    Coverage(Box<BackupCoverage>),
    Trail(Box<RetainedAuditTrail>),
}

fn is_ours(doc: &Value) -> bool {
    text_at(doc, "/apiVersion").is_some_and(|v| v.starts_with(&format!("{}/", crate::api::GROUP)))
}

/// Validates one manifest and decodes what the API server would store.
fn read(validator: &ManifestValidator, doc: &Value) -> Result<Object, Vec<String>> {
    if !validator.knows(doc) {
        return Err(vec![format!(
            "no such kind: {} {} is not served by these CRDs",
            text_at(doc, "/apiVersion").unwrap_or_default(),
            text_at(doc, "/kind").unwrap_or_default(),
        )]);
    }
    let stored = validator
        .validate(doc)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // Valid by the schema but not readable by the types would be a bug in the CRD generation.
    let undecodable = |e: serde_json::Error| vec![format!("the controller cannot read it: {e}")];
    match text_at(doc, "/kind") {
        Some("BackedUpDatabase") => Ok(Object::Database(
            serde_json::from_value(stored).map_err(undecodable)?,
        )),
        Some("BackupCoverage") => Ok(Object::Coverage(
            serde_json::from_value(stored).map_err(undecodable)?,
        )),
        Some("RetainedAuditTrail") => Ok(Object::Trail(
            serde_json::from_value(stored).map_err(undecodable)?,
        )),
        _ => Ok(Object::Repository(
            serde_json::from_value(stored).map_err(undecodable)?,
        )),
    }
}

fn text_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

fn object_name(doc: &Value) -> String {
    let name = text_at(doc, "/metadata/name")
        .map(str::to_string)
        .or_else(|| text_at(doc, "/metadata/generateName").map(|g| format!("{g}*")))
        .unwrap_or_else(|| "<unnamed>".into());
    match text_at(doc, "/metadata/namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    }
}

/// The YAML files `path` names: itself, or those below it (recursively, sorted).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CheckError> {
    let read_err = |source| CheckError::Read {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let yaml = entry.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if entry.is_dir() || yaml {
                collect(&entry, out)?;
            }
        }
        Ok(())
    } else {
        out.push(path.to_path_buf());
        Ok(())
    }
}

fn status_of(f: &Finding) -> &'static str {
    match f.verdict {
        Verdict::Pass => "ok",
        Verdict::Unknown => "unknown",
        Verdict::Pending => "pending",
        Verdict::Drift => "drift",
        Verdict::Blocked => "blocked",
    }
}

/// What to check against.
pub struct Sources {
    pub aws: Arc<AwsClients>,
    pub github: Option<GitHubSettings>,
    pub policy: Policy,
    pub repository_policy: RepositoryPolicy,
    pub trail_policy: TrailPolicy,
}

/// Observes and evaluates every object once; rows in input order.
pub async fn evaluate_all(
    dbs: &[BackedUpDatabase],
    repos: &[BackedUpRepository],
    sources: &Sources,
) -> Result<Vec<Row>, CheckError> {
    let once = Duration::from_secs(3600);
    let mut rows = Vec::new();
    let inventory = Inventory::new(
        Arc::new(SdkRds {
            clients: sources.aws.clone(),
        }),
        Arc::new(SdkKms {
            clients: sources.aws.clone(),
        }),
    );
    for db in dbs {
        let obs = crate::observe::database(db, &inventory, once, once)
            .await
            .map_err(|e| CheckError::Observe(e.to_string()))?;
        let findings = crate::policy::database::evaluate(&db.spec, &obs, &sources.policy);
        let plan = crate::policy::database::plan(&db.spec, &obs, &findings, &sources.policy);
        for f in &findings {
            let action = plan
                .actions
                .iter()
                .filter(|a| !f.is_pass() && a.fixes().iter().any(|&c| f.check == c.into()))
                .map(|a| a.describe(&db.spec, crate::policy::Tense::Planned));
            rows.push(Row {
                kind: "BackedUpDatabase",
                object: crate::controller::object_key(db),
                check: f.check.as_str().to_string(),
                status: status_of(f),
                reason: f.reason.as_str().to_string(),
                desired: crate::policy::database::desired(f.check, &db.spec, &sources.policy),
                observed: f.message.clone(),
                action: action.collect::<Vec<_>>().join("; "),
            });
        }
    }
    if repos.is_empty() {
        return Ok(rows);
    }
    let settings = sources.github.as_ref().ok_or_else(|| {
        CheckError::Observe(
            "BackedUpRepository objects need GitHub credentials (--github-token-file, GITHUB_TOKEN, or the --github-app-* flags)".into(),
        )
    })?;
    let github: Arc<dyn GitHub> =
        Arc::new(GitHubClient::new(settings).map_err(|e| CheckError::Observe(e.to_string()))?);
    let inventory = RepoInventory::new(github.clone());
    let buckets = BucketInventory::new(Arc::new(SdkS3 {
        clients: sources.aws.clone(),
    }));
    let all: Vec<(String, String)> = repos
        .iter()
        .map(|r| (r.spec.repository.clone(), r.spec.workflow.path.clone()))
        .collect();
    for repo in repos {
        let obs = crate::observe::repository(
            repo,
            &inventory,
            github.as_ref(),
            &buckets,
            || all.clone(),
            once,
            once,
        )
        .await
        .map_err(|e| CheckError::Observe(e.to_string()))?;
        let findings = crate::policy::repository::evaluate(&repo.spec, &obs, &sources.repository_policy);
        let actions =
            crate::policy::repository::plan(&repo.spec, &obs, &findings, &sources.repository_policy);
        for f in &findings {
            let action = actions
                .iter()
                .filter(|a| !f.is_pass() && a.fixes().iter().any(|&c| f.check == c.into()))
                .map(|a| a.describe(&repo.spec, crate::policy::Tense::Planned));
            rows.push(Row {
                kind: "BackedUpRepository",
                object: crate::controller::object_key(repo),
                check: f.check.as_str().to_string(),
                status: status_of(f),
                reason: f.reason.as_str().to_string(),
                desired: crate::policy::repository::desired(f.check, &repo.spec, &sources.repository_policy),
                observed: f.message.clone(),
                action: action.collect::<Vec<_>>().join("; "),
            });
        }
    }
    Ok(rows)
}

/// Observes and evaluates every audit trail once; rows in input order.
pub async fn evaluate_trails(
    trails: &[RetainedAuditTrail],
    sources: &Sources,
) -> Result<Vec<Row>, CheckError> {
    let aws = crate::aws::cloudtrail::SdkAuditTrails {
        clients: sources.aws.clone(),
    };
    let regions = crate::observe::BucketRegions::default();
    let mut rows = Vec::new();
    for trail in trails {
        let obs = crate::observe::trail(&trail.spec, &aws, &regions)
            .await
            .map_err(|e| CheckError::Observe(e.to_string()))?;
        let findings = crate::policy::trail::evaluate(&trail.spec, &obs, &sources.trail_policy);
        let actions = crate::policy::trail::plan(&trail.spec, &obs, &findings, &sources.trail_policy);
        for f in &findings {
            let action = actions
                .iter()
                .filter(|a| !f.is_pass() && a.fixes().iter().any(|&c| f.check == c.into()))
                .map(|a| a.describe(&trail.spec, crate::policy::Tense::Planned));
            rows.push(Row {
                kind: "RetainedAuditTrail",
                object: crate::controller::object_key(trail),
                check: f.check.as_str().to_string(),
                status: status_of(f),
                reason: f.reason.as_str().to_string(),
                desired: crate::policy::trail::desired(f.check, &trail.spec, &sources.trail_policy),
                observed: f.message.clone(),
                action: action.collect::<Vec<_>>().join("; "),
            });
        }
    }
    Ok(rows)
}

/// A plain-text table, one row per check.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "KIND", "OBJECT", "CHECK", "STATUS", "DESIRED", "OBSERVED", "ACTION",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.to_string(),
                r.object.clone(),
                r.check.clone(),
                r.status.to_string(),
                r.desired.clone(),
                r.observed.clone(),
                r.action.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// True when every check passes.
pub fn compliant(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.status == "ok")
}

/// The AWS clients `check` uses: the default credential chain, counted like the controller's.
pub async fn aws(endpoint_url: Option<String>, timeouts: crate::timeouts::Timeouts) -> Arc<AwsClients> {
    Arc::new(
        AwsClients::from_env(
            AwsSettings {
                endpoint_url,
                concurrency: 8,
                timeouts,
                rds_rate: Default::default(),
                kms_write_rate: crate::aws::budget::Rate::KMS_WRITES,
            },
            Arc::new(ApiCalls::default()),
        )
        .await,
    )
}
