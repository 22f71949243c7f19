#![forbid(unsafe_code)]

use std::process::ExitCode;

use backup_warden::cli;
use clap::Parser;

// mimalloc rather than glibc's malloc: the controller holds many small strings per object,
// and glibc kept about 60% more RSS than the heap in use at 2,000 databases (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    args.run().await
}
