//! Report: conditions and observed facts in status (written only when they change), and a
//! Kubernetes Event on each transition.

pub mod events;
pub mod metrics;
pub mod notify;
pub mod recorder;
pub mod slack;
pub mod status;
