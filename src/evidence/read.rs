//! Reads the evidence log back for a period: every object under each day's folder, its
//! records (copies an at-least-once upload left dropped by id) and its Object Lock state.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::{Timestamp, civil::Date};

use super::{Record, record::FORMAT};
use crate::aws::AwsError;

/// GETs in flight at once, by default.
pub const CONCURRENCY: u16 = 32;

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

/// Reads the records of every day from `from` to `to`, both included, all at once.
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    from: Date,
    to: Date,
) -> Result<Read, String> {
    let mut records = Vec::new();
    let mut read = each_day(s3, bucket, prefix, (from, to), usize::from(CONCURRENCY), |day| {
        records.extend(day)
    })
    .await?;
    read.records = records;
    Ok(read)
}

/// Reads the records one day at a time, oldest first, handing each day's (in time order)
/// to `fold`, so that a year of evidence is never held at once. The counts are returned;
/// `records` stays empty.
pub async fn each_day(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    (from, to): (Date, Date),
    concurrency: usize,
    mut fold: impl FnMut(Vec<Record>),
) -> Result<Read, String> {
    let mut totals = Read::default();
    let mut day = from;
    while day <= to {
        let keys = list(s3, bucket, &day_prefix(prefix, day)).await?;
        let objects: Vec<(String, bool)> = futures::stream::iter(keys)
            .map(|key| get(s3, bucket, key))
            .buffered(concurrency.max(1))
            .try_collect()
            .await?;
        totals.objects += objects.len();
        totals.objects_locked += objects.iter().filter(|(_, locked)| *locked).count();
        // Copies of a record (an upload retried) are in the same day's folder.
        let mut seen = HashSet::new();
        let mut records = Vec::new();
        for (text, _) in &objects {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<Record>(line) {
                    Ok(record) if record.v <= FORMAT => {
                        if seen.insert(record.id.clone()) {
                            records.push(record);
                        }
                    }
                    _ => totals.skipped += 1,
                }
            }
        }
        records.sort_by(|a, b| (instant(&a.time), &a.id).cmp(&(instant(&b.time), &b.id)));
        fold(records);
        day = day.tomorrow().map_err(|e| e.to_string())?;
    }
    Ok(totals)
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
