//! Reading what the policy judges, for the controller and for `backup-warden check` alike.

pub mod coverage;
mod database;
mod repository;
mod trail;

pub use database::database;
pub use repository::repository;
pub use trail::{BucketRegions, trail};

/// The age facts read once per resync may have: none when `fresh` is zero, which a
/// reconcile someone asked for passes (after a fix by hand, nothing cached may answer).
fn once_per(resync: std::time::Duration, fresh: std::time::Duration) -> std::time::Duration {
    if fresh.is_zero() { fresh } else { resync }
}
