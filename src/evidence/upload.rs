//! Uploads waiting evidence records to the bucket: one new S3 object per day and object per
//! upload (never an existing key: `If-None-Match: *`), under the bucket's Object Lock
//! retention when it has one. A failed upload leaves the records waiting for the next.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use aws_sdk_s3::{
    primitives::{ByteStream, DateTime},
    types::{ObjectLockMode, ObjectLockRetentionMode},
};
use k8s_openapi::jiff::{Timestamp, ToSpan};
use serde::Deserialize;
use tokio::sync::watch;

use super::{EvidenceLog, ObjectRef};
use crate::aws::AwsError;

/// The evidence bucket and its client.
#[derive(Clone, Debug)]
pub struct Destination {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// "" or ending with '/'.
    pub prefix: String,
}

/// The bucket's Object Lock default retention: the mode and period every object gets.
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultRetention {
    pub mode: String,
    pub days: i64,
}

impl DefaultRetention {
    /// As an auditor reads it: "COMPLIANCE 400 days".
    pub fn describe(&self) -> String {
        format!("{} {} days", self.mode, self.days)
    }
}

/// Reads the bucket's Object Lock default retention; None when it has none.
pub async fn default_retention(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<DefaultRetention>, String> {
    let out = match s3.get_object_lock_configuration().bucket(bucket).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = AwsError::from_sdk("GetObjectLockConfiguration", &e);
            if e.code == "ObjectLockConfigurationNotFoundError" {
                return Ok(None);
            }
            return Err(e.to_string());
        }
    };
    let Some(retention) = out
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
    else {
        return Ok(None);
    };
    let Some(mode) = retention.mode() else {
        return Ok(None);
    };
    let days = match (retention.days(), retention.years()) {
        (Some(days), _) => i64::from(days),
        (None, Some(years)) => i64::from(years) * 365,
        (None, None) => return Ok(None),
    };
    Ok(Some(DefaultRetention {
        mode: mode.as_str().to_string(),
        days,
    }))
}

/// What the uploader needs of a line: when, and about what.
#[derive(Deserialize)]
struct Head {
    time: String,
    #[serde(default)]
    object: Option<ObjectRef>,
    #[serde(default)]
    controller: Option<super::Controller>,
}

/// The folder of a record: `<prefix>YYYY/MM/DD/<kind>/<namespace>/<name>/`, or
/// `<prefix>YYYY/MM/DD/controller/<replica>/` for one about the controller.
fn folder(prefix: &str, line: &str) -> String {
    let head: Option<Head> = serde_json::from_str(line).ok();
    let day = head
        .as_ref()
        .and_then(|h| h.time.parse::<Timestamp>().ok())
        .map(super::day)
        .map(|d| format!("{:04}/{:02}/{:02}", d.year(), d.month(), d.day()))
        .unwrap_or_else(|| "undated".into());
    let who = match head {
        Some(Head {
            object: Some(object), ..
        }) => format!(
            "{}/{}/{}",
            object.kind,
            if object.namespace.is_empty() {
                "_cluster"
            } else {
                &object.namespace
            },
            object.name
        ),
        Some(Head {
            controller: Some(c), ..
        }) => format!("controller/{}", c.replica),
        _ => "controller/unknown".into(),
    };
    format!("{prefix}{day}/{who}/")
}

/// Uploads everything waiting; returns the records uploaded, or the first error (what was
/// not uploaded stays waiting).
pub async fn flush(
    log: &EvidenceLog,
    to: &Destination,
    lock: Option<&DefaultRetention>,
) -> Result<usize, String> {
    let Some(controller) = log.controller() else {
        return Ok(0);
    };
    let batches = log
        .seal()
        .map_err(|e| format!("reading the evidence spool: {e}"))?;
    let mut uploaded = 0;
    for batch in batches {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in &batch.lines {
            groups
                .entry(folder(&to.prefix, line))
                .or_default()
                .push(line.clone());
        }
        let mut left = Vec::new();
        let mut failure = None;
        for (n, (folder, lines)) in groups.into_iter().enumerate() {
            if failure.is_some() {
                left.extend(lines);
                continue;
            }
            let key = format!(
                "{folder}{}-{}-{n}.jsonl",
                Timestamp::now().as_nanosecond(),
                controller.replica
            );
            match put(to, &key, &lines, lock).await {
                Ok(()) => uploaded += lines.len(),
                Err(e) => {
                    failure = Some(e);
                    left.extend(lines);
                }
            }
        }
        log.finish(batch, left)
            .map_err(|e| format!("updating the evidence spool: {e}"))?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(uploaded)
}

async fn put(
    to: &Destination,
    key: &str,
    lines: &[String],
    lock: Option<&DefaultRetention>,
) -> Result<(), String> {
    let mut body = lines.join("\n");
    body.push('\n');
    let mut request = to
        .s3
        .put_object()
        .bucket(&to.bucket)
        .key(key)
        .content_type("application/x-ndjson")
        // Never over an existing object.
        .if_none_match("*")
        .body(ByteStream::from(body.into_bytes()));
    if let Some(lock) = lock {
        // Explicit, so the object states its retention whatever the bucket's default later.
        let until = Timestamp::now()
            .checked_add(lock.days.saturating_mul(24).hours())
            .map_err(|e| e.to_string())?;
        request = request
            .object_lock_mode(ObjectLockMode::from(lock.mode.as_str()))
            .object_lock_retain_until_date(DateTime::from_secs(until.as_second()));
    }
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk("PutObject", &e).to_string())
}

/// Uploads every `every` until `shutdown`, then once more. The bucket's Object Lock setting
/// is read at the start and hourly.
pub async fn run(
    log: Arc<EvidenceLog>,
    to: Destination,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lock: Option<(Timestamp, Option<DefaultRetention>)> = None;
    let mut failing = false;
    loop {
        let stop = *shutdown.borrow();
        if lock
            .as_ref()
            .is_none_or(|(at, _)| Timestamp::now().duration_since(*at).as_secs() > 3600)
        {
            // Until the setting is known, nothing is uploaded: an object written without its
            // retention would be one an auditor cannot rely on.
            match default_retention(&to.s3, &to.bucket).await {
                Ok(retention) => lock = Some((Timestamp::now(), retention)),
                Err(e) if log.pending() > 0 => report(&log, &to, Err(e), &mut failing),
                Err(_) => {}
            }
        }
        if let Some((_, retention)) = &lock {
            report(
                &log,
                &to,
                flush(&log, &to, retention.as_ref()).await,
                &mut failing,
            );
        }
        if stop {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn report(log: &EvidenceLog, to: &Destination, outcome: Result<usize, String>, failing: &mut bool) {
    let Some(metrics) = log.metrics() else {
        return;
    };
    match outcome {
        Ok(uploaded) => {
            if uploaded > 0 || log.pending() == 0 {
                metrics
                    .evidence_last_write
                    .set(Timestamp::now().as_second() as f64);
            }
            if std::mem::take(failing) {
                tracing::info!(bucket = %to.bucket, "the evidence bucket takes records again");
            }
        }
        Err(error) => {
            metrics.evidence_write_errors.inc();
            if !std::mem::replace(failing, true) {
                tracing::warn!(bucket = %to.bucket, %error, pending = log.pending(), "cannot write evidence records; they wait in the spool");
            }
        }
    }
}

/// The retention mode an Object Lock rule names, as the SDK has it.
pub fn is_compliance(mode: &str) -> bool {
    mode == ObjectLockRetentionMode::Compliance.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_filed_by_day_and_object() {
        let line = r#"{"time":"2026-12-01T23:59:59Z","object":{"kind":"BackedUpDatabase","namespace":"team","name":"orders"}}"#;
        assert_eq!(
            folder("evidence/", line),
            "evidence/2026/12/01/BackedUpDatabase/team/orders/"
        );
        let coverage = r#"{"time":"2026-12-02T00:00:00Z","object":{"kind":"BackupCoverage","name":"all"}}"#;
        assert_eq!(folder("", coverage), "2026/12/02/BackupCoverage/_cluster/all/");
        let gap = r#"{"time":"2026-12-02T00:00:00Z","controller":{"version":"1","replica":"pod-0"}}"#;
        assert_eq!(folder("e/", gap), "e/2026/12/02/controller/pod-0/");
    }
}
