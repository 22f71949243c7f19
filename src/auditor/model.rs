//! What the auditor's report says, computed from the evidence records: the types here are
//! what `html` renders and what `--json` writes.

use serde::Serialize;

use crate::estate::{Compliance, Estate};

/// The whole report for one period (dates are UTC days, `YYYY-MM-DD`, both ends included).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: String,
    pub to: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Where the evidence was read: s3://bucket/prefix.
    pub source: String,
    /// Whether the evidence can be trusted not to have been changed, and why.
    pub tamper_evidence: TamperEvidence,
    /// The evidence records read (after removing the copies an at-least-once write made).
    pub records: usize,
    /// The controller versions that wrote them.
    pub controller_versions: Vec<String>,
    /// Stretches where the controller says it dropped records (its buffer was full).
    pub gaps: Vec<Gap>,
    /// Whether today's live state was read from the cluster, or why not.
    pub live_state: String,
    /// Every declared resource, its compliance over the period, drift and actions.
    pub resources: Vec<Resource>,
    /// Per day, across all resources: the chart's data.
    pub days: Vec<DayTotals>,
    /// What BackupCoverage objects counted, and what is exempt and why.
    pub coverage: Vec<CoverageSummary>,
    /// The data-flow map, from the latest attestation of each resource.
    pub estate: Estate,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TamperEvidence {
    /// True only when the bucket's Object Lock default retention is in compliance mode and
    /// every evidence object read carries a compliance-mode retention.
    pub tamper_evident: bool,
    /// One sentence an auditor reads, such as "Object Lock in compliance mode (400 days)...".
    pub statement: String,
    /// The bucket's Object Lock default retention, as S3 reports it ("COMPLIANCE 400 days").
    pub bucket_object_lock: Option<String>,
    /// Evidence objects read, and how many of them carry a compliance-mode retention.
    pub objects: usize,
    pub objects_locked: usize,
}

/// Records the controller could not keep (its buffer was full during an outage).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub from: String,
    pub to: String,
    pub dropped: u64,
    pub replica: String,
}

/// What was found about one day of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DayState {
    /// Every check passed all day, as far as the evidence shows.
    Compliant,
    /// At least one check was in drift at some time of the day.
    Drift,
    /// No record covers the day (no attestation, and no earlier state carried into it).
    NoEvidence,
    /// The object did not exist yet, or no longer.
    Absent,
    /// Suspended: backup-warden neither read nor changed anything.
    Suspended,
}

impl DayState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::Drift => "drift",
            Self::NoEvidence => "no evidence",
            Self::Absent => "absent",
            Self::Suspended => "suspended",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// BackedUpDatabase, BackedUpRepository or RetainedAuditTrail.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// What it protects, in words: "RDS instance orders-db in us-east-1 (account 1234...)".
    pub subject: String,
    /// Enforce or Audit, as last attested.
    pub mode: String,
    /// One entry per day of the period, in order.
    pub days: Vec<DayState>,
    /// Days compliant out of the days it existed (not `Absent`), as a percentage 0-100;
    /// None when it existed on no day of the period.
    pub compliance_percent: Option<f64>,
    /// Its state at the end of the period (or now, for a period ending today).
    pub current: Compliance,
    /// Each drift of one check, from when it was found to when it was resolved.
    pub episodes: Vec<Episode>,
    /// What the controller did, in order.
    pub actions: Vec<Action>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Episode {
    /// The check, such as RetentionCompliant.
    pub check: String,
    /// When the drift was found (RFC 3339) and what was seen.
    pub found_at: String,
    pub reason: String,
    pub found: String,
    /// When it was resolved, and what was seen then; None while open.
    pub resolved_at: Option<String>,
    pub resolved: Option<String>,
    /// Seconds from found to resolved.
    pub heal_seconds: Option<f64>,
    /// True when the resolution is known only from a later attestation (the transition
    /// itself was not recorded): the heal time is then an upper bound.
    pub resolved_by_attestation: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub at: String,
    /// The action, such as RetentionRaised.
    pub action: String,
    pub description: String,
    pub failed: bool,
    /// The AWS (or GitHub) request ids of the calls it made: "Operation requestid".
    pub request_ids: Vec<String>,
}

/// All resources on one day: how many were compliant, in drift, without evidence.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayTotals {
    pub date: String,
    pub compliant: usize,
    pub drift: usize,
    pub no_evidence: usize,
    pub suspended: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageSummary {
    pub name: String,
    /// The namespace its adopted objects go to.
    pub namespace: String,
    /// "RDS instances 12 in scope: 10 declared, 1 exempt, 1 undeclared", and the same for
    /// repositories, as last attested.
    pub counts: Vec<String>,
    /// Each exemption and its reason.
    pub exemptions: Vec<Exemption>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exemption {
    pub what: String,
    pub reason: String,
}
