//! One POST to the webhook and what Slack's answer means for the sender.
//!
//! Everything said about a failure goes through `redact`, so the webhook's secret path
//! cannot leak through an error chain.

use std::{sync::Arc, time::Duration};

use axum::body::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

use super::SlackError;

// Slack's error bodies are a few words; anything longer is cut.
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_LOGGED_BODY_CHARS: usize = 200;
// A Retry-After longer than this is treated as this, so a bogus header cannot park the
// sender for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What an attempt to post one message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Accepted,
    /// 429: wait this long, then send the same message again.
    RateLimited(Duration),
    /// 5xx, a timeout or a network error: worth retrying after a while.
    Transient(String),
    /// Slack refused the message; sending it again would fail again. `gone` means the
    /// webhook itself is dead (404 `no_service`, 410), so nothing more should be sent.
    Permanent {
        status: u16,
        body: String,
        gone: bool,
    },
}

/// Checks that a webhook is an `https` URL with a host (plain `http` only on loopback).
pub(super) fn parse_webhook(url: &str) -> Result<Uri, SlackError> {
    let invalid = |reason| SlackError::InvalidWebhook { reason };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri.host().ok_or(invalid("the URL has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => Ok(uri),
        Some("http") => Err(invalid("plain http is allowed only for 127.0.0.1 and localhost")),
        _ => Err(invalid("the URL must start with https://")),
    }
}

/// The HTTP client for one webhook.
pub(super) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    // The URL as given and its path: what `redact` removes.
    secrets: [String; 2],
    // Slack answers in well under a second; a hung connection must not hold the queue long.
    attempt_timeout: Duration,
}

impl Transport {
    pub(super) fn new(webhook: &str, timeouts: crate::timeouts::Timeouts) -> Result<Transport, SlackError> {
        let uri = parse_webhook(webhook)?;
        let connector = connector(uri.scheme_str() == Some("https"), timeouts.connect)?;
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let path = uri.path_and_query().map(|p| p.as_str().to_string());
        Ok(Transport {
            client,
            secrets: [webhook.to_string(), path.unwrap_or_default()],
            uri,
            attempt_timeout: timeouts.attempt,
        })
    }

    /// Posts one payload and classifies the answer.
    pub(super) async fn post(&self, payload: &Value) -> Answer {
        let body = Bytes::from(payload.to_string());
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(_) => return Answer::Transient("could not build the request".into()),
        };
        match tokio::time::timeout(self.attempt_timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Answer::Transient(format!(
                "the Slack webhook did not answer within {:?}",
                self.attempt_timeout
            )),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Answer {
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(error) => return Answer::Transient(self.describe(&error)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match Limited::new(response.into_body(), MAX_BODY_BYTES).collect().await {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
            // The status is what matters; a cut-off body only loses detail for the log.
            Err(_) => String::new(),
        };
        classify(status, retry_after.as_deref(), &self.redact(&body))
    }

    /// An error and its causes, with the webhook taken out.
    fn describe(&self, error: &dyn std::error::Error) -> String {
        let mut text = format!("request to the Slack webhook failed: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.redact(&text)
    }

    fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| s.len() > 1)
            .fold(text.to_string(), |t, secret| {
                t.replace(secret.as_str(), "<redacted>")
            })
    }
}

fn connector(https: bool, connect_timeout: Duration) -> Result<HttpsConnector<HttpConnector>, SlackError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = if https {
        HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|source| SlackError::RootCertificates { source })?
            .https_only()
    } else {
        // A loopback test webhook: no TLS, so no root certificates to load.
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SlackError::RootCertificates {
                source: std::io::Error::other(e),
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(builder.enable_http1().wrap_connector(http))
}

/// What a status (with its `Retry-After` and body) means for the sender.
pub(super) fn classify(status: StatusCode, retry_after: Option<&str>, body: &str) -> Answer {
    let body = body.trim();
    if status.is_success() {
        return Answer::Accepted;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Answer::RateLimited(retry_after_delay(retry_after));
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Answer::Transient(format!("the Slack webhook answered {status}"));
    }
    let gone = status == StatusCode::GONE || (status == StatusCode::NOT_FOUND && body == "no_service");
    Answer::Permanent {
        status: status.as_u16(),
        body: body.chars().take(MAX_LOGGED_BODY_CHARS).collect(),
        gone,
    }
}

/// `Retry-After` in seconds; 1 s when absent or not a number of seconds.
fn retry_after_delay(header: Option<&str>) -> Duration {
    header
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_answers_are_classified() {
        let s = |code| StatusCode::from_u16(code).expect("status");
        assert_eq!(classify(s(200), None, "ok"), Answer::Accepted);
        assert_eq!(
            classify(s(429), Some("2"), ""),
            Answer::RateLimited(Duration::from_secs(2))
        );
        assert_eq!(
            classify(s(429), None, ""),
            Answer::RateLimited(Duration::from_secs(1))
        );
        assert_eq!(
            classify(s(429), Some("Wed, 21 Oct 2015 07:28:00 GMT"), ""),
            Answer::RateLimited(Duration::from_secs(1))
        );
        assert_eq!(
            classify(s(429), Some("86400"), ""),
            Answer::RateLimited(MAX_RETRY_AFTER)
        );
        assert!(matches!(classify(s(503), None, ""), Answer::Transient(_)));
        let permanent = |code, body: &str| match classify(s(code), None, body) {
            Answer::Permanent { status, body, gone } => (status, body, gone),
            other => panic!("{code} {body}: {other:?}"),
        };
        assert_eq!(
            permanent(400, "invalid_payload\n"),
            (400, "invalid_payload".into(), false)
        );
        assert_eq!(
            permanent(403, "action_prohibited"),
            (403, "action_prohibited".into(), false)
        );
        assert_eq!(
            permanent(404, "channel_not_found"),
            (404, "channel_not_found".into(), false)
        );
        assert_eq!(permanent(404, "no_service"), (404, "no_service".into(), true));
        assert_eq!(
            permanent(410, "channel_is_archived"),
            (410, "channel_is_archived".into(), true)
        );
    }

    #[test]
    fn only_https_webhooks_pass_except_on_loopback() {
        let reason = |url: &str| match parse_webhook(url) {
            Ok(_) => None,
            Err(SlackError::InvalidWebhook { reason }) => Some(reason),
            Err(other) => panic!("{other}"),
        };
        assert_eq!(reason("https://hooks.slack.com/services/T0/B0/abc"), None);
        assert_eq!(reason("http://127.0.0.1:8080/services/T0/B0/abc"), None);
        assert_eq!(reason("http://localhost/services/T0/B0/abc"), None);
        assert!(reason("http://hooks.slack.com/services/T0/B0/abc").is_some());
        assert!(reason("ftp://hooks.slack.com/x").is_some());
        assert!(reason("hooks.slack.com/services/T0/B0/abc").is_some());
        assert!(reason("https://hooks.slack.com/services/T0/B0/a b").is_some());
        assert!(reason("").is_some());
    }

    #[tokio::test]
    async fn a_network_error_names_no_secret() {
        // Nothing listens on port 9 of loopback (discard), so the connection is refused.
        let webhook = "http://127.0.0.1:9/services/T000/B000/s3cr3t";
        let transport = Transport::new(webhook, crate::timeouts::Timeouts::default()).expect("transport");
        match transport.post(&serde_json::json!({"text": "hi"})).await {
            Answer::Transient(why) => {
                assert!(why.contains("Slack webhook"), "{why}");
                assert!(!why.contains("s3cr3t"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            transport.redact(&format!("GET {webhook} and /services/T000/B000/s3cr3t")),
            "GET <redacted> and <redacted>"
        );
    }
}
