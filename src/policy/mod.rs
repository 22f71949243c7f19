//! Evaluate and plan: pure functions from a spec and what was observed to findings (one
//! per policy check) and to the actions the mode allows. No I/O lives here.

pub mod coverage;
pub mod database;
pub mod keys;
pub mod repository;
pub mod trail;

/// How an action is told: as done (events, status, logs) or as what Enforce will do
/// (`backup-warden check`, which changes nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tense {
    Done,
    Planned,
}

impl Tense {
    /// The verb in this tense: `done` as given, or "will" and the `base` form.
    pub fn verb(self, done: &str, base: &str) -> String {
        match self {
            Self::Done => done.to_string(),
            Self::Planned => format!("will {base}"),
        }
    }
}

/// The actions to take now, in order, and why nothing (else) is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<A> {
    pub actions: Vec<A>,
    /// Set while drift waits for something to happen first (the instance to be available,
    /// backups to be enabled): why, and what it waits for.
    pub holding: Option<(Reason, String)>,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Self {
            actions: Vec::new(),
            holding: None,
        }
    }
}

use crate::api::{ConditionType, Reason};

/// The outcome of one policy check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: ConditionType,
    pub verdict: Verdict,
    pub reason: Reason,
    /// What a person needs to know, naming the observed and the desired values.
    pub message: String,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The policy holds.
    Pass,
    /// Drift that enforcing fixes (or has already started to fix).
    Drift,
    /// A fix is under way; look again soon.
    Pending,
    /// It cannot comply without a human: missing resource, unusable key, unsupported.
    Blocked,
    /// Could not be evaluated (an earlier fact is missing).
    Unknown,
}

impl Finding {
    pub fn new(
        check: impl Into<ConditionType>,
        verdict: Verdict,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            verdict,
            reason,
            message: message.into(),
        }
    }

    pub fn pass(check: impl Into<ConditionType>, message: impl Into<String>) -> Self {
        Self::new(check, Verdict::Pass, Reason::Compliant, message)
    }

    pub fn is_pass(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Days as people read them: "1 day", "7 days".
pub(crate) fn days(n: i32) -> String {
    if n == 1 {
        "1 day".to_string()
    } else {
        format!("{n} days")
    }
}

/// A point in time for a status message, to the second: a message must not change while
/// the fact does not (no relative ages, which would rewrite every status every sweep).
pub fn at(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
