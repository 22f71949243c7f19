//! backup-warden: a Kubernetes controller that makes a company's backup policy true and
//! keeps it true, for RDS databases (`BackedUpDatabase`) and GitHub repositories
//! (`BackedUpRepository`).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod telemetry;

#[cfg(feature = "test-util")]
pub mod testing;
