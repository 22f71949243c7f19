//! The GitHub webhook receiver: its own port, `POST /github/webhook`. A delivery is read
//! only up to a bound, admitted only when signed with the shared secret and not seen
//! before, and only then parsed; each outcome is counted and answered with its status.

use std::{net::SocketAddr, sync::Arc};

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
    pub routes: Arc<Routes>,
    pub metrics: Arc<Metrics>,
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
    let event = header("x-github-event").unwrap_or_default();
    match parse(event, &body) {
        Ok(Parsed::Changed(targets)) => {
            let woken = r.routes.route(&targets, "github", received);
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
