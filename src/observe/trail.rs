//! How the audit-trail checks' facts are read: the trail in its home region, then its
//! bucket (in the bucket's own region) and its log group. I/O only.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::{Reason, trail::RetainedAuditTrailSpec},
    aws::{AwsError, AwsErrorKind, Scope, cloudtrail::AuditTrails},
    external::ServiceError,
    policy::trail::{TrailObservation, Unread},
};

/// Each bucket's region, read once (a bucket never moves).
#[derive(Default)]
pub struct BucketRegions(Mutex<HashMap<(Option<String>, String), String>>);

impl BucketRegions {
    async fn get(
        &self,
        aws: &dyn AuditTrails,
        home: &Scope,
        bucket: &str,
    ) -> Result<Option<String>, AwsError> {
        let key = (home.role_arn.clone(), bucket.to_string());
        if let Some(region) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(region.clone()));
        }
        let region = aws.bucket_region(home, bucket).await?;
        if let Some(region) = &region {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, region.clone());
        }
        Ok(region)
    }
}

fn missing<T>(what: String) -> Result<T, Unread> {
    Err((
        Reason::ManualFixRequired,
        format!("{what}: the trail cannot deliver there"),
    ))
}

/// A part of the facts that could not be read for a reason a person must fix (access
/// denied, missing) is the check's condition; anything else fails the observation.
fn unread(e: AwsError, what: &str) -> Result<Unread, ServiceError> {
    match e.kind {
        AwsErrorKind::AccessDenied => Ok((Reason::AccessDenied, e.denied_message())),
        AwsErrorKind::NotFound => Ok((Reason::ManualFixRequired, format!("{what} not found: {e}"))),
        _ => Err(ServiceError::Aws(e)),
    }
}

pub async fn trail(
    spec: &RetainedAuditTrailSpec,
    aws: &dyn AuditTrails,
    regions: &BucketRegions,
) -> Result<TrailObservation, ServiceError> {
    let home = Scope::new(spec.trail.role_arn.as_deref(), &spec.trail.region);
    let now = Timestamp::now();
    let Some(trail) = aws
        .trail(&home, &spec.trail.name)
        .await
        .map_err(ServiceError::Aws)?
    else {
        return Ok(TrailObservation {
            trail: None,
            bucket: None,
            log_group: None,
            now,
        });
    };
    let bucket = match regions.get(aws, &home, &trail.bucket).await {
        Ok(None) => missing(format!("bucket {} does not exist", trail.bucket)),
        Ok(Some(region)) => {
            let scope = Scope::new(spec.trail.role_arn.as_deref(), &region);
            match aws.bucket(&scope, &trail.bucket).await {
                Ok(Some(facts)) => Ok(facts),
                Ok(None) => missing(format!("bucket {} does not exist", trail.bucket)),
                Err(e) => Err(unread(e, &format!("bucket {}", trail.bucket))?),
            }
        }
        Err(e) => Err(unread(e, &format!("bucket {}", trail.bucket))?),
    };
    let log_group = match trail.log_group() {
        None => None,
        Some((name, region)) => {
            let scope = Scope::new(spec.trail.role_arn.as_deref(), &region);
            Some(match aws.log_group(&scope, &name).await {
                Ok(Some(group)) => Ok(group),
                Ok(None) => missing(format!("log group {name} does not exist in {region}")),
                Err(e) => Err(unread(e, &format!("log group {name}"))?),
            })
        }
    };
    Ok(TrailObservation {
        trail: Some(trail),
        bucket: Some(bucket),
        log_group,
        now,
    })
}
