//! `backup-warden run`: connects to the cluster, checks that the CRDs are installed, then
//! runs the reconcilers and serves the health endpoints until SIGTERM or Ctrl-C.

pub mod context;
pub mod database;
mod health;

use std::sync::Arc;

use kube::{
    Api, Client,
    api::ListParams,
    core::{CustomResourceExt, Resource},
};
use thiserror::Error;
use tokio::sync::watch;

use crate::{
    api::{BackedUpDatabase, BackedUpRepository},
    aws::{ApiCalls, AwsClients, AwsSettings, kms::SdkKms, rds::SdkRds},
    cli::RunArgs,
    policy::database::Policy,
};

pub use context::{Context, Timing};
pub use health::Health;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "backup-warden";

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot load a Kubernetes config (kubeconfig or in-cluster): {0}")]
    Config(#[source] kube::Error),
    #[error(
        "the CRD {crd} is not installed in the cluster; install it with \
         `backup-warden crd | kubectl apply --server-side -f -` (or `kubectl apply -f crds/`)"
    )]
    CrdMissing { crd: String },
    #[error("cannot reach the Kubernetes API to check CRD {crd}: {source}")]
    CrdCheck {
        crd: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot serve health endpoints: {0}")]
    Health(#[source] std::io::Error),
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Config)?;
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = health::serve(args.listen_address, health.clone(), shutdown_rx.clone())
        .await
        .map_err(RunError::Health)?;

    check_crd::<BackedUpDatabase>(&client).await?;
    check_crd::<BackedUpRepository>(&client).await?;

    let calls = Arc::new(ApiCalls::default());
    let calls_at_exit = calls.clone();
    let settings = AwsSettings {
        endpoint_url: args.aws_endpoint_url.clone(),
        concurrency: usize::from(args.concurrency),
    };
    let aws = Arc::new(AwsClients::from_env(settings, calls.clone()).await);
    let policy = Policy {
        min_retention_days: args.policy_min_retention_days,
        audit_only: args.audit_only,
    };
    let timing = Timing {
        resync: args.resync_interval.as_duration(),
        settle: args.settle_interval.as_duration(),
        ..Timing::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(SdkRds { clients: aws.clone() }),
        Arc::new(SdkKms { clients: aws }),
        calls,
        policy,
        timing,
    ));
    let databases: Api<BackedUpDatabase> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut stop = shutdown_rx.clone();
    let controller = tokio::spawn(database::run(databases, ctx, args.concurrency, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    health.set_ready(true);
    tracing::info!(listen = %args.listen_address, audit_only = args.audit_only, "backup-warden is running");

    shutdown_signal().await;
    tracing::info!("shutting down");
    health.set_ready(false);
    let _ = shutdown_tx.send(true);
    let _ = controller.await;
    let _ = server.await;
    tracing::info!(aws_calls = %calls_at_exit.to_json(), "stopped");
    Ok(())
}

/// A list of at most one object answers 404 exactly when the CRD is missing, and needs no
/// permission beyond what the controller uses anyway.
async fn check_crd<K>(client: &Client) -> Result<(), RunError>
where
    K: Resource<DynamicType = ()> + CustomResourceExt + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let crd = K::crd_name().to_string();
    match Api::<K>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(RunError::CrdMissing { crd }),
        Err(source) => Err(RunError::CrdCheck { crd, source }),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
