//! `backup-warden report` and `backup-warden map`: the evidence (and, when reachable, the
//! cluster) read, the report or map written.

use std::{path::PathBuf, time::Duration};

use k8s_openapi::jiff::{Timestamp, civil::Date};
use kube::{Api, Client, Resource, ResourceExt, api::ListParams};

use super::{build, html, model::Report};
use crate::{
    api::{BackedUpDatabase, BackedUpRepository, BackupCoverage, RetainedAuditTrail},
    controller::Decoded,
    estate::Estate,
    evidence::{self, Controller, ObjectRef, Record, read, upload},
};

/// Whether `report` reads today's state from the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Live {
    /// When the period includes today and a cluster answers; otherwise said in the report.
    Auto,
    /// Required: a cluster that does not answer is an error.
    Always,
    /// From the bucket alone.
    Never,
}

/// What `report` is asked for.
pub struct ReportRequest {
    pub from: Date,
    pub to: Date,
    pub bucket: String,
    pub prefix: String,
    pub s3: aws_sdk_s3::Client,
    pub live: Live,
    pub html: PathBuf,
    pub json: Option<PathBuf>,
    /// Evidence objects read at once.
    pub concurrency: usize,
}

/// Reads, builds and writes the report; returns it for the summary line.
pub async fn report(request: ReportRequest) -> Result<Report, String> {
    let ReportRequest {
        from,
        to,
        bucket,
        prefix,
        s3,
        live,
        html: html_path,
        json,
        concurrency,
    } = request;
    if from > to {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let lock = upload::default_retention(&s3, &bucket)
        .await
        .map_err(|e| format!("cannot read the evidence bucket's Object Lock configuration: {e}"))?;
    let now = Timestamp::now();
    let mut builder = build::Builder::new(from, to, now);
    let read = read::each_day(&s3, &bucket, &prefix, (from, to), concurrency, |day| {
        for record in day {
            builder.add(record);
        }
    })
    .await
    .map_err(|e| format!("cannot read the evidence in s3://{bucket}/{prefix}: {e}"))?;
    let live_state = match live_records(live, to, now).await? {
        Ok(records) => {
            let said = format!(
                "today's state read from the cluster at {now} ({} objects)",
                records.len()
            );
            for record in records {
                builder.add(record);
            }
            said
        }
        Err(why) => why,
    };
    let source = build::Source {
        location: format!("s3://{bucket}/{prefix}"),
        object_lock: lock.as_ref().map(upload::DefaultRetention::describe),
        objects: read.objects,
        objects_locked: read.objects_locked,
        live_state,
    };
    let report = builder.finish(source);
    write(&html_path, &html::render(&report))?;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        write(&path, &text)?;
    }
    Ok(report)
}

fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Today's state from the cluster as attestations, or why it was not read (Err of the
/// outer result only when `--live always` could not read it).
async fn live_records(live: Live, to: Date, now: Timestamp) -> Result<Result<Vec<Record>, String>, String> {
    if live == Live::Never {
        return Ok(Err(
            "not read (--live never): the report is from the bucket alone".into(),
        ));
    }
    if to < evidence::day(now) && live == Live::Auto {
        return Ok(Err("not read: the period ends before today".into()));
    }
    match objects(None).await {
        Ok(objects) => Ok(Ok(objects.attestations(now))),
        Err(e) if live == Live::Always => Err(format!("cannot read today's state from the cluster: {e}")),
        Err(e) => Ok(Err(format!(
            "not read: no cluster answered ({e}); the report is from the bucket alone"
        ))),
    }
}

/// Every object of the four kinds the cluster holds (those that decode).
pub struct Objects {
    pub databases: Vec<BackedUpDatabase>,
    pub repositories: Vec<BackedUpRepository>,
    pub trails: Vec<RetainedAuditTrail>,
    pub coverages: Vec<BackupCoverage>,
}

impl Objects {
    pub fn estate(&self) -> Estate {
        Estate::from_objects(&self.databases, &self.repositories, &self.trails)
    }

    /// Each object's state now, as an attestation.
    fn attestations(&self, now: Timestamp) -> Vec<Record> {
        let mut records = Vec::new();
        let mut add = |kind: &str, meta: &kube::api::ObjectMeta, body: evidence::Body| {
            records.push(Record {
                v: evidence::record::FORMAT,
                id: format!(
                    "live-{}-{kind}-{}-{}",
                    now.as_nanosecond(),
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default()
                ),
                time: now.to_string(),
                controller: Controller {
                    version: env!("CARGO_PKG_VERSION").into(),
                    replica: "report (live state)".into(),
                },
                object: Some(ObjectRef {
                    kind: kind.into(),
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    uid: meta.uid.clone(),
                    generation: meta.generation,
                }),
                body,
            });
        };
        for db in &self.databases {
            let status = db.status.clone().unwrap_or_default();
            let body = evidence::attestation(
                db,
                &status.conditions,
                &status,
                &format!("{:?}", db.spec.mode),
                db.spec.suspend,
            );
            add("BackedUpDatabase", db.meta(), body);
        }
        for repo in &self.repositories {
            let status = repo.status.clone().unwrap_or_default();
            let body = evidence::attestation(
                repo,
                &status.conditions,
                &status,
                &format!("{:?}", repo.spec.mode),
                repo.spec.suspend,
            );
            add("BackedUpRepository", repo.meta(), body);
        }
        for trail in &self.trails {
            let status = trail.status.clone().unwrap_or_default();
            let body = evidence::attestation(
                trail,
                &status.conditions,
                &status,
                &format!("{:?}", trail.spec.mode),
                trail.spec.suspend,
            );
            add("RetainedAuditTrail", trail.meta(), body);
        }
        for coverage in &self.coverages {
            let status = coverage.status.clone().unwrap_or_default();
            let body = evidence::attestation(
                coverage,
                &status.conditions,
                &status,
                &format!("{:?}", coverage.spec.mode),
                false,
            );
            add("BackupCoverage", coverage.meta(), body);
        }
        records
    }
}

/// Lists the objects (in `namespace`, or everywhere), within a bounded time.
pub async fn objects(namespace: Option<&str>) -> Result<Objects, String> {
    let list = async {
        let client = Client::try_default().await.map_err(|e| e.to_string())?;
        // Trails and coverages are optional kinds: a cluster without their CRD has none.
        Ok::<_, String>(Objects {
            databases: list(scoped(&client, namespace)).await?,
            repositories: list(scoped(&client, namespace)).await?,
            trails: list(scoped(&client, namespace)).await.unwrap_or_default(),
            coverages: list(Api::all(client.clone())).await.unwrap_or_default(),
        })
    };
    tokio::time::timeout(Duration::from_secs(30), list)
        .await
        .map_err(|_| "the Kubernetes API did not answer within 30 s".to_string())?
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<Decoded<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn list<K>(api: Api<Decoded<K>>) -> Result<Vec<K>, String>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let listed = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing {}: {e}", K::kind(&())))?;
    let mut valid = Vec::new();
    for object in listed.items {
        match object {
            Decoded::Valid(k) => valid.push(k.as_ref().clone()),
            Decoded::Invalid(bad) => eprintln!(
                "warning: {} {} cannot be read and is left out: {}",
                K::kind(&()),
                bad.metadata.name.as_deref().unwrap_or_default(),
                bad.error
            ),
        }
    }
    valid.sort_by_key(|k| (k.namespace(), k.name_any()));
    Ok(valid)
}
