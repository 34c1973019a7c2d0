//! `serin-controller`: runs Serin's rollout controller and its tools.

use std::path::PathBuf;
use std::process::ExitCode;

mod kubernetes_cmd;
mod standalone_cmd;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serin_controller::engine::MetricValue;
use serin_controller::simulate::{Behaviour, World, simulate_rollout};
use serin_crds::CanaryPhase;

#[derive(Parser)]
#[command(name = "serin-controller", version, about = "Serin: progressive delivery with its own mesh runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print, tick by tick, what a Canary will do when a new revision arrives, from the engine alone.
    ///
    /// The target starts on revision v1; once initialized, v2 is deployed and the run of v2 is
    /// simulated. The builtin metrics follow --error-rate and --latency-ms; other metrics pass unless
    /// set with --metric. Exits 0 when v2 is promoted, 1 when it is rolled back.
    Simulate {
        /// A YAML file holding one Canary (other documents are ignored).
        canary: PathBuf,
        /// Share of the new version's requests that fail with 5xx, 0.0 to 1.0.
        #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
        error_rate: f64,
        /// The new version's p99 latency in milliseconds.
        #[arg(long, default_value_t = 50.0)]
        latency_ms: f64,
        /// Fix a metric's value (`NAME=VALUE`), or make it return no data (`NAME=nodata`).
        #[arg(long = "metric", value_name = "NAME=VALUE", value_parser = parse_metric)]
        metrics: Vec<(String, MetricValue)>,
        /// Stop after this many ticks.
        #[arg(long, default_value_t = 500)]
        max_ticks: usize,
    },
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

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{rate} is outside 0.0..=1.0")) }
}

fn parse_metric(text: &str) -> Result<(String, MetricValue), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let value = match value {
        "nodata" => MetricValue::NoData("set by --metric".into()),
        number => MetricValue::Value(number.parse().map_err(|_| format!("{number:?} is not a number or `nodata`"))?),
    };
    Ok((name.to_string(), value))
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
        Command::Simulate { canary, error_rate, latency_ms, metrics, max_ticks } => {
            let source = canary.display().to_string();
            let text = std::fs::read_to_string(&canary).with_context(|| format!("cannot read {source}"))?;
            let canary = serin_crds::manifest::parse_canary(&source, &text)?;
            let name = canary.metadata.name.clone().unwrap_or_default();
            let spec = canary.spec;
            let known: Vec<String> = spec.analysis.metrics.iter().map(|m| m.name.clone()).collect();
            for (metric, _) in &metrics {
                anyhow::ensure!(
                    known.contains(metric),
                    "--metric {metric}: the Canary has no such metric (it has: {})",
                    known.join(", ")
                );
            }
            let mut world = World::new(&name, spec, "v1");
            world.canary = Behaviour { error_rate, latency_ms };
            world.metric_overrides = metrics.into_iter().collect();
            let timeline = simulate_rollout(world, max_ticks);
            print!("{}", timeline.render());
            Ok(match timeline.outcome {
                CanaryPhase::Succeeded => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            })
        }
    }
}
