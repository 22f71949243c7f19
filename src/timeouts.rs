//! Bounded waits: every call to AWS, GitHub and Slack gives up after these, so a frozen
//! endpoint shows as an error (and `Unknown` checks) instead of a reconcile that hangs.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// One attempt of a call: sending the request and reading the whole response.
    pub attempt: Duration,
    /// A whole call, with the SDK's own retries.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(20),
            operation: Duration::from_secs(60),
        }
    }
}
