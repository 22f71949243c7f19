//! A failed call to AWS or GitHub, and what it means for the object that made it.

use std::time::Duration;

use crate::{
    aws::{AwsError, AwsErrorKind},
    github::{GitHubError, GitHubErrorKind},
};

/// A failed call to AWS or GitHub.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
}

/// What a failed call means for the object.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Throttling, a server error, the network: back off and retry.
    Transient,
    /// A human must grant a permission; the message says which.
    AccessDenied(String),
    /// The region's endpoint does not resolve.
    Unreachable,
    /// The account's quota is reached: a human must raise it.
    QuotaExceeded,
    /// Someone changed the thing meanwhile: look again soon.
    Conflict,
    /// Refused for another reason (state, parameters).
    Refused,
}

impl ServiceError {
    pub fn failure(&self) -> Failure {
        match self {
            Self::Aws(e) => match e.kind {
                AwsErrorKind::Transient => Failure::Transient,
                AwsErrorKind::AccessDenied => Failure::AccessDenied(e.denied_message()),
                AwsErrorKind::Unreachable => Failure::Unreachable,
                AwsErrorKind::QuotaExceeded => Failure::QuotaExceeded,
                AwsErrorKind::NotFound | AwsErrorKind::Refused => Failure::Refused,
            },
            Self::GitHub(e) => match e.kind {
                GitHubErrorKind::Transient => Failure::Transient,
                GitHubErrorKind::AccessDenied => Failure::AccessDenied(format!(
                    "GitHub refused {} ({}: {}): grant the token or GitHub App contents, pull requests, \
                     actions and workflows (write) on the repository",
                    e.operation, e.status, e.message
                )),
                GitHubErrorKind::Conflict => Failure::Conflict,
                GitHubErrorKind::NotFound | GitHubErrorKind::Refused => Failure::Refused,
            },
        }
    }

    /// What the service said.
    pub fn message(&self) -> &str {
        match self {
            Self::Aws(e) => &e.message,
            Self::GitHub(e) => &e.message,
        }
    }

    pub fn service(&self) -> &'static str {
        match self {
            Self::Aws(_) => "AWS",
            Self::GitHub(_) => "GitHub",
        }
    }

    /// A rate limit says when to come back.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::GitHub(e) => e.retry_after,
            Self::Aws(_) => None,
        }
    }

    pub fn refused_message(&self) -> String {
        match self {
            Self::Aws(e) => format!("AWS refused {}: {}: {}", e.operation, e.code, e.message),
            Self::GitHub(e) => e.to_string(),
        }
    }
}
