//! backup-warden: a Kubernetes controller that makes a company's backup policy true and
//! keeps it true, for RDS databases (`BackedUpDatabase`) and GitHub repositories
//! (`BackedUpRepository`).
#![forbid(unsafe_code)]
// No panics on the run path; tests and test support may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod auditor;
pub mod aws;
pub mod check;
pub mod cli;
pub mod controller;
pub mod drill;
pub mod estate;
pub mod events;
pub mod evidence;
pub mod external;
pub mod github;
pub mod observe;
pub mod policy;
pub mod report;
pub mod telemetry;
pub mod tenancy;
pub mod timeouts;
pub mod word;
pub mod workflow;
