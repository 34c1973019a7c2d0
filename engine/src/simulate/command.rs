//! The `simulate` command, as both `serin-controller simulate` and `kubectl serin simulate` take
//! it: one set of flags, one run.

use std::path::PathBuf;

use serin_crds::CanaryPhase;

use super::{Behaviour, Timeline, World, simulate_rollout};
use crate::MetricValue;

/// Print, tick by tick, what a Canary will do when a new revision arrives, from the engine alone.
///
/// The target starts on revision v1; once initialized, v2 is deployed and the run of v2 is
/// simulated. The builtin metrics follow --error-rate and --latency-ms; other metrics pass unless
/// set with --metric. Exits 0 when v2 is promoted, 1 when it is rolled back.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// A YAML file holding one Canary (other documents are ignored).
    #[arg(value_name = "FILE", required_unless_present = "filename")]
    pub canary: Option<PathBuf>,
    /// The same file, given as kubectl takes one.
    #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with = "canary")]
    pub filename: Option<PathBuf>,
    /// Share of the new version's requests that fail with 5xx, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// The new version's p99 latency in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub latency_ms: f64,
    /// Fix a metric's value (`NAME=VALUE`), or make it return no data (`NAME=nodata`).
    #[arg(long = "metric", value_name = "NAME=VALUE", value_parser = parse_metric)]
    pub metrics: Vec<(String, MetricValue)>,
    /// Stop after this many ticks.
    #[arg(long, default_value_t = 500)]
    pub max_ticks: usize,
}

impl SimulateArgs {
    /// Reads the Canary and simulates it; the error names the file and what is wrong with it.
    pub fn run(self) -> Result<Timeline, String> {
        let path = self.canary.or(self.filename).ok_or("no Canary file given")?;
        let source = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {source}: {e}"))?;
        let canary = serin_crds::manifest::parse_canary(&source, &text).map_err(|e| e.to_string())?;
        let name = canary.metadata.name.clone().unwrap_or_default();
        let known: Vec<String> = canary.spec.analysis.metrics.iter().map(|m| m.name.clone()).collect();
        if let Some((metric, _)) = self.metrics.iter().find(|(metric, _)| !known.contains(metric)) {
            return Err(format!("--metric {metric}: the Canary has no such metric (it has: {})", known.join(", ")));
        }
        let mut world = World::new(&name, canary.spec, "v1");
        world.canary = Behaviour { error_rate: self.error_rate, latency_ms: self.latency_ms };
        world.metric_overrides = self.metrics.into_iter().collect();
        Ok(simulate_rollout(world, self.max_ticks))
    }
}

impl Timeline {
    /// The command's exit code: 0 when v2 was promoted, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.outcome == CanaryPhase::Succeeded { 0 } else { 1 }
    }
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
