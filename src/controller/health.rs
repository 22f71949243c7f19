//! `/healthz` (alive, and every controller task still runs), `/readyz` (connected, CRDs
//! installed; the body says when each kind's last full sweep ended) and `/metrics`.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    routing::get,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::report::metrics::Metrics;

#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Controller tasks that ended while they should run; /healthz fails while any did.
    dead: std::sync::Mutex<Vec<String>>,
}

impl Health {
    /// A controller task ended without a shutdown: the process is no longer healthy, so the
    /// kubelet restarts it.
    pub fn task_died(&self, task: &str, why: &str) {
        tracing::error!(task, why, "a controller stopped; /healthz fails from now on");
        self.dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{task}: {why}"));
    }

    /// The controller tasks that died, if any.
    pub fn dead_tasks(&self) -> Vec<String> {
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Binds now (so a taken port fails startup) and serves until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let sweeps = metrics.clone();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(move |state| readyz(state, sweeps.clone())))
        .with_state(health)
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    }))
}

async fn healthz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    let dead = health.dead_tasks();
    if dead.is_empty() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stopped: {}", dead.join("; ")),
        )
    }
}

/// `ok` or `not ready`, then one line per kind: when its last full sweep ended.
async fn readyz(State(health): State<Arc<Health>>, metrics: Arc<Metrics>) -> (StatusCode, String) {
    let mut body = String::from(if health.is_ready() { "ok" } else { "not ready" });
    for (kind, at) in metrics.last_sweeps() {
        let at = k8s_openapi::jiff::Timestamp::from_second(at as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        body.push_str(&format!("\nlast full sweep of {kind}: {at}"));
    }
    let code = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_fails_once_a_controller_died_and_readyz_shows_sweeps() {
        let health = Arc::new(Health::default());
        health.set_ready(true);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        metrics.record_sweep("BackedUpDatabase", 1_800_000_000.0);
        assert_eq!(healthz(State(health.clone())).await.0, StatusCode::OK);
        let (code, body) = readyz(State(health.clone()), metrics).await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("last full sweep of BackedUpDatabase: 2027-01-15T08:00:00Z"),
            "{body}"
        );
        health.task_died("BackedUpDatabase controller", "the watch ended");
        let (code, body) = healthz(State(health)).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("BackedUpDatabase controller: the watch ended"),
            "{body}"
        );
    }
}
