//! `serin-controller`: runs Serin's rollout controller and its tools.

use std::process::ExitCode;

mod kubernetes_cmd;
mod standalone_cmd;

use clap::{Parser, Subcommand};
use serin_controller::simulate::SimulateArgs;

#[derive(Parser)]
#[command(name = "serin-controller", version, about = "Serin: progressive delivery with its own mesh runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Simulate(SimulateArgs),
    /// Run rollouts on this machine without a cluster: Canaries and friends from a folder of
    /// manifests, services as endpoint groups, weights set in meshproxy through its admin API.
    Standalone(standalone_cmd::StandaloneArgs),
    /// Run rollouts in Kubernetes: reconcile every Canary the API server holds.
    Kubernetes(kubernetes_cmd::KubernetesArgs),
    /// Print the status of the Canaries in a standalone state file.
    Status(standalone_cmd::StatusArgs),
    /// A real rollout on this machine: meshproxy, two versions of a sample app, traffic and the
    /// controller, with a live view and an HTML report. Exits 0 when v2 is promoted, 1 when it is
    /// rolled back.
    Demo(standalone_cmd::DemoArgs),
}

/// What every long-running mode starts with: JSON log lines on stdout (`RUST_LOG` picks the level,
/// info by default) and a two-thread runtime.
fn controller_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stdout)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Standalone(args) => standalone_cmd::run(args),
        Command::Kubernetes(args) => kubernetes_cmd::run_in_cluster(args),
        Command::Status(args) => standalone_cmd::status(args),
        Command::Demo(args) => standalone_cmd::demo(args),
        Command::Simulate(args) => {
            let timeline = args.run().map_err(anyhow::Error::msg)?;
            print!("{}", timeline.render());
            Ok(ExitCode::from(timeline.exit_code()))
        }
    }
}
