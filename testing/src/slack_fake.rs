//! A fake Slack incoming webhook on `127.0.0.1`, served by axum, for integration tests.
//!
//! It answers like Slack: `200 ok` (plain text) for a message it accepts, `400
//! invalid_blocks` for more than 50 blocks or a section text over 3,000 characters (a
//! header over 150), `400 invalid_payload` for a body that is not JSON, `400 no_text` for
//! a message with neither text nor blocks, `404 no_service` for any other path. Tests can
//! script answers (`respond_next`) and delays (`delay_next`), and read what arrived when.
//!
//! ```no_run
//! # async fn example() {
//! use backup_warden::testing::slack_fake::SlackFake;
//! let slack = SlackFake::start().await;
//! slack.respond_next(429, "rate_limited", Some(2), 1);
//! // point a SlackNotifier at slack.url(), then read slack.messages()
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State as AxumState,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

const PATH: &str = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX";
const MAX_BLOCKS: usize = 50;
const MAX_SECTION_CHARS: usize = 3000;
const MAX_HEADER_CHARS: usize = 150;

/// A scripted answer.
#[derive(Debug, Clone)]
struct Scripted {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<Value>,
    received_at: Vec<Instant>,
    scripted: VecDeque<Scripted>,
    delays: VecDeque<Duration>,
}

/// The fake webhook. Cloning shares the same server; it stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct SlackFake {
    state: Arc<Mutex<State>>,
    url: String,
    _server: Arc<Server>,
}

struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for SlackFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackFake").finish_non_exhaustive()
    }
}

impl SlackFake {
    /// Binds `127.0.0.1:0` and serves until the last clone is dropped.
    pub async fn start() -> SlackFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack webhook");
        let url = format!("http://{}{PATH}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State::default()));
        let app = Router::new().fallback(serve).with_state(state.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlackFake {
            state,
            url,
            _server: Arc::new(Server(handle)),
        }
    }

    /// The webhook URL, `http://127.0.0.1:<port>/services/T000/B000/XXXX…`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The payloads accepted so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.lock().messages.clone()
    }

    /// Every request so far, refused ones included.
    pub fn requests(&self) -> usize {
        self.lock().received_at.len()
    }

    /// When each request arrived, refused ones included.
    pub fn received_at(&self) -> Vec<Instant> {
        self.lock().received_at.clone()
    }

    /// Answers the next `times` requests with `status` and the plain-text `body` (and a
    /// `Retry-After` header when given), whatever they carry.
    pub fn respond_next(&self, status: u16, body: &str, retry_after: Option<u64>, times: usize) {
        let scripted = Scripted {
            status,
            body: body.to_string(),
            retry_after,
        };
        self.lock().scripted.extend(std::iter::repeat_n(scripted, times));
    }

    /// Holds the answer to the next request for `delay`.
    pub fn delay_next(&self, delay: Duration) {
        self.lock().delays.push_back(delay);
    }

    /// Waits until at least `n` messages were accepted; false after `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.messages.len() >= n).await
    }

    /// Waits until at least `n` requests arrived; false after `timeout`.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.received_at.len() >= n).await
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lock()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (delay, scripted) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.received_at.push(Instant::now());
        (s.delays.pop_front(), s.scripted.pop_front())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(scripted) = scripted {
        return answer(scripted.status, &scripted.body, scripted.retry_after);
    }
    if method != Method::POST || uri.path() != PATH {
        return answer(404, "no_service", None);
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(_) => return answer(400, "invalid_payload", None),
    };
    if let Err(refusal) = validate(&payload) {
        return answer(400, refusal, None);
    }
    state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .messages
        .push(payload);
    answer(200, "ok", None)
}

/// Slack's checks that matter here: something to show, and Block Kit's size limits.
fn validate(payload: &Value) -> Result<(), &'static str> {
    let blocks = payload.get("blocks").and_then(Value::as_array);
    let has_text = payload
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !has_text && blocks.is_none_or(|b| b.is_empty()) {
        return Err("no_text");
    }
    let Some(blocks) = blocks else { return Ok(()) };
    if blocks.len() > MAX_BLOCKS {
        return Err("invalid_blocks");
    }
    for block in blocks {
        let text = block["text"]["text"].as_str().unwrap_or("");
        let max = match block["type"].as_str() {
            Some("section") => MAX_SECTION_CHARS,
            Some("header") => MAX_HEADER_CHARS,
            _ => continue,
        };
        if text.chars().count() > max {
            return Err("invalid_blocks");
        }
    }
    Ok(())
}

fn answer(status: u16, body: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status code");
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
