//! The sender task: takes notifications off the queue, paces them, folds floods into
//! digests, and delivers each message with retries.

use std::{collections::HashSet, collections::VecDeque, sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};

use super::{
    Counters, Notification, SlackSettings,
    pacing::{FloodWindow, TokenBucket},
    render,
    transport::{Answer, Transport},
};

// 5xx and network errors: this many attempts in all, waiting 0.5 s, 1 s, 2 s … between
// them, never more than the cap.
const MAX_ATTEMPTS: u32 = 4;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
// Slack may keep answering 429 during an incident; after this many the message is given up.
const MAX_RATE_LIMITED: u32 = 10;
// Distinct refusal bodies remembered for "log once"; Slack has only a handful.
const MAX_LOGGED_REFUSALS: usize = 32;

/// Runs until every notifier handle is dropped and the queue is empty.
pub(super) async fn run(
    webhook: String,
    settings: SlackSettings,
    counters: Arc<Counters>,
    mut queue: mpsc::Receiver<Notification>,
) {
    let transport = match Transport::new(&webhook, settings.timeouts) {
        Ok(transport) => Some(transport),
        Err(error) => {
            tracing::warn!(%error, "Slack notifications are disabled");
            None
        }
    };
    drop(webhook);
    let mut sender = Sender::new(transport, &settings, counters);
    let mut pending = VecDeque::new();
    let limit = settings.queue_capacity.max(1);
    loop {
        if pending.is_empty() {
            match queue.recv().await {
                Some(n) => pending.push_back(n),
                None => return,
            }
        }
        sender.step(&mut queue, &mut pending, limit).await;
    }
}

struct Sender {
    // `None` once the webhook is gone (or was never usable): nothing more is sent.
    transport: Option<Transport>,
    bucket: TokenBucket,
    flood: FloodWindow,
    counters: Arc<Counters>,
    refusals_logged: HashSet<(u16, String)>,
}

impl Sender {
    fn new(transport: Option<Transport>, settings: &SlackSettings, counters: Arc<Counters>) -> Self {
        Sender {
            transport,
            bucket: TokenBucket::new(settings.per_second, settings.burst, Instant::now()),
            flood: FloodWindow::new(settings.digest_threshold, settings.digest_window),
            counters,
            refusals_logged: HashSet::new(),
        }
    }

    /// Sends what is next: one message, or a digest of everything waiting during a flood.
    async fn step(
        &mut self,
        queue: &mut mpsc::Receiver<Notification>,
        pending: &mut VecDeque<Notification>,
        limit: usize,
    ) {
        if self.transport.is_none() {
            self.discard(queue, pending);
            return;
        }
        self.bucket.take().await;
        drain(queue, pending, limit);
        if self.flood.is_flood(Instant::now(), pending.len()) {
            tokio::time::sleep_until(self.flood.next_digest_at(Instant::now())).await;
            drain(queue, pending, limit);
            let batch: Vec<Notification> = pending.drain(..).collect();
            self.flood.record(Instant::now(), batch.len(), true);
            if self.deliver(&render::digest(&batch)).await {
                Counters::add(&self.counters.digests, 1);
            }
        } else if let Some(n) = pending.pop_front() {
            self.flood.record(Instant::now(), 1, false);
            self.deliver(&render::message(&n)).await;
        }
    }

    /// The webhook is gone: every notification counts as failed, none is sent.
    fn discard(&self, queue: &mut mpsc::Receiver<Notification>, pending: &mut VecDeque<Notification>) {
        drain(queue, pending, usize::MAX);
        Counters::add(&self.counters.failed_permanent, pending.len() as u64);
        pending.clear();
    }

    /// Posts one message until Slack takes it or it is given up; true when delivered.
    async fn deliver(&mut self, payload: &Value) -> bool {
        let mut failures = 0;
        let mut rate_limited = 0;
        loop {
            let Some(transport) = &self.transport else {
                Counters::add(&self.counters.failed_permanent, 1);
                return false;
            };
            match transport.post(payload).await {
                Answer::Accepted => {
                    Counters::add(&self.counters.sent, 1);
                    return true;
                }
                Answer::RateLimited(wait) => {
                    Counters::add(&self.counters.rate_limited, 1);
                    rate_limited += 1;
                    if rate_limited > MAX_RATE_LIMITED {
                        return self.give_up("Slack kept answering 429 Too Many Requests");
                    }
                    tracing::debug!(wait_seconds = wait.as_secs(), "Slack rate limit; waiting");
                    tokio::time::sleep(wait).await;
                }
                Answer::Transient(why) => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return self.give_up(&why);
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
                Answer::Permanent { status, body, gone } => {
                    Counters::add(&self.counters.failed_permanent, 1);
                    self.refused(status, body, gone);
                    return false;
                }
            }
        }
    }

    fn give_up(&self, why: &str) -> bool {
        Counters::add(&self.counters.failed_transient, 1);
        tracing::warn!(reason = %why, attempts = MAX_ATTEMPTS, "gave up sending a Slack message");
        false
    }

    /// Logs a refusal once per distinct answer; stops all sending when the webhook is gone.
    fn refused(&mut self, status: u16, body: String, gone: bool) {
        if gone {
            self.transport = None;
            tracing::error!(
                status,
                answer = %body,
                "the Slack webhook is gone; no more Slack notifications are sent"
            );
            return;
        }
        let key = (status, body);
        if self.refusals_logged.len() < MAX_LOGGED_REFUSALS && !self.refusals_logged.contains(&key) {
            tracing::warn!(status, answer = %key.1, "the Slack webhook refused a message");
            self.refusals_logged.insert(key);
        }
    }
}

/// Moves what is queued into `pending`, up to `limit` in all.
fn drain(queue: &mut mpsc::Receiver<Notification>, pending: &mut VecDeque<Notification>, limit: usize) {
    while pending.len() < limit {
        match queue.try_recv() {
            Ok(n) => pending.push_back(n),
            Err(_) => return,
        }
    }
}

/// The wait after the `failures`-th failed attempt.
fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u128> = (1..=8).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }
}
