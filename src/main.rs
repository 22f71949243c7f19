#![forbid(unsafe_code)]

use std::process::ExitCode;

use backup_warden::cli;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    args.run().await
}
