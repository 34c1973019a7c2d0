//! The comparison table: each target's latency added over the direct connection at each rate,
//! its maximum throughput, CPU per request and peak memory.

use serde::Serialize;

use super::LoadResult;

/// One target's row.
#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    /// Latency added over the direct runs at each fixed rate.
    pub added_latency_ms: Vec<AddedLatency>,
    pub max_rps: Option<f64>,
    pub cpu_seconds_per_1k: Option<f64>,
    pub peak_rss_kib: u64,
}

/// Milliseconds added at one rate, and the errors seen there.
#[derive(Debug, Serialize)]
pub struct AddedLatency {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub errors: u64,
}

/// Builds one report per label from all runs; `baseline` is the label of the direct runs.
pub fn build_reports(results: &[LoadResult], baseline: &str) -> Vec<Report> {
    let mut labels: Vec<&str> = Vec::new();
    for result in results {
        if !labels.contains(&result.label.as_str()) {
            labels.push(&result.label);
        }
    }
    let direct_at = |rate: f64| results.iter().find(|r| r.label == baseline && r.rate == Some(rate));
    labels
        .into_iter()
        .map(|label| {
            let runs: Vec<&LoadResult> = results.iter().filter(|r| r.label == label).collect();
            let added_latency_ms = runs
                .iter()
                .filter_map(|run| {
                    let rate = run.rate?;
                    let direct = direct_at(rate)?;
                    Some(AddedLatency {
                        rate,
                        p50: run.p50_ms - direct.p50_ms,
                        p99: run.p99_ms - direct.p99_ms,
                        p999: run.p999_ms - direct.p999_ms,
                        errors: run.errors,
                    })
                })
                .collect();
            let max_run = runs.iter().find(|r| r.rate.is_none());
            Report {
                label: label.to_string(),
                added_latency_ms,
                max_rps: max_run.map(|r| r.achieved_rps),
                cpu_seconds_per_1k: max_run.and_then(|r| r.cpu_seconds_per_1k),
                peak_rss_kib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
            }
        })
        .collect()
}

/// The table a reader compares: one row per target.
pub fn render_markdown(reports: &[Report], rates: &[f64]) -> String {
    let mut header = "| target |".to_string();
    let mut rule = "|---|".to_string();
    for rate in rates {
        header.push_str(&format!(" +p50 / +p99 / +p99.9 ms @{rate} rps |"));
        rule.push_str("---|");
    }
    header.push_str(" max rps (1 worker) | CPU s / 1k req | peak RSS MiB |");
    rule.push_str("---|---|---|");
    let mut table = format!("{header}\n{rule}\n");
    for report in reports {
        let mut row = format!("| {} |", report.label);
        for rate in rates {
            match report.added_latency_ms.iter().find(|a| a.rate == *rate) {
                Some(a) if a.errors > 0 => {
                    row.push_str(&format!(" {:.3} / {:.3} / {:.3} ({} errors) |", a.p50, a.p99, a.p999, a.errors))
                }
                Some(a) => row.push_str(&format!(" {:.3} / {:.3} / {:.3} |", a.p50, a.p99, a.p999)),
                None => row.push_str(" - |"),
            }
        }
        let or_dash = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        row.push_str(&format!(
            " {} | {} | {:.1} |",
            or_dash(report.max_rps, 0),
            or_dash(report.cpu_seconds_per_1k, 4),
            report.peak_rss_kib as f64 / 1024.0
        ));
        table.push_str(&row);
        table.push('\n');
    }
    table
}
