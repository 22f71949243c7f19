//! `backup-warden run`: connects to the cluster, checks that the CRDs are installed, serves
//! the health endpoints and runs until SIGTERM or Ctrl-C.

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
    cli::RunArgs,
};

pub use health::Health;

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
    health.set_ready(true);
    tracing::info!(listen = %args.listen_address, "backup-warden is running");

    shutdown_signal().await;
    tracing::info!("shutting down");
    health.set_ready(false);
    let _ = shutdown_tx.send(true);
    let _ = server.await;
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
