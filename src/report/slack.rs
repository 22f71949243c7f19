//! Slack notifications through an incoming webhook: one message when an object goes into
//! drift, one when its drift is resolved.
//!
//! [`SlackNotifier::notify`] only enqueues; a sender task paces messages (a token bucket),
//! honours `Retry-After` on 429, retries 5xx and network errors with capped backoff, stops
//! for good when Slack says the webhook is gone, and folds a flood of notifications into
//! one digest. A Slack outage never blocks or fails the caller.
//!
//! The webhook URL is a secret (whoever has it can post to the channel): it stays inside
//! the sender task, and no log line, error or `Debug` output contains it.

mod pacing;
mod render;
mod sender;
mod transport;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
};

/// One notification: an object went into drift, or its drift was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `BackedUpDatabase` or `BackedUpRepository`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub transition: Transition,
    /// Each failing check (for [`Transition::Drift`]) or each check now resolved.
    pub checks: Vec<CheckLine>,
    /// `(label, url)`: the RDS console page, a pull request, a failed workflow run.
    pub link: Option<(String, String)>,
}

/// Whether an object went into drift or came back to compliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Drift,
    Resolved,
    /// Drift found and fixed within one reconcile: never announced as drift, so one message
    /// says both.
    Healed,
}

/// One check of a notification: what the policy wants and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// The condition type, such as `RetentionCompliant`.
    pub check: String,
    pub desired: String,
    pub observed: String,
}

/// Sends notifications somewhere. `notify` never blocks and never fails the caller.
pub trait Notifier: Send + Sync {
    fn notify(&self, n: Notification);
}

/// The notifier when no Slack webhook is configured: drops every notification.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopNotifier;

impl Notifier for NoopNotifier {
    fn notify(&self, _n: Notification) {}
}

/// How the Slack sender paces and groups messages.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackSettings {
    /// Messages per second at most, on average (Slack allows about one per webhook).
    pub per_second: f64,
    /// Messages that may go out back to back before pacing applies.
    pub burst: u32,
    /// More notifications than this within `digest_window` (sent or waiting) are sent as
    /// digests instead of one message each.
    pub digest_threshold: usize,
    /// The window `digest_threshold` counts in. During a flood, a digest goes out at most
    /// every sixth of it.
    pub digest_window: Duration,
    /// Notifications waiting to be sent at most; more are dropped (and counted).
    pub queue_capacity: usize,
    pub timeouts: crate::timeouts::Timeouts,
}

impl Default for SlackSettings {
    fn default() -> Self {
        Self {
            per_second: 1.0,
            burst: 3,
            digest_threshold: 20,
            digest_window: Duration::from_secs(60),
            queue_capacity: 1000,
            timeouts: crate::timeouts::Timeouts::default(),
        }
    }
}

/// What happened to Slack messages so far. Counts messages (a digest is one), except
/// `dropped`, which counts notifications that found the queue full, and `failed_permanent`
/// after the webhook is gone, which counts each notification not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlackOutcomes {
    /// Messages Slack accepted (digests included).
    pub sent: u64,
    /// 429 answers (each one waited for and retried).
    pub rate_limited: u64,
    /// Messages Slack refused for good (4xx), or not sent because the webhook is gone.
    pub failed_permanent: u64,
    /// Messages given up on after retrying 5xx answers or network errors.
    pub failed_transient: u64,
    /// Notifications dropped because the queue was full.
    pub dropped: u64,
    /// Digest messages Slack accepted.
    pub digests: u64,
}

/// Errors configuring the Slack webhook. None of them contains the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("cannot read the Slack webhook from {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Slack webhook file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("the Slack webhook is not usable: {reason}")]
    InvalidWebhook { reason: &'static str },
    #[error("cannot load root certificates for the Slack webhook")]
    RootCertificates {
        #[source]
        source: std::io::Error,
    },
}

/// The Slack webhook URL: from `file` (a mounted Secret) when given, else from the
/// environment variable's value; trimmed. `Ok(None)` when neither is set (an empty variable
/// counts as unset). The URL must be `https`; plain `http` is accepted only for
/// `127.0.0.1` and `localhost`, for tests.
pub fn webhook_from(file: Option<&Path>, env: Option<String>) -> Result<Option<String>, SlackError> {
    let url = match file {
        Some(path) => Some(read_webhook_file(path)?),
        None => env.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
    };
    if let Some(url) = &url {
        transport::parse_webhook(url)?;
    }
    Ok(url)
}

fn read_webhook_file(path: &Path) -> Result<String, SlackError> {
    let text = std::fs::read_to_string(path).map_err(|source| SlackError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let url = text.trim();
    if url.is_empty() {
        return Err(SlackError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(url.to_string())
}

/// Counters shared by the notifier and its sender task.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    rate_limited: AtomicU64,
    failed_permanent: AtomicU64,
    failed_transient: AtomicU64,
    dropped: AtomicU64,
    digests: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SlackOutcomes {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SlackOutcomes {
            sent: get(&self.sent),
            rate_limited: get(&self.rate_limited),
            failed_permanent: get(&self.failed_permanent),
            failed_transient: get(&self.failed_transient),
            dropped: get(&self.dropped),
            digests: get(&self.digests),
        }
    }
}

/// Posts notifications to a Slack incoming webhook from a background task.
pub struct SlackNotifier {
    queue: mpsc::Sender<Notification>,
    counters: Arc<Counters>,
    settings: SlackSettings,
    // Set while notifications are being dropped, so a full queue logs once, not per drop.
    dropping: AtomicBool,
}

impl fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("webhook", &"<redacted>")
            .field("settings", &self.settings)
            .field("outcomes", &self.outcomes())
            .finish()
    }
}

impl SlackNotifier {
    /// Spawns the sender task (call it inside a tokio runtime). `webhook_url` is a secret:
    /// it is never logged, never in `Debug` output or errors. The task ends once every
    /// `Arc` of the notifier is dropped and the queue is sent; await the handle to flush.
    pub fn start(webhook_url: String, settings: SlackSettings) -> (Arc<SlackNotifier>, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let task = sender::run(webhook_url, settings.clone(), counters.clone(), receiver);
        let handle = tokio::spawn(task);
        let notifier = SlackNotifier {
            queue,
            counters,
            settings,
            dropping: AtomicBool::new(false),
        };
        (Arc::new(notifier), handle)
    }

    /// The counters so far.
    pub fn outcomes(&self) -> SlackOutcomes {
        self.counters.snapshot()
    }
}

impl Notifier for SlackNotifier {
    fn notify(&self, n: Notification) {
        let why = match self.queue.try_send(n) {
            Ok(()) => {
                self.dropping.store(false, Ordering::Relaxed);
                return;
            }
            Err(TrySendError::Full(_)) => "the queue is full",
            Err(TrySendError::Closed(_)) => "the sender has stopped",
        };
        Counters::add(&self.counters.dropped, 1);
        if !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.settings.queue_capacity,
                "dropping Slack notifications: {why}"
            );
        }
    }
}
