//! The command line: `run`, `crd` and `version`. Every flag has an environment fallback
//! so the same binary is configured by flags locally and by env in a Deployment.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::{api, controller, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "backup-warden",
    version,
    about = "Makes a backup policy true and keeps it true"
)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: telemetry::LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller against the cluster from kubeconfig or the in-cluster config.
    Run(RunArgs),
    /// Print both CRDs as YAML (or write one file per CRD with --output-dir).
    Crd(CrdArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "BACKUP_WARDEN_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen_address: SocketAddr,
}

#[derive(Args, Debug)]
pub struct CrdArgs {
    /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
    #[arg(long, env = "BACKUP_WARDEN_CRD_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Version => {
                println!("backup-warden {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
            Command::Crd(args) => match print_crds(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Run(args) => {
                telemetry::init(&self.telemetry);
                match controller::run(args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "backup-warden stopped");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

fn print_crds(args: &CrdArgs) -> Result<(), Box<dyn std::error::Error>> {
    let crds = api::crds();
    match &args.output_dir {
        None => {
            std::io::stdout().write_all(api::crds_yaml(&crds)?.as_bytes())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for crd in &crds {
                let name = crd.metadata.name.as_deref().unwrap_or("crd");
                std::fs::write(
                    dir.join(format!("{name}.yaml")),
                    api::crds_yaml(std::slice::from_ref(crd))?,
                )?;
            }
        }
    }
    Ok(())
}
