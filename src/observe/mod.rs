//! Reading what the policy judges, for the controller and for `backup-warden check` alike.

mod database;
mod repository;

pub use database::database;
pub use repository::repository;
