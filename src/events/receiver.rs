//! The GitHub webhook receiver: its own port, `POST /github/webhook`, on every replica. A
//! delivery is read only up to a bound, admitted only when signed with the shared secret
//! and not seen before, and only then parsed; each outcome is counted and answered with its
//! status. A standby passes it to the leader; a sharded replica to the others too.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use k8s_openapi::jiff::Timestamp;
use tokio::{sync::watch, task::JoinHandle};

use super::{
    github::{Parsed, parse},
    route::Router as Routes,
};
use crate::{
    github::webhook::{Gate, Refused},
    report::metrics::Metrics,
};

/// What the receiver needs.
pub struct Receiver {
    pub gate: Gate,
    pub max_body: usize,
    /// The objects to wake, once this replica acts (a standby has none).
    pub routes: OnceLock<Arc<Routes>>,
    /// The other replicas, with leader election or shards.
    pub peers: Option<super::peers::Peers>,
    pub metrics: Arc<Metrics>,
}

impl Receiver {
    /// A receiver that acts at once (no leader election).
    pub fn acting(gate: Gate, routes: Arc<Routes>, metrics: Arc<Metrics>) -> Self {
        Self {
            gate,
            max_body: MAX_BODY,
            routes: OnceLock::from(routes),
            peers: None,
            metrics,
        }
    }
}

/// GitHub caps payloads at 25 MB; the events read here are far smaller.
pub const MAX_BODY: usize = 1024 * 1024;

/// Binds now (a taken port fails startup) and serves until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    receiver: Arc<Receiver>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let app = Router::new()
        .route("/github/webhook", post(deliver))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((
        bound,
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .await
        }),
    ))
}

fn refuse(r: &Receiver, reason: &str, status: StatusCode) -> (StatusCode, String) {
    r.metrics.events.with_label_values(&["github", "refused"]).inc();
    r.metrics.webhook_refusals.with_label_values(&[reason]).inc();
    (status, format!("refused: {reason}\n"))
}

async fn deliver(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Body) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let declared = header("content-length").and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > r.max_body) {
        return refuse(&r, Refused::TooLarge.as_str(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Read no more than the bound, whatever the headers said.
    let Ok(body) = to_bytes(body, r.max_body).await else {
        return refuse(&r, Refused::TooLarge.as_str(), StatusCode::PAYLOAD_TOO_LARGE);
    };
    let received = Timestamp::now();
    if let Err(refused) = r
        .gate
        .admit(header("x-hub-signature-256"), header("x-github-delivery"), &body)
    {
        let status = match refused {
            Refused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Replayed => StatusCode::CONFLICT,
            Refused::MissingDeliveryId => StatusCode::BAD_REQUEST,
            Refused::MissingSignature | Refused::BadSignature => StatusCode::UNAUTHORIZED,
        };
        tracing::warn!(
            reason = refused.as_str(),
            delivery = header("x-github-delivery").unwrap_or_default(),
            "webhook delivery refused"
        );
        return refuse(&r, refused.as_str(), status);
    }
    let forwarded = header(super::peers::FORWARDED).is_some();
    let passed_on: Vec<(&'static str, axum::http::HeaderValue)> = super::peers::PASSED_ON
        .iter()
        .filter_map(|name| headers.get(*name).map(|v| (*name, v.clone())))
        .collect();
    let Some(routes) = r.routes.get() else {
        // A standby: the leader acts.
        let answers = match (&r.peers, forwarded) {
            (Some(peers), false) => peers.forward(&passed_on, body).await,
            _ => Vec::new(),
        };
        return match answers.into_iter().find_map(|(to, a)| a.ok().map(|s| (to, s))) {
            Some((to, status)) => {
                r.metrics.events.with_label_values(&["github", "forwarded"]).inc();
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    format!("passed to the leader at {to}\n"),
                )
            }
            None => {
                // Not handled anywhere: a redelivery (the same id) must be admitted.
                if let Some(id) = header("x-github-delivery") {
                    r.gate.forget(id);
                }
                r.metrics.events.with_label_values(&["github", "failed"]).inc();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "standby, and no leader to pass it to\n".to_string(),
                )
            }
        };
    };
    // Sharded: the other replicas act on their shards' objects.
    if r.peers.is_some() && !forwarded {
        let (r, body) = (r.clone(), body.clone());
        tokio::spawn(async move {
            if let Some(peers) = &r.peers {
                for (to, answer) in peers.forward(&passed_on, body).await {
                    if let Err(why) = answer {
                        tracing::warn!(peer = %to, %why, "cannot pass a webhook delivery on");
                    }
                }
            }
        });
    }
    let event = header("x-github-event").unwrap_or_default();
    match parse(event, &body) {
        Ok(Parsed::Changed(targets)) => {
            let woken = routes.route(&targets, "github", received);
            let outcome = if woken > 0 { "matched" } else { "ignored" };
            r.metrics.events.with_label_values(&["github", outcome]).inc();
            (StatusCode::ACCEPTED, format!("{outcome}: {woken} objects\n"))
        }
        Ok(Parsed::Ignored(why)) => {
            r.metrics.events.with_label_values(&["github", "ignored"]).inc();
            (StatusCode::ACCEPTED, format!("ignored: {why}\n"))
        }
        Err(why) => {
            tracing::warn!(%event, %why, "unreadable webhook delivery");
            r.metrics.events.with_label_values(&["github", "failed"]).inc();
            r.metrics.webhook_refusals.with_label_values(&["malformed"]).inc();
            (StatusCode::BAD_REQUEST, format!("refused: {why}\n"))
        }
    }
}
