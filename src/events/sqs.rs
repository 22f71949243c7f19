//! The SQS queue EventBridge delivers CloudTrail management events to: long polling, ten
//! messages a receive, one batch delete after handling. Delivery is at least once, and
//! handling is idempotent (a wake only schedules a reconcile). A message that cannot be
//! read goes to the dead-letter queue (or is dropped, counted, without one) so that it
//! never blocks the queue.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;

use super::{
    cloudtrail::{Parsed, parse},
    route::Router,
};
use crate::{
    aws::{AwsClients, AwsError, Scope},
    report::metrics::Metrics,
};

/// Where the events come from.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    pub url: String,
    /// Where unreadable messages go.
    pub dead_letter_url: Option<String>,
    /// Seconds a receive waits for a message (long polling, at most 20).
    pub wait_seconds: i32,
    /// With shards: the replicas, each of which must see every message (each wakes only
    /// its own shards' objects). A message is sent again, naming who saw it, until every
    /// live holder has.
    pub fanout: Option<Arc<super::peers::Peers>>,
}

/// The message attribute naming the replicas that handled a message already.
const SEEN: &str = "backup-warden-seen";

/// Who still has to see a message: the live holders not in `seen`.
pub fn unseen(holders: &[String], seen: &[String]) -> Vec<String> {
    holders.iter().filter(|h| !seen.contains(h)).cloned().collect()
}

impl QueueSettings {
    /// The queue's region, from its URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`);
    /// an emulator's URL names none, and then `fallback`.
    pub fn region(&self, fallback: &str) -> String {
        self.url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.strip_prefix("sqs."))
            .and_then(|rest| rest.split('.').next())
            .filter(|r| r.contains('-'))
            .map_or_else(|| fallback.to_string(), str::to_string)
    }
}

/// A request the SDK's builder refused (a missing required field: a bug, not AWS).
fn unbuildable(operation: &'static str, code: &str, e: impl std::fmt::Display) -> AwsError {
    AwsError {
        operation,
        kind: crate::aws::AwsErrorKind::Refused,
        code: code.into(),
        message: e.to_string(),
    }
}

/// What one receive's messages came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Handled {
    pub matched: u64,
    pub ignored: u64,
    pub failed: u64,
}

/// Polls until `shutdown` resolves.
pub async fn consume(
    clients: Arc<AwsClients>,
    settings: QueueSettings,
    region: String,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let scope = Scope::new(None, &region);
    metrics.event_queue_last_poll.set(now_seconds());
    let poll = async {
        let mut failures = 0u32;
        loop {
            match poll_once(&clients, &scope, &settings, &router, &metrics).await {
                Ok(_) => {
                    failures = 0;
                    metrics.event_queue_last_poll.set(now_seconds());
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_secs(1 << failures.min(5));
                    tracing::warn!(queue = %settings.url, error = %e, retry_in = ?delay, "cannot receive change events");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    };
    tokio::select! {
        () = poll => {}
        () = shutdown => {}
    }
}

fn now_seconds() -> f64 {
    Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// One receive: each message routed, dead-lettered or ignored, then the batch deleted.
pub async fn poll_once(
    clients: &AwsClients,
    scope: &Scope,
    settings: &QueueSettings,
    router: &Router,
    metrics: &Metrics,
) -> Result<Handled, AwsError> {
    let c = clients.for_scope(scope).await;
    let received = c
        .sqs
        .receive_message()
        .queue_url(&settings.url)
        .max_number_of_messages(10)
        .wait_time_seconds(settings.wait_seconds)
        .message_attribute_names(SEEN)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ReceiveMessage", &e))?;
    let mut handled = Handled::default();
    let mut done = Vec::new();
    for (i, message) in received.messages().iter().enumerate() {
        let Some(receipt) = message.receipt_handle() else {
            continue;
        };
        let mut seen: Vec<String> = message
            .message_attributes()
            .and_then(|a| a.get(SEEN))
            .and_then(|v| v.string_value())
            .map(|s| {
                s.split(',')
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let handled_here = settings
            .fanout
            .as_ref()
            .is_some_and(|f| seen.iter().any(|h| h == f.me()));
        let outcome = match parse(message.body().unwrap_or_default()) {
            // Sharded, and handled here already: only passed on.
            Ok(Parsed::Changed(..)) if handled_here => "forwarded",
            Ok(Parsed::Changed(targets, at)) => {
                if router.route(&targets, "aws", at) > 0 {
                    handled.matched += 1;
                    "matched"
                } else {
                    handled.ignored += 1;
                    "ignored"
                }
            }
            Ok(Parsed::Ignored(_)) => {
                handled.ignored += 1;
                "ignored"
            }
            Err(why) => {
                handled.failed += 1;
                tracing::warn!(queue = %settings.url, message = message.message_id().unwrap_or_default(), %why, "unreadable change event");
                if let Some(dead) = &settings.dead_letter_url {
                    let sent = c
                        .sqs
                        .send_message()
                        .queue_url(dead)
                        .message_body(message.body().unwrap_or_default())
                        .message_attributes(
                            "backup-warden-error",
                            aws_sdk_sqs::types::MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value(why.chars().take(256).collect::<String>())
                                .build()
                                .map_err(|e| unbuildable("SendMessage", "InvalidAttribute", e))?,
                        )
                        .send()
                        .await;
                    if let Err(e) = sent {
                        // Kept in the queue: it comes back after its visibility timeout,
                        // and the queue's own redrive policy moves it on in the end.
                        tracing::warn!(error = %AwsError::from_sdk("SendMessage", &e), "cannot dead-letter a change event");
                        metrics.events.with_label_values(&["aws", "failed"]).inc();
                        continue;
                    }
                }
                "failed"
            }
        };
        // Sharded: send it again for the replicas that have not seen it; kept until sent.
        if let Some(fanout) = settings.fanout.as_ref().filter(|_| outcome != "failed") {
            if !handled_here {
                seen.push(fanout.me().to_string());
            }
            if !unseen(&fanout.holders().await, &seen).is_empty() {
                let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(seen.join(","))
                    .build()
                    .map_err(|e| unbuildable("SendMessage", "InvalidAttribute", e))?;
                let sent = c
                    .sqs
                    .send_message()
                    .queue_url(&settings.url)
                    .message_body(message.body().unwrap_or_default())
                    .message_attributes(SEEN, attribute)
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %AwsError::from_sdk("SendMessage", &e), "cannot pass a change event to the other replicas");
                    continue;
                }
            }
        }
        metrics.events.with_label_values(&["aws", outcome]).inc();
        done.push(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .map_err(|e| unbuildable("DeleteMessageBatch", "InvalidEntry", e))?,
        );
    }
    if !done.is_empty() {
        let out = c
            .sqs
            .delete_message_batch()
            .queue_url(&settings.url)
            .set_entries(Some(done))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteMessageBatch", &e))?;
        // Not deleted: handled again later, which changes nothing (at least once).
        for failed in out.failed() {
            tracing::warn!(
                id = failed.id(),
                code = failed.code(),
                "a handled change event was not deleted"
            );
        }
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_round_until_every_live_holder_saw_it() {
        let holders = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(unseen(&holders, &["a".into()]), ["b", "c"]);
        assert!(unseen(&holders, &["c".into(), "a".into(), "b".into()]).is_empty());
        // A holder gone (its lease expired) is not waited for.
        assert!(unseen(&holders[..2], &["a".into(), "b".into(), "c".into()]).is_empty());
    }

    #[test]
    fn the_region_comes_from_the_queue_url() {
        let settings = |url: &str| QueueSettings {
            url: url.into(),
            dead_letter_url: None,
            wait_seconds: 20,
            fanout: None,
        };
        assert_eq!(
            settings("https://sqs.eu-west-1.amazonaws.com/111122223333/backup-warden-events")
                .region("us-east-1"),
            "eu-west-1"
        );
        assert_eq!(
            settings("http://127.0.0.1:15000/123456789012/events").region("us-east-1"),
            "us-east-1"
        );
    }
}
