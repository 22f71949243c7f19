//! Logging: structured JSON by default (for log pipelines), plain text for people.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "BACKUP_WARDEN_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. info,backup_warden=debug).
    #[arg(long, global = true, env = "BACKUP_WARDEN_LOG", default_value = "info")]
    pub log: String,
}

/// Installs the global subscriber; a second call (as in tests) is a no-op.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match args.log_format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
}
