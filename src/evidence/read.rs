//! Reads the evidence log back for a period: every object under each day's folder, its
//! records (copies an at-least-once upload left dropped by id) and its Object Lock state.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::{Timestamp, civil::Date};

use super::{Record, record::FORMAT};
use crate::aws::AwsError;

/// GETs in flight at once.
const CONCURRENCY: usize = 16;

/// What was read.
#[derive(Debug, Default)]
pub struct Read {
    /// Every record once, in time order.
    pub records: Vec<Record>,
    /// Evidence objects read, and those under a compliance-mode retention still running.
    pub objects: usize,
    pub objects_locked: usize,
    /// Lines that were not records this version understands.
    pub skipped: usize,
}

/// The folder of one day: `<prefix>YYYY/MM/DD/`.
pub fn day_prefix(prefix: &str, day: Date) -> String {
    format!("{prefix}{:04}/{:02}/{:02}/", day.year(), day.month(), day.day())
}

/// Reads the records of every day from `from` to `to`, both included.
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    from: Date,
    to: Date,
) -> Result<Read, String> {
    let mut keys = Vec::new();
    let mut day = from;
    while day <= to {
        keys.extend(list(s3, bucket, &day_prefix(prefix, day)).await?);
        day = day.tomorrow().map_err(|e| e.to_string())?;
    }
    let objects: Vec<(String, bool)> = futures::stream::iter(keys)
        .map(|key| get(s3, bucket, key))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut read = Read {
        objects: objects.len(),
        objects_locked: objects.iter().filter(|(_, locked)| *locked).count(),
        ..Read::default()
    };
    let mut seen = HashSet::new();
    for (text, _) in &objects {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(record) if record.v <= FORMAT => {
                    if seen.insert(record.id.clone()) {
                        read.records.push(record);
                    }
                }
                _ => read.skipped += 1,
            }
        }
    }
    read.records
        .sort_by(|a, b| (instant(&a.time), &a.id).cmp(&(instant(&b.time), &b.id)));
    Ok(read)
}

/// A record's time as an instant (RFC 3339 strings of other offsets sort wrongly as text).
pub fn instant(time: &str) -> Timestamp {
    time.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ListObjectsV2", &e).to_string())?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    Ok(keys)
}

/// An object's text, and whether a compliance-mode retention protects it now.
async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: String) -> Result<(String, bool), String> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetObject", &e).to_string())?;
    let locked = out
        .object_lock_mode()
        .is_some_and(|m| super::upload::is_compliance(m.as_str()))
        && out
            .object_lock_retain_until_date()
            .is_some_and(|until| until.secs() > Timestamp::now().as_second());
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?
        .into_bytes();
    Ok((String::from_utf8_lossy(&bytes).into_owned(), locked))
}
