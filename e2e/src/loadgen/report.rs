//! The comparison tables: each target's latency added over the direct connection at each rate,
//! its CPU per 1,000 requests at each rate, its maximum throughput and peak memory; every figure
//! the median of the rounds run, with the spread beside the ones noise moves most. Then each
//! target against a reference one (nginx), as ratios from the same run.

use serde::Serialize;

use super::LoadResult;

/// One target's row.
#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub rounds: usize,
    /// At each fixed rate, over the rounds.
    pub at_rate: Vec<AtRate>,
    pub max_rps: Option<Spread>,
    /// CPU seconds per 1,000 requests in the maximum-throughput runs.
    pub cpu_seconds_per_1k_at_max: Option<Spread>,
    /// The largest peak RSS of any run.
    pub peak_rss_kib: u64,
}

/// Medians at one rate: latency added over the direct runs (matched round by round), the CPU the
/// target used per 1,000 requests, and the errors seen in all rounds.
#[derive(Debug, Serialize)]
pub struct AtRate {
    pub rate: f64,
    pub added_p50_ms: Spread,
    pub added_p99_ms: Spread,
    pub added_p999_ms: Spread,
    pub cpu_seconds_per_1k: Option<Spread>,
    pub errors: u64,
}

/// The median of some rounds, and their smallest and largest values.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { median, min: values[0], max: values[n - 1] })
    }
}

/// Builds one report per label from all runs, in the order labels first appear; `baseline` is the
/// label of the direct runs. The n-th run of a target at a rate is compared with the n-th direct
/// run at that rate: rounds are interleaved, so those ran closest in time.
pub fn build_reports(results: &[LoadResult], baseline: &str) -> Vec<Report> {
    let mut labels: Vec<&str> = Vec::new();
    for result in results {
        if !labels.contains(&result.label.as_str()) {
            labels.push(&result.label);
        }
    }
    let mut rates: Vec<f64> = results.iter().filter_map(|r| r.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let runs_of = |label: &str, rate: Option<f64>| -> Vec<&LoadResult> {
        results.iter().filter(|r| r.label == label && r.rate == rate).collect()
    };
    labels
        .into_iter()
        .map(|label| {
            let at_rate = rates
                .iter()
                .filter_map(|&rate| {
                    let runs = runs_of(label, Some(rate));
                    let direct = runs_of(baseline, Some(rate));
                    if runs.is_empty() || direct.is_empty() {
                        return None;
                    }
                    let added = |measure: fn(&LoadResult) -> f64| {
                        let values = runs.iter().zip(direct.iter().cycle()).map(|(r, d)| measure(r) - measure(d));
                        Spread::of(values.collect()).expect("at least one run")
                    };
                    Some(AtRate {
                        rate,
                        added_p50_ms: added(|r| r.p50_ms),
                        added_p99_ms: added(|r| r.p99_ms),
                        added_p999_ms: added(|r| r.p999_ms),
                        cpu_seconds_per_1k: Spread::of(runs.iter().filter_map(|r| r.cpu_seconds_per_1k).collect()),
                        errors: runs.iter().map(|r| r.errors).sum(),
                    })
                })
                .collect();
            let max_runs = runs_of(label, None);
            let all: Vec<&LoadResult> = results.iter().filter(|r| r.label == label).collect();
            Report {
                label: label.to_string(),
                rounds: all.iter().filter(|r| r.rate == all[0].rate).count(),
                at_rate,
                max_rps: Spread::of(max_runs.iter().map(|r| r.achieved_rps).collect()),
                cpu_seconds_per_1k_at_max: Spread::of(max_runs.iter().filter_map(|r| r.cpu_seconds_per_1k).collect()),
                peak_rss_kib: all.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
            }
        })
        .collect()
}

/// The tables a reader compares: one row per target, then ratios against `reference` (when it
/// ran) for every other target that used CPU.
pub fn render_markdown(reports: &[Report], rates: &[f64], reference: &str) -> String {
    let rounds = reports.iter().map(|r| r.rounds).max().unwrap_or(0);
    let mut header = "| target |".to_string();
    let mut rule = "|---|".to_string();
    for rate in rates {
        header.push_str(&format!(" +p50 / +p99 / +p99.9 ms @{rate} rps | CPU ms / 1k req @{rate} |"));
        rule.push_str("---|---|");
    }
    header.push_str(" max rps (1 worker) | CPU ms / 1k req @max | peak RSS MiB |");
    rule.push_str("---|---|---|");
    let mut table = format!(
        "Medians of {rounds} interleaved rounds; [min–max] of the rounds beside +p99, CPU and max rps.\n\n{header}\n{rule}\n"
    );
    let ms = |s: Option<Spread>| {
        s.map_or("-".to_string(), |s| format!("{:.1} [{:.1}–{:.1}]", s.median * 1e3, s.min * 1e3, s.max * 1e3))
    };
    for report in reports {
        let mut row = format!("| {} |", report.label);
        for rate in rates {
            match report.at_rate.iter().find(|a| a.rate == *rate) {
                Some(a) => {
                    let errors = if a.errors > 0 { format!(" ({} errors)", a.errors) } else { String::new() };
                    row.push_str(&format!(
                        " {:.3} / {:.3} [{:.3}–{:.3}] / {:.3}{errors} | {} |",
                        a.added_p50_ms.median,
                        a.added_p99_ms.median,
                        a.added_p99_ms.min,
                        a.added_p99_ms.max,
                        a.added_p999_ms.median,
                        ms(a.cpu_seconds_per_1k)
                    ));
                }
                None => row.push_str(" - | - |"),
            }
        }
        let max = report.max_rps.map_or("-".to_string(), |s| format!("{:.0} [{:.0}–{:.0}]", s.median, s.min, s.max));
        row.push_str(&format!(
            " {max} | {} | {:.1} |",
            ms(report.cpu_seconds_per_1k_at_max),
            report.peak_rss_kib as f64 / 1024.0
        ));
        table.push_str(&row);
        table.push('\n');
    }
    if let Some(reference_report) = reports.iter().find(|r| r.label == reference) {
        table.push_str(&render_ratios(reports, rates, reference_report));
    }
    table
}

/// Each target over the reference, from the medians: below 1 uses less CPU, above 1 serves more.
fn render_ratios(reports: &[Report], rates: &[f64], reference: &Report) -> String {
    let mut header = format!("\n| against {} |", reference.label);
    let mut rule = "|---|".to_string();
    for rate in rates {
        header.push_str(&format!(" CPU per request @{rate} | +p99 @{rate} | +p99.9 @{rate} |"));
        rule.push_str("---|---|---|");
    }
    header.push_str(" max rps |");
    rule.push_str("---|");
    let mut table = format!("{header}\n{rule}\n");
    // An added latency at or below zero is noise in the direct runs: no ratio of it means anything.
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours > 0.0 && theirs > 0.0 => format!("{:.2}x", ours / theirs),
        _ => "-".to_string(),
    };
    for report in reports.iter().filter(|r| r.label != reference.label && r.cpu_seconds_per_1k_at_max.is_some()) {
        let mut row = format!("| {} |", report.label);
        for rate in rates {
            let ours = report.at_rate.iter().find(|a| a.rate == *rate);
            let theirs = reference.at_rate.iter().find(|a| a.rate == *rate);
            let pick = |a: Option<&AtRate>, f: fn(&AtRate) -> Option<f64>| a.and_then(f);
            row.push_str(&format!(
                " {} | {} | {} |",
                ratio(
                    pick(ours, |a| a.cpu_seconds_per_1k.map(|s| s.median)),
                    pick(theirs, |a| a.cpu_seconds_per_1k.map(|s| s.median))
                ),
                ratio(pick(ours, |a| Some(a.added_p99_ms.median)), pick(theirs, |a| Some(a.added_p99_ms.median))),
                ratio(pick(ours, |a| Some(a.added_p999_ms.median)), pick(theirs, |a| Some(a.added_p999_ms.median))),
            ));
        }
        row.push_str(&format!(" {} |", ratio(report.max_rps.map(|s| s.median), reference.max_rps.map(|s| s.median))));
        table.push_str(&row);
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, rate: Option<f64>, p99_ms: f64, cpu: f64, rps: f64) -> LoadResult {
        LoadResult {
            label: label.into(),
            rate,
            completed: 1000,
            errors: 0,
            achieved_rps: rps,
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms,
            p99_ms,
            p999_ms: p99_ms * 2.0,
            max_ms: p99_ms * 3.0,
            cpu_seconds_per_1k: (label != "direct").then_some(cpu),
            peak_rss_kib: 1024,
        }
    }

    #[test]
    fn rounds_give_medians_with_their_spread_and_latency_is_added_round_by_round() {
        let mut runs = Vec::new();
        for (round, (direct_p99, proxy_p99, cpu, rps)) in
            [(0.3, 0.8, 0.050, 30_000.0), (0.5, 0.7, 0.060, 40_000.0), (0.4, 1.4, 0.055, 35_000.0)]
                .into_iter()
                .enumerate()
        {
            runs.push(run("direct", Some(1000.0), direct_p99, 0.0, 1000.0));
            runs.push(run("meshproxy", Some(1000.0), proxy_p99, cpu, 1000.0));
            runs.push(run("nginx", Some(1000.0), 0.6, 0.040, 1000.0));
            runs.push(run("meshproxy", None, 0.0, cpu / 2.0, rps));
            runs.push(run("nginx", None, 0.0, 0.025, 30_000.0 + round as f64));
        }
        let reports = build_reports(&runs, "direct");
        let meshproxy = reports.iter().find(|r| r.label == "meshproxy").unwrap();
        assert_eq!(meshproxy.rounds, 3);
        let at = &meshproxy.at_rate[0];
        // Added per round: 0.5, 0.2, 1.0.
        assert!((at.added_p99_ms.median - 0.5).abs() < 1e-9 && (at.added_p99_ms.min - 0.2).abs() < 1e-9);
        assert!((at.added_p99_ms.max - 1.0).abs() < 1e-9);
        assert!((at.cpu_seconds_per_1k.unwrap().median - 0.055).abs() < 1e-9);
        assert_eq!(meshproxy.max_rps.unwrap().median, 35_000.0);

        let text = render_markdown(&reports, &[1000.0], "nginx");
        assert!(text.contains("Medians of 3 interleaved rounds"), "{text}");
        assert!(text.contains("| 55.0 [50.0–60.0] |"), "CPU in ms per 1k: {text}");
        // CPU 0.055 against nginx's 0.040; max rps 35,000 against 30,001.
        let ratios = text.split("| against nginx |").nth(1).expect("a ratio table");
        assert!(ratios.contains("| meshproxy | 1.38x |") && ratios.contains("| 1.17x |"), "{ratios}");
        assert!(!ratios.contains("| direct |"), "the baseline uses no CPU of its own: {ratios}");
    }
}
