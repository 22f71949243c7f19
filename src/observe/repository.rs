//! How the repository checks' facts are read: the repository through the sweep, its
//! workflow, runs and pull request, and its S3 backups and bucket lifecycle. I/O only.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::BackedUpRepository,
    aws::{Scope, inventory::BucketInventory},
    external::ServiceError,
    github::{
        GitHub,
        inventory::{Actions, RepoInventory},
    },
    policy::repository::RepositoryObservation,
    workflow,
};

/// Observe with explicit sources (the controller's, or `backup-warden check`'s). `all` lists
/// every (repository, workflow path) a sweep should read.
pub async fn repository(
    repo: &BackedUpRepository,
    repos: &RepoInventory,
    github: &dyn GitHub,
    buckets: &BucketInventory,
    all: impl FnOnce() -> Vec<(String, String)>,
    resync: Duration,
    fresh: Duration,
) -> Result<RepositoryObservation, ServiceError> {
    let spec = &repo.spec;
    let name = &spec.repository;
    let path = &spec.workflow.path;
    let facts = repos
        .get(name, path, fresh, resync, all)
        .await
        .map_err(ServiceError::GitHub)?;
    let mut obs = RepositoryObservation {
        repo: facts.clone(),
        workflow: None,
        last_run: None,
        pull_request: None,
        newest_backup: None,
        lifecycle: None,
        now: Timestamp::now(),
    };
    let Some(facts) = facts.filter(|f| !f.archived) else {
        return Ok(obs);
    };
    let current = facts.file.as_deref().is_some_and(|text| {
        workflow::check(text, &spec.reusable_workflow(), &spec.workflow.allowed_refs).is_ok()
    });
    // Only ask what the answer can change: runs need a registered workflow, a pull request
    // matters only while the file is missing or outdated.
    if facts.file.is_some() {
        let actions = repos
            .actions(name, &facts, fresh, resync, || async {
                let workflow = github.workflow(name, path).await?;
                let last_run = match workflow {
                    Some(_) => github.newest_completed_run(name, path).await?,
                    None => None,
                };
                Ok(Actions { workflow, last_run })
            })
            .await
            .map_err(ServiceError::GitHub)?;
        obs.workflow = actions.workflow;
        obs.last_run = actions.last_run;
    }
    if !current {
        obs.pull_request = github
            .open_pull_request(name)
            .await
            .map_err(ServiceError::GitHub)?;
    }
    let scope = Scope::new(None, &spec.storage.region);
    obs.lifecycle = buckets
        .lifecycle(&scope, &spec.storage.bucket, super::once_per(resync, fresh))
        .await
        .map_err(ServiceError::Aws)?;
    if obs.lifecycle.is_some() {
        obs.newest_backup = buckets
            .newest_object(
                &scope,
                &spec.storage.bucket,
                &spec.storage_prefix(),
                fresh,
                resync,
            )
            .await
            .map_err(ServiceError::Aws)?;
    }
    Ok(obs)
}
