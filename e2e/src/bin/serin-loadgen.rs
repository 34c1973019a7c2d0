//! `serin-loadgen`: constant-rate or maximum-throughput HTTP/1.1 load with latencies measured
//! from when each request was due; see `serin_e2e::loadgen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serin_e2e::loadgen::{LoadResult, LoadSpec, build_reports, render_markdown, run};

#[derive(Parser)]
#[command(name = "serin-loadgen", about = "HTTP load without coordinated omission, and the tables to compare runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One run; prints its result as one JSON line.
    Run {
        /// Names the target in the result.
        #[arg(long)]
        label: String,
        /// `ip:port` to connect to.
        #[arg(long)]
        target: SocketAddr,
        /// Host header.
        #[arg(long, default_value = "localhost")]
        host: String,
        #[arg(long, default_value = "/")]
        path: String,
        /// Requests per second; 0 for as many as the connections carry.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup_seconds: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Process ids whose CPU and peak memory to measure (comma separated).
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
    /// Reads JSON lines of results; prints a markdown table, and writes the reports as JSON.
    Report {
        results: PathBuf,
        /// Label of the runs without a proxy, which added latency is measured against.
        #[arg(long, default_value = "direct")]
        baseline: String,
        /// Label of the target the others are compared with, as ratios.
        #[arg(long, default_value = "nginx")]
        reference: String,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run { label, target, host, path, rate, warmup_seconds, seconds, connections, pids } => {
            anyhow::ensure!(connections >= 1, "--connections must be at least 1");
            anyhow::ensure!(seconds > 0.0 && warmup_seconds >= 0.0, "--seconds must be positive");
            let spec = LoadSpec {
                label,
                target,
                host,
                path,
                rate: (rate > 0.0).then_some(rate),
                warmup: Duration::from_secs_f64(warmup_seconds),
                duration: Duration::from_secs_f64(seconds),
                connections,
                pids,
            };
            // One thread: the generator must not take the cores the targets are measured on.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = runtime.block_on(run(&spec))?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Command::Report { results, baseline, reference, json } => {
            let text = std::fs::read_to_string(&results).with_context(|| format!("reading {}", results.display()))?;
            let runs: Vec<LoadResult> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, line)| {
                    serde_json::from_str(line).with_context(|| format!("{}: line {}", results.display(), i + 1))
                })
                .collect::<anyhow::Result<_>>()?;
            let mut rates: Vec<f64> = runs.iter().filter_map(|r| r.rate).collect();
            rates.sort_by(f64::total_cmp);
            rates.dedup();
            let reports = build_reports(&runs, &baseline);
            print!("{}", render_markdown(&reports, &rates, &reference));
            if let Some(path) = json {
                let document = serde_json::json!({ "runs": runs, "reports": reports });
                std::fs::write(&path, serde_json::to_string_pretty(&document)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
    }
}
