//! Leader election on a `coordination.k8s.io` Lease, so that of several replicas only one
//! acts on AWS, GitHub and status. The leader renews the lease every retry period; a
//! leader that cannot renew within the renew deadline stops (and its pod restarts as a
//! candidate); a candidate takes the lease once it has not been renewed for its duration.
//! Updates carry the lease's resourceVersion, so two candidates never both win.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// Where this replica's GitHub webhook receiver is reached (`POD_IP:PORT`), written on
    /// the leases it holds so that a replica receiving a delivery can pass it on.
    pub advertise: Option<String>,
}

/// The annotation of a held Lease with its holder's webhook address.
pub const WEBHOOK_ADDRESS: &str = "backupwarden.io/webhook-address";

fn advertise(metadata: &mut ObjectMeta, address: Option<&str>) {
    let annotations = metadata.annotations.get_or_insert_with(Default::default);
    match address {
        Some(address) => {
            annotations.insert(WEBHOOK_ADDRESS.to_string(), address.to_string());
        }
        None => {
            annotations.remove(WEBHOOK_ADDRESS);
        }
    }
}

impl LeaseSettings {
    /// 15 s lease, 10 s renew deadline, 2 s retry: the client-go defaults, halved.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            name: "backup-warden".to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            advertise: None,
        }
    }
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    Leading,
    Following { holder: String },
}

pub(crate) fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let duration = spec.lease_duration_seconds.unwrap_or(15);
    match &spec.renew_time {
        Some(MicroTime(renewed)) => now.duration_since(*renewed).as_secs() >= i64::from(duration),
        None => true,
    }
}

/// One try to take or keep the lease.
pub(crate) async fn try_acquire(api: &Api<Lease>, s: &LeaseSettings) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    let duration = i32::try_from(s.duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        let mut metadata = ObjectMeta {
            name: Some(s.name.clone()),
            ..Default::default()
        };
        advertise(&mut metadata, s.advertise.as_deref());
        let lease = Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following {
                holder: String::new(),
            }),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == s.identity;
    if !ours && !holder.is_empty() && !expired(spec, now) {
        return Ok(Attempt::Following { holder });
    }
    if !ours {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration);
    advertise(&mut lease.metadata, s.advertise.as_deref());
    // The resourceVersion read above makes this a compare-and-swap: a 409 means another
    // candidate wrote first.
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Attempt::Leading),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following { holder }),
        Err(e) => Err(e),
    }
}

/// Leadership held: `lost` turns true when the lease could not be renewed in time.
pub struct Leadership {
    pub lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl Leadership {
    /// Hands the lease over at shutdown: the next candidate need not wait for it to expire.
    pub async fn release(self) {
        self.renewer.abort();
        release(&self.api, &self.settings).await;
    }
}

/// Gives the lease up if this replica holds it: the next candidate need not wait for it to
/// expire.
pub(crate) async fn release(api: &Api<Lease>, settings: &LeaseSettings) {
    if let Ok(Some(mut lease)) = api.get_opt(&settings.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(settings.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(error) = api.replace(&settings.name, &PostParams::default(), &lease).await {
            tracing::warn!(%error, lease = %settings.name, "could not release the lease");
        }
    }
}

/// Waits until this replica leads (logging who does meanwhile), then keeps renewing.
pub async fn acquire(client: Client, settings: LeaseSettings) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_holder = None;
    loop {
        match try_acquire(&api, &settings).await {
            Ok(Attempt::Leading) => break,
            Ok(Attempt::Following { holder }) => {
                if last_holder.as_ref() != Some(&holder) {
                    tracing::info!(leader = %holder, "standing by: another replica leads");
                    last_holder = Some(holder);
                }
            }
            Err(error) => tracing::warn!(%error, "could not read or take the leader lease"),
        }
        tokio::time::sleep(settings.retry_period).await;
    }
    tracing::info!(identity = %settings.identity, lease = %settings.name, "leading");
    let (lost_tx, lost) = watch::channel(false);
    let (renew_api, renew) = (api.clone(), settings.clone());
    let renewer = tokio::spawn(async move {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(renew.retry_period).await;
            match try_acquire(&renew_api, &renew).await {
                Ok(Attempt::Leading) => last_renewed = tokio::time::Instant::now(),
                Ok(Attempt::Following { holder }) => {
                    tracing::error!(leader = %holder, "the leader lease was taken over");
                    let _ = lost_tx.send(true);
                    return;
                }
                Err(error) => tracing::warn!(%error, "could not renew the leader lease"),
            }
            if last_renewed.elapsed() > renew.renew_deadline {
                tracing::error!(deadline = ?renew.renew_deadline, "could not renew the leader lease in time");
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    Leadership {
        lost,
        renewer,
        api,
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            renew_time: Some(MicroTime(
                Timestamp::from_second(now.as_second() - renewed_secs_ago).expect("ts"),
            )),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        assert!(!expired(&spec(3, 15), Timestamp::now()));
        assert!(expired(&spec(16, 15), Timestamp::now()));
        assert!(
            expired(&LeaseSpec::default(), Timestamp::now()),
            "never renewed: free"
        );
    }
}
