//! Every integration test, linked as one test binary: one build, one link, one shared
//! environment (`backup_warden_testing::env()`), started once for all of them.
//!
//! Tests run two at a time. The ones that change what others see (the CRDs) or load the
//! machine for minutes take `backup_warden_testing::exclusive()` or the CRD lock.

mod support;

mod api_server;
mod audit_trail;
mod aws_model;
mod change_events;
mod check_command;
mod coverage;
mod crds;
mod database_controller;
mod database_faults;
mod database_keys;
mod database_reads;
mod database_sweep;
mod emulator_rds;
mod evidence;
mod fault_campaign;
mod github_client;
mod github_fake;
mod gitops_health;
mod leader_election;
mod manifest_corpus;
mod notifications;
mod operator_controls;
mod poison_objects;
mod product_binary;
mod repository_controller;
mod repository_sweep;
mod restore_drills;
mod run_command;
mod sharding;
mod slack;
mod tenancy;
mod workflow_lint;
