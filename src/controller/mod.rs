//! `backup-warden run`: connects to the cluster, checks that the CRDs are installed, then
//! runs the reconcilers and serves the health endpoints until SIGTERM or Ctrl-C.

pub mod admission;
pub mod adopt;
pub mod context;
pub mod coverage;
pub mod database;
pub mod decoded;
pub mod guard;
mod health;
pub mod key_cleanup;
pub mod leader;
pub mod pipeline;
mod replica_key;
pub mod repository;
pub mod requests;
pub mod shard_leases;
pub mod shards;
pub mod sweep;
pub mod trail;

use std::sync::Arc;

use kube::{
    Api, Client,
    api::ListParams,
    core::{CustomResourceExt, Resource},
};
use thiserror::Error;
use tokio::sync::watch;

use crate::{
    api::{BackedUpDatabase, BackedUpRepository, RetainedAuditTrail},
    aws::{
        ApiCalls, AwsClients, AwsSettings, inventory::BucketInventory, kms::SdkKms, rds::SdkRds, s3::SdkS3,
    },
    cli::RunArgs,
    github::{GitHub, GitHubClient, inventory::RepoInventory},
    policy::{database::Policy, repository::RepositoryPolicy},
    report::{
        metrics::Metrics,
        slack::{NoopNotifier, Notifier, SlackError, SlackNotifier, SlackSettings, webhook_from},
    },
    tenancy::Tenancy,
};

pub use context::{Context, Timing};
pub use decoded::Decoded;
pub use health::Health;

/// What wakes a controller: objects applied with a new generation or a new reconcile
/// request (`requests`; a status write changes neither, so it does not wake the
/// controller again), kept in `writer`'s store; a deleted
/// object's metrics are removed on the way. Objects are decoded one by one, so one that
/// cannot be read never fails the list or the watch.
pub(crate) fn trigger<K>(
    api: Api<K>,
    writer: kube::runtime::reflector::store::Writer<Decoded<K>>,
    metrics: Arc<Metrics>,
    kind: &'static str,
    shards: Arc<shards::Ownership>,
) -> impl futures::Stream<Item = Result<Decoded<K>, kube::runtime::watcher::Error>> + Send
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::{StreamExt, TryStreamExt};
    use kube::{
        ResourceExt,
        runtime::{WatchStreamExt, watcher},
    };
    let client = api.clone().into_client();
    let api: Api<Decoded<K>> = match api.namespace() {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    let owned = shards.clone();
    let store = writer.as_reader();
    let stored = store.clone();
    shards::watch_owned(api, watcher::Config::default(), shards.clone())
        .default_backoff()
        .map_ok(move |event| decoded::share_unchanged(&stored, event))
        .reflect(writer)
        .inspect(move |event| match event {
            Ok(watcher::Event::Delete(gone)) => {
                metrics.forget_object(kind, &gone.namespace().unwrap_or_default(), &gone.name_any());
            }
            // A (re)list is complete: the objects of shards handed over are gone from the store.
            Ok(watcher::Event::InitDone) => {
                metrics.retain_objects(kind, |namespace, name| owned.owns(namespace, name))
            }
            _ => {}
        })
        // The objects of a (re)list only once it is complete: until then the store, where
        // the controller looks each one up, does not hold them, and one looked up too early
        // is dropped (a replica of `make bench-scale-sharded` that gained shards left 850 of
        // 2,000 objects unreconciled). Unchanged ones are filtered out below.
        .flat_map(move |event| {
            let objects: Box<dyn Iterator<Item = _> + Send> = match event {
                Ok(watcher::Event::Apply(object)) => Box::new(std::iter::once(Ok(object))),
                Ok(watcher::Event::InitDone) => {
                    Box::new(store.state().into_iter().map(|o| Ok(o.as_ref().clone())))
                }
                Ok(_) => Box::new(std::iter::empty()),
                Err(error) => Box::new(std::iter::once(Err(error))),
            };
            futures::stream::iter(objects)
        })
        // A shard gained (its objects listed again) is a reason to look at every object of
        // it, whatever its generation: the epoch of the owned shards is part of the key.
        .predicate_filter(
            move |object: &Decoded<K>| {
                requests::generation_or_request(object.meta())
                    .map(|key| key ^ shards.epoch().wrapping_mul(0x9e37_79b9_7f4a_7c15))
            },
            Default::default(),
        )
}

/// Runs a controller's future beside the tracker of its sweeps, which looks every
/// `every` at the objects `store` holds.
pub(crate) async fn with_sweeps<K>(
    controller: impl Future<Output = ()>,
    sweep: Arc<sweep::Sweep>,
    store: kube::runtime::reflector::Store<Decoded<K>>,
    every: std::time::Duration,
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let keys = move || store.state().iter().map(|o| object_key(o.as_ref())).collect();
    tokio::select! {
        _ = controller => {}
        _ = sweep.watch(every.clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(10)), keys) => {}
    }
}

/// `namespace/name`, the key of per-object state such as the backoff.
pub(crate) fn object_key(object: &impl kube::ResourceExt) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// How long in-flight reconciles may take to finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
    #[error("cannot set up metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    #[error("Slack: {0}")]
    Slack(#[source] SlackError),
    #[error("{0}")]
    Tenancy(#[source] crate::tenancy::TenancyError),
    #[error(
        "--shards and --leader-election exclude each other: with shards, each shard has a lease of its own \
         and every replica acts on the shards it holds"
    )]
    ShardsAndLeader,
    #[error("lost the leader lease; exiting so that this replica restarts as a candidate")]
    LeadershipLost,
    #[error("change events: {0}")]
    Events(String),
    #[error("evidence log: {0}")]
    Evidence(String),
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Config)?;
    let metrics = Arc::new(Metrics::new().map_err(RunError::Metrics)?);
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = health::serve(
        args.listen_address,
        health.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    )
    .await
    .map_err(RunError::Health)?;

    check_crd::<BackedUpDatabase>(&client, args.namespace.as_deref()).await?;
    check_crd::<BackedUpRepository>(&client, args.namespace.as_deref()).await?;
    // Served before leadership: a standby passes deliveries to the leader.
    let webhook = webhook_receiver(&args, &client, &metrics, &shutdown_rx).await?;
    // A standby replica is healthy and ready (it serves metrics); only the leader acts.
    health.set_ready(true);
    let leadership = match leader_settings(&args) {
        None => None,
        Some(settings) => tokio::select! {
            leadership = leader::acquire(client.clone(), settings) => Some(leadership),
            _ = shutdown_signal() => {
                let _ = shutdown_tx.send(true);
                let _ = server.await;
                return Ok(());
            }
        },
    };

    // With shards, each replica acts on the shards whose leases it holds.
    let (shards, shard_leases) = match shard_settings(&args)? {
        None => (shards::Ownership::all(), None),
        Some(settings) => {
            let owned = shards::Ownership::new(args.shards);
            let leases = shard_leases::ShardLeases::start(client.clone(), settings, owned.clone());
            (owned, Some(leases))
        }
    };
    let calls = Arc::new(ApiCalls::with_metric(metrics.external_calls.clone()));
    let notifier = notifier(&args, &metrics)?;
    let tenancy = Arc::new(match &args.tenancy_file {
        Some(path) => Tenancy::from_file(path).map_err(RunError::Tenancy)?,
        None => {
            tracing::warn!(
                "no --tenancy-file: every namespace may use backup-warden's own AWS identity and any \
                 repository its GitHub credentials reach, and none may name an AWS role"
            );
            Tenancy::single_team()
        }
    });
    let calls_at_exit = calls.clone();
    let settings = AwsSettings {
        endpoint_url: args.aws_endpoint_url.clone(),
        concurrency: usize::from(args.concurrency),
        timeouts: args.timeouts.timeouts(),
        rds_rate: crate::aws::budget::Rate {
            per_second: args.rds_requests_per_second,
            burst: args.rds_burst,
        },
        kms_write_rate: crate::aws::budget::Rate {
            per_second: args.kms_writes_per_second,
            burst: args.kms_writes_per_second.ceil().max(1.0) as u32,
        },
    };
    let aws = Arc::new(AwsClients::from_env(settings, calls.clone()).await);
    let budgets = aws.budgets().clone();
    shards::on_share(&shards, move |share| {
        budgets.set_share(share);
        std::future::ready(())
    });
    let aws_for_repositories = aws.clone();
    let aws_for_trails = aws.clone();
    let aws_for_events = aws.clone();
    let aws_for_drills = aws.clone();
    let evidence = evidence_log(&args, &metrics)?;
    let uploader = evidence_uploader(&args, &evidence, &aws).await;
    let policy = Policy {
        min_retention_days: args.policy_min_retention_days,
        audit_only: args.audit_only,
    };
    let timing = Timing {
        resync: args.resync_interval.as_duration(),
        settle: args.settle_interval.as_duration(),
        ..Timing::default()
    };
    let mut ctx = Context::new(
        client.clone(),
        Arc::new(SdkRds { clients: aws.clone() }),
        Arc::new(SdkKms { clients: aws }),
        calls,
        policy,
        timing,
        context::Reporters {
            metrics: metrics.clone(),
            notifier: notifier.clone(),
            evidence: evidence.clone(),
        },
    )
    .with_key_cleanup(key_cleanup::KeyCleanupSettings {
        enabled: args.key_cleanup,
        grace: args.key_cleanup_grace.as_duration(),
    });
    ctx.tenancy = tenancy.clone();
    ctx.shards = shards.clone();
    let ctx = Arc::new(ctx);
    let databases: Api<BackedUpDatabase> = scoped(&client, args.namespace.as_deref());
    let stop = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    metrics
        .resync_interval
        .set(args.resync_interval.as_duration().as_secs_f64());
    let mut controllers = vec![
        supervise(
            "BackedUpDatabase controller",
            health.clone(),
            shutdown_rx.clone(),
            database::run(databases, ctx.clone(), args.concurrency, stop(&shutdown_rx)),
        ),
        supervise(
            "database restore drills",
            health.clone(),
            shutdown_rx.clone(),
            crate::drill::database::run(
                ctx.clone(),
                Arc::new(SdkRds {
                    clients: aws_for_drills.clone(),
                }),
                crate::drill::database::Settings {
                    per_region: usize::from(args.restore_drills_per_region),
                    tick: args.settle_interval.as_duration(),
                    sweep: args.resync_interval.as_duration(),
                },
                shutdown_rx.clone(),
            ),
        ),
    ];
    let mut github = None;
    let mut routes = crate::events::route::Router {
        databases: Some(ctx.clone()),
        ..Default::default()
    };
    match repository_context(
        &args,
        client.clone(),
        aws_for_repositories,
        context::Reporters {
            metrics: metrics.clone(),
            notifier,
            evidence: evidence.clone(),
        },
        tenancy,
        shards.clone(),
    ) {
        Ok((repo_ctx, writer)) => {
            github = Some(repo_ctx.github.clone());
            routes.repositories = Some(repo_ctx.clone());
            controllers.push(supervise(
                "repository restore drills",
                health.clone(),
                shutdown_rx.clone(),
                crate::drill::repository::run(
                    repo_ctx.clone(),
                    aws_for_drills.clone(),
                    args.settle_interval.as_duration(),
                    shutdown_rx.clone(),
                ),
            ));
            let repositories: Api<BackedUpRepository> = scoped(&client, args.namespace.as_deref());
            controllers.push(supervise(
                "BackedUpRepository controller",
                health.clone(),
                shutdown_rx.clone(),
                repository::run(
                    repositories,
                    repo_ctx,
                    writer,
                    args.concurrency,
                    stop(&shutdown_rx),
                ),
            ));
        }
        Err(why) => {
            tracing::warn!(%why, "BackedUpRepository objects are not reconciled");
            let repositories: Api<BackedUpRepository> = scoped(&client, args.namespace.as_deref());
            let guard = guard::Guard::new(
                "BackedUpRepository",
                client.clone(),
                (
                    metrics.clone(),
                    crate::report::recorder::Recorder::new(client.clone(), "backup-warden".into()),
                ),
                kube::runtime::reflector::store().0,
                Tenancy::single_team().into(),
                args.resync_interval.as_duration(),
            );
            controllers.push(supervise(
                "BackedUpRepository reporter",
                health.clone(),
                shutdown_rx.clone(),
                report_unconfigured(repositories, guard, why, shards.clone(), stop(&shutdown_rx)),
            ));
        }
    }
    if optional_crd::<RetainedAuditTrail>(&client, args.namespace.as_deref()).await? {
        let (trail_ctx, writer) = trail_context(&args, &client, &aws_for_trails, &ctx, &metrics);
        routes.trails = Some(trail_ctx.wakes.clone());
        let trails: Api<RetainedAuditTrail> = scoped(&client, args.namespace.as_deref());
        controllers.push(supervise(
            "RetainedAuditTrail controller",
            health.clone(),
            shutdown_rx.clone(),
            trail::run(trails, trail_ctx, writer, args.concurrency, stop(&shutdown_rx)),
        ));
    }
    let routes = Arc::new(routes);
    controllers.extend(events_queue(
        &args,
        &client,
        routes.clone(),
        aws_for_events,
        &metrics,
        (&health, &shutdown_rx),
    ));
    if let Some((receiver, server)) = webhook {
        let _ = receiver.routes.set(routes);
        controllers.push(supervise(
            "GitHub webhook receiver",
            health.clone(),
            shutdown_rx.clone(),
            async move {
                if let Ok(Err(e)) = server.await {
                    tracing::error!(error = %e, "the GitHub webhook receiver stopped");
                }
            },
        ));
    }
    if coverage_installed(&client, args.namespace.as_deref()).await? {
        controllers.push(supervise(
            "BackupCoverage controller",
            health.clone(),
            shutdown_rx.clone(),
            coverage::run(ctx, github, Default::default(), stop(&shutdown_rx)),
        ));
    }
    tracing::info!(listen = %args.listen_address, audit_only = args.audit_only, "backup-warden is running");

    let mut lost = leadership.as_ref().map(|l| l.lost.clone());
    let lost_leadership = async {
        match lost.as_mut() {
            Some(lost) => {
                let _ = lost.wait_for(|l| *l).await;
            }
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        _ = lost_leadership => Err(RunError::LeadershipLost),
    };
    tracing::info!("shutting down");
    health.set_ready(false);
    let _ = shutdown_tx.send(true);
    // In-flight reconciles get a few seconds to finish; a hung AWS or GitHub call must not
    // outlast the pod's termination grace period.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join_all(controllers)).await;
    if drained.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running at shutdown were abandoned");
    }
    // The evidence of the last reconciles too: one more upload (what it cannot upload waits
    // in the spool for the next start).
    if let Some((task, stop)) = uploader {
        let _ = stop.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!(
                pending = evidence.pending(),
                "the last evidence upload did not finish in time"
            );
        }
    }
    if let Some(leadership) = leadership
        && outcome.is_ok()
    {
        leadership.release().await;
    }
    if let Some(leases) = shard_leases {
        leases.release().await;
    }
    let _ = server.await;
    tracing::info!(aws_calls = %calls_at_exit.to_json(), "stopped");
    outcome
}

/// Without GitHub credentials no repository can be checked: each one says so in its status
/// (`Stalled`, reason `CredentialsMissing`) rather than showing nothing at all.
async fn report_unconfigured(
    api: Api<BackedUpRepository>,
    guard: guard::Guard<BackedUpRepository>,
    why: String,
    shards: Arc<shards::Ownership>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    use futures::StreamExt;
    use kube::runtime::{Controller, controller::Action, reflector};
    let (reader, writer) = reflector::store();
    let stream = trigger(api, writer, guard.metrics.clone(), guard.kind, shards.clone());
    let message = Arc::new(format!(
        "backup-warden has no GitHub credentials ({why}): nothing is checked until a token or a GitHub App \
         is configured (docs/installation.md)"
    ));
    let resync = guard.resync;
    let sweep = guard.sweep.clone();
    let controller = Controller::for_stream(stream, reader.clone())
        .graceful_shutdown_on(shutdown)
        .run(
            move |object, guard| {
                let (message, shards) = (message.clone(), shards.clone());
                async move {
                    let Some(_in_shard) = shards.enter(object.as_ref()) else {
                        return Ok::<_, std::convert::Infallible>(Action::await_change());
                    };
                    let conditions = match object.as_ref() {
                        Decoded::Valid(valid) => valid.status.clone().unwrap_or_default().conditions,
                        Decoded::Invalid(bad) => bad.conditions.clone(),
                    };
                    guard.metrics.reconciles.with_label_values(&[guard.kind]).inc();
                    guard
                        .report_stalled::<BackedUpRepository>(
                            object.as_ref(),
                            &conditions,
                            crate::api::Reason::CredentialsMissing,
                            message.to_string(),
                        )
                        .await;
                    // Looked at: the sweep (and its alert) counts it as for any reconcile.
                    guard.sweep.visited(object_key(object.as_ref()));
                    Ok::<_, std::convert::Infallible>(Action::requeue(resync))
                }
            },
            move |_, _, _| Action::requeue(resync),
            Arc::new(guard),
        )
        .for_each(|_| async {});
    with_sweeps(controller, sweep, reader, resync).await;
}

/// Runs a controller task; if it ends (or panics) before shutdown, /healthz fails from then on.
fn supervise(
    name: &'static str,
    health: Arc<Health>,
    stopping: watch::Receiver<bool>,
    task: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = tokio::spawn(task).await;
        if *stopping.borrow() {
            return;
        }
        let why = match outcome {
            Ok(()) => "it ended".to_string(),
            Err(e) if e.is_panic() => "it panicked (see the log)".to_string(),
            Err(e) => e.to_string(),
        };
        health.task_died(name, &why);
    })
}

/// The lease settings when leader election is on.
fn leader_settings(args: &RunArgs) -> Option<leader::LeaseSettings> {
    args.leader_election.then(|| leader::LeaseSettings {
        advertise: webhook_advertise(args),
        ..leader::LeaseSettings::new(&args.lease_namespace, &identity())
    })
}

/// The lease settings of the shard leases when there is more than one shard.
fn shard_settings(args: &RunArgs) -> Result<Option<leader::LeaseSettings>, RunError> {
    if args.shards <= 1 {
        return Ok(None);
    }
    if args.leader_election {
        return Err(RunError::ShardsAndLeader);
    }
    Ok(Some(leader::LeaseSettings {
        advertise: webhook_advertise(args),
        ..leader::LeaseSettings::new(&args.lease_namespace, &identity())
    }))
}

/// This replica's name in leases: its pod's, or a host/pid identity.
fn identity() -> String {
    std::env::var("BACKUP_WARDEN_POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "backup-warden".into()),
                std::process::id()
            )
        })
}

/// The repository controller's context, when GitHub credentials are configured.
fn repository_context(
    args: &RunArgs,
    client: Client,
    aws: Arc<AwsClients>,
    reporters: context::Reporters,
    tenancy: Arc<Tenancy>,
    shards: Arc<shards::Ownership>,
) -> Result<
    (
        Arc<repository::RepoContext>,
        kube::runtime::reflector::store::Writer<Decoded<BackedUpRepository>>,
    ),
    String,
> {
    let settings = crate::cli::github_settings(&args.github, &args.timeouts).map_err(|e| e.to_string())?;
    let client_of_github = Arc::new(
        GitHubClient::new(&settings)
            .map_err(|e| e.to_string())?
            .with_metrics(reporters.metrics.clone()),
    );
    let paced = client_of_github.clone();
    shards::on_share(&shards, move |share| {
        paced.set_share(share);
        std::future::ready(())
    });
    let github: Arc<dyn GitHub> = client_of_github;
    let timing = Timing {
        resync: args.resync_interval.as_duration(),
        settle: args.settle_interval.as_duration(),
        ..Timing::default()
    };
    let (store, writer) = repository::store();
    let ctx = repository::RepoContext {
        client: client.clone(),
        repos: RepoInventory::new(github.clone()),
        github,
        buckets: BucketInventory::new(Arc::new(SdkS3 { clients: aws })),
        policy: RepositoryPolicy {
            min_retention_days: args.policy_min_backup_retention_days,
            audit_only: args.audit_only,
        },
        timing,
        recorder: crate::report::recorder::Recorder::new(client, "backup-warden".into()),
        backoff: context::Backoff::new(timing),
        store,
        metrics: reporters.metrics,
        notifier: reporters.notifier,
        tenancy,
        shards,
        wakes: Default::default(),
        evidence: reporters.evidence,
    };
    let ctx = Arc::new(ctx);
    // Weak: the context holds the shards, whose watch keeps this callback alive.
    let swept = Arc::downgrade(&ctx);
    shards::on_share(&ctx.shards, move |share| {
        if let Some(ctx) = swept.upgrade() {
            ctx.repos.set_share(share);
        }
        std::future::ready(())
    });
    Ok((ctx, writer))
}

/// The evidence log, when an evidence bucket is configured (off otherwise).
fn evidence_log(
    args: &RunArgs,
    metrics: &Arc<Metrics>,
) -> Result<Arc<crate::evidence::EvidenceLog>, RunError> {
    use crate::evidence::{Controller, EvidenceLog, Settings};
    let Some(bucket) = &args.evidence_bucket else {
        return Ok(EvidenceLog::off());
    };
    if !(args.evidence_prefix.is_empty() || args.evidence_prefix.ends_with('/')) {
        return Err(RunError::Evidence(format!(
            "--evidence-prefix {:?} must be empty or end with '/'",
            args.evidence_prefix
        )));
    }
    let settings = Settings {
        spool_dir: args.evidence_spool_dir.clone(),
        spool_max_bytes: args.evidence_spool_max_bytes,
    };
    let controller = Controller {
        version: env!("CARGO_PKG_VERSION").to_string(),
        replica: identity(),
    };
    let log = EvidenceLog::open(&settings, controller, metrics.clone()).map_err(|e| {
        let dir = settings
            .spool_dir
            .as_deref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        RunError::Evidence(format!("cannot open the spool {dir}: {e}"))
    })?;
    if settings.spool_dir.is_none() {
        tracing::warn!("no --evidence-spool-dir: evidence waiting for upload is lost if the process stops");
    }
    tracing::info!(%bucket, prefix = %args.evidence_prefix, pending = log.pending(), "keeping evidence");
    Ok(log)
}

/// The uploader of the evidence log, and what stops it (after the reconciles have drained).
async fn evidence_uploader(
    args: &RunArgs,
    log: &Arc<crate::evidence::EvidenceLog>,
    aws: &Arc<AwsClients>,
) -> Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)> {
    use crate::evidence::upload;
    let bucket = args.evidence_bucket.clone().filter(|_| log.is_on())?;
    let s3 = aws
        .for_scope(&crate::aws::Scope::new(None, &args.evidence_region))
        .await
        .s3;
    let to = upload::Destination {
        s3,
        bucket,
        prefix: args.evidence_prefix.clone(),
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(upload::run(
        log.clone(),
        to,
        args.evidence_flush_interval.as_duration(),
        stopped,
    ));
    Some((task, stop))
}

/// The SQS consumer of change events, when a queue is configured: on the acting replica
/// only (a message is handled once).
fn events_queue(
    args: &RunArgs,
    client: &Client,
    routes: Arc<crate::events::route::Router>,
    aws: Arc<AwsClients>,
    metrics: &Arc<Metrics>,
    (health, shutdown): (&Arc<Health>, &watch::Receiver<bool>),
) -> Option<tokio::task::JoinHandle<()>> {
    use crate::events::sqs;
    let url = args.events_queue_url.as_ref()?;
    let settings = sqs::QueueSettings {
        url: url.clone(),
        dead_letter_url: args.events_dead_letter_queue_url.clone(),
        wait_seconds: 20,
        // With shards, every replica must see every message.
        fanout: (args.shards > 1).then(|| {
            Arc::new(crate::events::peers::Peers::new(
                client.clone(),
                &args.lease_namespace,
                acting_leases(args),
                &identity(),
            ))
        }),
    };
    let region = settings.region(&args.events_queue_region);
    tracing::info!(queue = %url, %region, "reading change events from SQS");
    let mut stop = shutdown.clone();
    Some(supervise(
        "change events from SQS",
        health.clone(),
        shutdown.clone(),
        sqs::consume(aws, settings, region, routes, metrics.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }),
    ))
}

/// The GitHub webhook receiver, when configured: served on every replica from the start
/// (a standby passes deliveries to the leader), acting once `routes` is set.
async fn webhook_receiver(
    args: &RunArgs,
    client: &Client,
    metrics: &Arc<Metrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<
    Option<(
        Arc<crate::events::receiver::Receiver>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    RunError,
> {
    use crate::events::{peers::Peers, receiver};
    let (Some(addr), Some(path)) = (
        args.github_webhook_listen_address,
        args.github_webhook_secret_file.as_deref(),
    ) else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(path)
        .map_err(|e| RunError::Events(format!("cannot read the webhook secret {}: {e}", path.display())))?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(RunError::Events(format!(
            "the webhook secret file {} is empty",
            path.display()
        )));
    }
    let leases = acting_leases(args);
    let peers =
        (!leases.is_empty()).then(|| Peers::new(client.clone(), &args.lease_namespace, leases, &identity()));
    let max = receiver::MAX_BODY;
    let state = Arc::new(receiver::Receiver {
        gate: crate::github::webhook::Gate::new(secret.as_bytes(), max, 100_000),
        max_body: max,
        routes: Default::default(),
        peers,
        metrics: metrics.clone(),
    });
    let (bound, server) = receiver::serve(addr, state.clone(), shutdown.clone())
        .await
        .map_err(|e| RunError::Events(format!("cannot serve GitHub webhooks on {addr}: {e}")))?;
    tracing::info!(address = %bound, "serving GitHub webhooks on /github/webhook");
    Ok(Some((state, server)))
}

/// The leases whose holders act: every shard's, or the leader's (none without either).
fn acting_leases(args: &RunArgs) -> Vec<String> {
    let name = leader::LeaseSettings::new(&args.lease_namespace, &identity()).name;
    if args.shards > 1 {
        (0..args.shards).map(|s| format!("{name}-shard-{s}")).collect()
    } else if args.leader_election {
        vec![name]
    } else {
        Vec::new()
    }
}

/// Where peers reach this replica's webhook receiver: the pod's IP (the downward API's
/// `status.podIP` as `BACKUP_WARDEN_POD_IP`) and the receiver's port.
fn webhook_advertise(args: &RunArgs) -> Option<String> {
    let port = args.github_webhook_listen_address?.port();
    let ip = std::env::var("BACKUP_WARDEN_POD_IP")
        .ok()
        .filter(|ip| !ip.is_empty())?;
    Some(std::net::SocketAddr::new(ip.parse().ok()?, port).to_string())
}

/// The audit-trail controller's context: the database context's reporters and tenancy.
fn trail_context(
    args: &RunArgs,
    client: &Client,
    aws: &Arc<AwsClients>,
    databases: &Context,
    metrics: &Arc<Metrics>,
) -> (
    Arc<trail::TrailContext>,
    kube::runtime::reflector::store::Writer<Decoded<RetainedAuditTrail>>,
) {
    let (store, writer) = trail::store();
    let ctx = trail::TrailContext {
        client: client.clone(),
        aws: Arc::new(crate::aws::cloudtrail::SdkAuditTrails { clients: aws.clone() }),
        regions: Default::default(),
        policy: crate::policy::trail::TrailPolicy {
            min_retention_days: args.policy_min_trail_retention_days,
            audit_only: args.audit_only,
        },
        timing: databases.timing,
        recorder: crate::report::recorder::Recorder::new(client.clone(), "backup-warden".into()),
        backoff: context::Backoff::new(databases.timing),
        store,
        metrics: metrics.clone(),
        notifier: databases.notifier.clone(),
        tenancy: databases.tenancy.clone(),
        shards: databases.shards.clone(),
        wakes: Default::default(),
        evidence: databases.evidence.clone(),
    };
    (Arc::new(ctx), writer)
}

/// Slack when a webhook is configured (its outcomes counted into the metrics), else nothing.
fn notifier(args: &RunArgs, metrics: &Arc<Metrics>) -> Result<Arc<dyn Notifier>, RunError> {
    let Some(url) = webhook_from(
        args.slack_webhook_url_file.as_deref(),
        std::env::var("SLACK_WEBHOOK_URL").ok(),
    )
    .map_err(RunError::Slack)?
    else {
        tracing::info!("no Slack webhook configured: drift is reported in status, events and metrics only");
        return Ok(Arc::new(NoopNotifier));
    };
    let settings = SlackSettings {
        timeouts: args.timeouts.timeouts(),
        ..SlackSettings::default()
    };
    let (slack, _sender) = SlackNotifier::start(url, settings);
    let (slack_for_metrics, metrics) = (slack.clone(), metrics.clone());
    tokio::spawn(async move {
        let mut counted = crate::report::slack::SlackOutcomes::default();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            counted = metrics.count_slack(counted, slack_for_metrics.outcomes());
        }
    });
    Ok(slack)
}

/// A list of at most one object answers 404 exactly when the CRD is missing, and needs no
/// permission beyond what the controller uses anyway. Metadata only: an object whose spec
/// cannot be read must not stop the controller from starting.
/// With `--namespace`, the list is namespaced, as the RBAC of a one-namespace install is.
async fn check_crd<K>(client: &Client, namespace: Option<&str>) -> Result<(), RunError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + CustomResourceExt
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let crd = K::crd_name().to_string();
    let api = scoped::<K>(client, namespace);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(RunError::CrdMissing { crd }),
        Err(source) => Err(RunError::CrdCheck { crd, source }),
    }
}

/// The objects of a kind the controller watches: one namespace's with `--namespace`, else all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Whether an optional kind is reconciled: a cluster upgraded without its CRD runs the
/// other kinds (and says so). With `--namespace`, the list is namespaced.
async fn optional_crd<K>(client: &Client, namespace: Option<&str>) -> Result<bool, RunError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + CustomResourceExt
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match check_crd::<K>(client, namespace).await {
        Ok(()) => Ok(true),
        Err(RunError::CrdMissing { crd }) => {
            tracing::warn!(%crd, "{} objects are not reconciled: the CRD is not installed (`backup-warden crd | kubectl apply --server-side -f -`, then restart)", K::kind(&()));
            Ok(false)
        }
        Err(RunError::CrdCheck {
            crd,
            source: kube::Error::Api(status),
        }) if status.is_forbidden() => {
            tracing::warn!(%crd, "{} objects are not reconciled: this service account may not list them (the chart's RBAC grants it)", K::kind(&()));
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether coverages are reconciled: cluster-scoped, so not by a controller confined to one
/// namespace, and optional, so a cluster without the CRD runs the other kinds (and says so).
async fn coverage_installed(client: &Client, namespace: Option<&str>) -> Result<bool, RunError> {
    use crate::api::BackupCoverage;
    let crd = BackupCoverage::crd_name().to_string();
    if namespace.is_some() {
        tracing::info!(
            "BackupCoverage objects are not reconciled: --namespace confines this controller to one namespace"
        );
        return Ok(false);
    }
    match Api::<BackupCoverage>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            tracing::warn!(%crd, "BackupCoverage objects are not reconciled: the CRD is not installed (`backup-warden crd | kubectl apply --server-side -f -`, then restart)");
            Ok(false)
        }
        Err(kube::Error::Api(status)) if status.is_forbidden() => {
            tracing::warn!(%crd, "BackupCoverage objects are not reconciled: this service account may not list them (the chart's ClusterRole grants it)");
            Ok(false)
        }
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
