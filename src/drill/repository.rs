//! The repository drill runner: for each BackedUpRepository with `spec.restoreDrill`, in
//! Enforce and not suspended, downloads the newest backup object (streamed, size-bounded)
//! and verifies it would restore: a git bundle whose pack is intact and whose refs hold the
//! commit the newest successful backup run recorded. The result goes to
//! `status.restoreDrill`.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::ResourceExt;
use tokio::sync::watch;

use super::{bundle, report, schedule};
use crate::{
    api::{
        BackedUpRepository, Mode,
        drill::{DrillResult, RepositoryRestoreDrill},
    },
    aws::{AwsClients, AwsError, Scope},
    controller::repository::RepoContext,
};

/// Runs until `shutdown`: every `tick`, the drills that are due.
pub async fn run(
    ctx: Arc<RepoContext>,
    aws: Arc<AwsClients>,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ready = tokio::time::timeout(tick, ctx.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok());
        if ready {
            let objects: Vec<Arc<BackedUpRepository>> = ctx
                .store
                .state()
                .iter()
                .filter_map(|o| o.valid().cloned())
                .collect();
            for repo in &objects {
                if let Some(drill) = drilled(&ctx, repo)
                    && let Err(error) = advance(&ctx, &aws, repo, drill).await
                {
                    tracing::warn!(object = %object_name(repo), %error, "restore drill: will try again");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Its drill, when this replica drills it: asked for, Enforce, not suspended, its shard.
fn drilled<'a>(ctx: &RepoContext, repo: &'a BackedUpRepository) -> Option<&'a RepositoryRestoreDrill> {
    let drill = repo.spec.restore_drill.as_ref()?;
    let acting = repo.spec.mode == Mode::Enforce
        && !repo.spec.suspend
        && !ctx.policy.audit_only
        && super::admitted(repo, &ctx.tenancy);
    let ours = ctx
        .shards
        .owns(&repo.namespace().unwrap_or_default(), &repo.name_any());
    (acting && ours).then_some(drill)
}

fn object_name(repo: &BackedUpRepository) -> String {
    format!("{}/{}", repo.namespace().unwrap_or_default(), repo.name_any())
}

async fn advance(
    ctx: &RepoContext,
    aws: &AwsClients,
    repo: &BackedUpRepository,
    drill: &RepositoryRestoreDrill,
) -> Result<(), String> {
    let status = report::Drilled::drill_status(repo);
    let now = Timestamp::now();
    let created = crate::controller::database::created(&repo.metadata, now);
    let uid = repo.metadata.uid.clone().unwrap_or_default();
    let due = schedule::due_at(&status, drill.every.as_duration(), created, &uid);
    if now < due {
        if status.next_at.is_none() {
            let mut status = status;
            status.next_at = Some(Time(due));
            report::write(&ctx.client, repo, status).await?;
        }
        return Ok(());
    }
    let result = verify(ctx, aws, repo, drill, now).await;
    let ok = result.succeeded();
    let note = result.message.clone();
    let status = schedule::ended(status, drill.every.as_duration(), result, None);
    report::write(&ctx.client, repo, status).await?;
    let to = report::Reporters {
        client: &ctx.client,
        metrics: &ctx.metrics,
        notifier: ctx.notifier.as_ref(),
        recorder: &ctx.recorder,
        evidence: &ctx.evidence,
    };
    report::ended(&to, repo, ok, note).await;
    ctx.wakes
        .wake_for_status(&repo.namespace().unwrap_or_default(), &repo.name_any());
    Ok(())
}

/// Downloads and checks the newest backup; how it went.
async fn verify(
    ctx: &RepoContext,
    aws: &AwsClients,
    repo: &BackedUpRepository,
    drill: &RepositoryRestoreDrill,
    started: Timestamp,
) -> DrillResult {
    let storage = &repo.spec.storage;
    let result = |ok: bool, message: String, recovery: Option<i64>| {
        let now = Timestamp::now();
        DrillResult {
            result: if ok { "Succeeded" } else { "Failed" }.into(),
            message,
            started_at: Time(started),
            finished_at: Time(now),
            duration_seconds: Some(now.duration_since(started).as_secs().max(0)),
            recovery_point_age_seconds: recovery,
        }
    };
    let prefix = repo.spec.storage_prefix();
    let s3 = aws.for_scope(&Scope::new(None, &storage.region)).await.s3;
    let (key, modified) = match newest(&s3, &storage.bucket, &prefix).await {
        Ok(Some(newest)) => newest,
        Ok(None) => {
            let why = format!(
                "nothing to restore: no backup object under s3://{}/{prefix} yet",
                storage.bucket
            );
            return result(false, why, None);
        }
        Err(e) => {
            return result(
                false,
                format!("cannot list s3://{}/{prefix}: {e}", storage.bucket),
                None,
            );
        }
    };
    let recovery = modified.map(|m| started.duration_since(m).as_secs().max(0));
    let expected = match ctx
        .github
        .newest_successful_run_sha(&repo.spec.repository, &repo.spec.workflow.path)
        .await
    {
        Ok(sha) => sha,
        Err(e) => {
            return result(
                false,
                format!("cannot read the newest successful backup run: {e}"),
                recovery,
            );
        }
    };
    let location = format!("s3://{}/{key}", storage.bucket);
    let max = u64::try_from(drill.max_bytes).unwrap_or(u64::MAX);
    let object = match s3.get_object().bucket(&storage.bucket).key(&key).send().await {
        Ok(object) => object,
        Err(e) => {
            return result(
                false,
                format!(
                    "cannot download {location}: {}",
                    AwsError::from_sdk("GetObject", &e)
                ),
                recovery,
            );
        }
    };
    if object
        .content_length()
        .is_some_and(|n| u64::try_from(n).unwrap_or(0) > max)
    {
        return result(
            false,
            format!(
                "{location} is {} bytes, over maxBytes {max}: not downloaded",
                object.content_length().unwrap_or_default()
            ),
            recovery,
        );
    }
    match bundle::verify(object.body.into_async_read(), max, expected.as_deref()).await {
        Ok(v) => result(
            true,
            format!(
                "{location} is an intact git bundle (v{}, {} bytes, {} objects, {} refs){}",
                v.version,
                v.pack_bytes,
                v.objects,
                v.refs.len(),
                expected
                    .map(|sha| format!("; it holds {sha}, the commit of the newest successful backup run"))
                    .unwrap_or_default()
            ),
            recovery,
        ),
        Err(e) => result(false, format!("{location} would not restore: {e}"), recovery),
    }
}

/// The newest object under the prefix (ListObjectsV2, every page): its key and time.
async fn newest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Option<(String, Option<Timestamp>)>, AwsError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut newest: Option<(String, Option<Timestamp>)> = None;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ListObjectsV2", &e))?;
        for object in page.contents() {
            let Some(key) = object.key() else {
                continue;
            };
            let modified = object
                .last_modified()
                .and_then(|t| Timestamp::new(t.secs(), 0).ok());
            // Listed in key order: on a tie in time, the later key (backups are named by time).
            if newest.as_ref().is_none_or(|(_, at)| modified >= *at) {
                newest = Some((key.to_string(), modified));
            }
        }
    }
    Ok(newest)
}
