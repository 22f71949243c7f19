//! The other replicas' webhook receivers, from the Leases they hold (each holder writes its
//! address on them): a GitHub delivery reaching a standby is passed to the leader, and one
//! reaching a sharded replica to every other (each acts on its own shards' objects). A
//! delivery passed on keeps GitHub's signature, which the peer verifies again.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http::{Request, header::HeaderValue};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use kube::Api;

use crate::controller::leader::{WEBHOOK_ADDRESS, expired};

/// A request passed on carries this header: its receiver handles it itself.
pub const FORWARDED: &str = "x-backup-warden-forwarded";

/// The headers a delivery is passed on with.
pub const PASSED_ON: [&str; 4] = [
    "x-github-event",
    "x-github-delivery",
    "x-hub-signature-256",
    "content-type",
];

pub struct Peers {
    api: Api<Lease>,
    leases: Vec<String>,
    me: String,
    client: Client<HttpConnector, Full<Bytes>>,
    seen: Mutex<Option<(Instant, Vec<Holder>)>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("leases", &self.leases)
            .field("me", &self.me)
            .finish()
    }
}

/// A live lease holder's identity, and the address it advertises.
type Holder = (String, Option<String>);

/// How long a read of the lease holders serves (leases are renewed every 2 s).
const FRESH: Duration = Duration::from_secs(2);

impl Peers {
    /// The peers among the holders of `leases` (the leader's, or every shard's), other than `me`.
    pub fn new(client: kube::Client, namespace: &str, leases: Vec<String>, me: &str) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        Self {
            api: Api::namespaced(client, namespace),
            leases,
            me: me.to_string(),
            client: Client::builder(TokioExecutor::new()).build(http),
            seen: Mutex::new(None),
        }
    }

    /// Each live holder of the leases, with the address it advertises, once each; read at
    /// most once per `FRESH`, however many deliveries and messages ask.
    async fn live(&self) -> Vec<Holder> {
        if let Some((at, seen)) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < FRESH
        {
            return seen.clone();
        }
        let now = Timestamp::now();
        let mut found: Vec<Holder> = Vec::new();
        for name in &self.leases {
            let Ok(Some(lease)) = self.api.get_opt(name).await else {
                continue;
            };
            let Some(spec) = &lease.spec else { continue };
            let holder = spec.holder_identity.as_deref().unwrap_or_default();
            if holder.is_empty() || expired(spec, now) || found.iter().any(|(h, _)| h == holder) {
                continue;
            }
            let address = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(WEBHOOK_ADDRESS))
                .cloned();
            found.push((holder.to_string(), address));
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), found.clone()));
        found
    }

    /// The addresses of the live holders other than this replica.
    async fn addresses(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for (holder, address) in self.live().await {
            if let Some(address) = address.filter(|a| holder != self.me && !found.contains(a)) {
                found.push(address);
            }
        }
        found
    }

    /// The identities holding the leases now (this replica's included).
    pub async fn holders(&self) -> Vec<String> {
        self.live().await.into_iter().map(|(holder, _)| holder).collect()
    }

    /// This replica's identity.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Passes the delivery to every peer; each one's answer (status, or why not).
    pub async fn forward(
        &self,
        headers: &[(&'static str, HeaderValue)],
        body: Bytes,
    ) -> Vec<(String, Result<u16, String>)> {
        let mut answers = Vec::new();
        for address in self.addresses().await {
            let mut request =
                Request::post(format!("http://{address}/github/webhook")).header(FORWARDED, "1");
            for (name, value) in headers {
                request = request.header(*name, value.clone());
            }
            let answer = match request.body(Full::new(body.clone())) {
                Ok(request) => tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r.map(|r| r.status().as_u16()).map_err(|e| e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            answers.push((address, answer));
        }
        answers
    }
}
