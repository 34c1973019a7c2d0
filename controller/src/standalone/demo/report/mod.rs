//! The demo's record of a rollout, as a live line per sample and an HTML report with SVG charts of
//! weight, success rate and latency over time.

mod chart;

use std::fmt::Write as _;

use chart::{Chart, Mark, Series, Threshold, Timeline};

/// What the demo saw at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the new version was deployed.
    pub seconds: f64,
    pub phase: String,
    pub canary_weight: i32,
    /// Iterations done, for A/B and blue/green.
    pub iterations: i32,
    pub canary_success: Option<f64>,
    pub primary_success: Option<f64>,
    pub canary_p99_ms: Option<f64>,
    pub primary_p99_ms: Option<f64>,
}

pub fn header_line() -> String {
    format!(
        "{:>6}  {:<17} {:>6}  {:>15}  {:>15}  {:>14}  {:>14}",
        "time", "phase", "weight", "canary success", "primary success", "canary p99", "primary p99"
    )
}

pub fn live_line(sample: &Sample) -> String {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}%"));
    let millis = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    format!(
        "{:>5.0}s  {:<17} {:>5}%  {:>15}  {:>15}  {:>14}  {:>14}",
        sample.seconds,
        sample.phase,
        sample.canary_weight,
        percent(sample.canary_success),
        percent(sample.primary_success),
        millis(sample.canary_p99_ms),
        millis(sample.primary_p99_ms)
    )
}

/// The bounds the demo's Canary sets on its two metrics, drawn on their charts.
pub struct Thresholds {
    /// `request-success-rate`'s minimum, in percent.
    pub success_min: f64,
    /// `request-duration`'s maximum, in milliseconds.
    pub p99_max_ms: f64,
}

/// The whole report as one HTML page.
pub fn html(title: &str, outcome: &str, samples: &[Sample], events: &[(f64, String)], bounds: &Thresholds) -> String {
    let series = |label: &'static str, color: &'static str, pick: fn(&Sample) -> Option<f64>| Series {
        label,
        color,
        points: samples.iter().filter_map(|s| pick(s).map(|v| (s.seconds, v))).collect(),
    };
    let timeline = timeline(samples);
    let traffic = Chart {
        title: "Canary weight and success rate (%)",
        series: vec![
            series("canary weight", "#888888", |s| Some(s.canary_weight as f64)),
            // The canary's line last, on top where the two coincide.
            series("primary success", "#1971c2", |s| s.primary_success),
            series("canary success", "#d9480f", |s| s.canary_success),
        ],
        threshold: Some(Threshold {
            value: bounds.success_min,
            label: format!("request-success-rate min {}%", bounds.success_min),
        }),
        fixed_max: Some(100.0),
    }
    .svg(&timeline);
    let latency = Chart {
        title: "p99 latency (ms)",
        series: vec![
            series("primary p99", "#1971c2", |s| s.primary_p99_ms),
            series("canary p99", "#d9480f", |s| s.canary_p99_ms),
        ],
        threshold: Some(Threshold {
            value: bounds.p99_max_ms,
            label: format!("request-duration max {} ms", bounds.p99_max_ms),
        }),
        fixed_max: None,
    }
    .svg(&timeline);
    let mut rows = String::new();
    for (seconds, message) in events {
        let _ = writeln!(rows, "<tr><td>{seconds:.0}s</td><td>{}</td></tr>", escape(message));
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:{width}px}} td{{padding:2px 12px 2px 0;vertical-align:top}} .outcome{{font-size:1.3em;font-weight:bold}}</style>
</head><body>
<h1>{title}</h1>
<p class="outcome">{outcome}</p>
{traffic}
{latency}
<h2>Events</h2>
<table>{rows}</table>
</body></html>
"#,
        title = escape(title),
        outcome = escape(outcome),
        width = chart::WIDTH,
    )
}

/// The marks every chart shares, read off the samples: where the phase changed, each step (a new
/// weight while progressing, or a new iteration), and the spans spent waiting at a gate.
fn timeline(samples: &[Sample]) -> Timeline {
    let mut timeline =
        Timeline { end: samples.last().map_or(1.0, |s| s.seconds), phases: vec![], steps: vec![], gate_waits: vec![] };
    let mut waiting_since: Option<(f64, &str)> = None;
    for (i, sample) in samples.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| &samples[p]);
        if previous.is_none_or(|p| p.phase != sample.phase) {
            timeline.phases.push(Mark { seconds: sample.seconds, label: sample.phase.clone() });
        }
        if let Some(previous) = previous {
            // A/B and blue/green step by iteration (their weight jumps once, with the first).
            if sample.iterations > previous.iterations {
                timeline.steps.push(Mark { seconds: sample.seconds, label: format!("#{}", sample.iterations) });
            } else if sample.phase == "Progressing" && sample.canary_weight != previous.canary_weight {
                timeline.steps.push(Mark { seconds: sample.seconds, label: format!("{}%", sample.canary_weight) });
            }
        }
        let gate = match sample.phase.as_str() {
            "Waiting" => Some("waiting at confirm-rollout"),
            "WaitingPromotion" => Some("waiting at confirm-promotion"),
            _ => None,
        };
        match (waiting_since, gate) {
            (None, Some(gate)) => waiting_since = Some((sample.seconds, gate)),
            (Some((from, label)), now) if now != Some(label) => {
                timeline.gate_waits.push((from, sample.seconds, label.to_string()));
                waiting_since = now.map(|gate| (sample.seconds, gate));
            }
            _ => {}
        }
    }
    if let Some((from, label)) = waiting_since {
        timeline.gate_waits.push((from, timeline.end, label.to_string()));
    }
    timeline
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: f64, phase: &str, weight: i32, iterations: i32) -> Sample {
        Sample {
            seconds,
            phase: phase.into(),
            canary_weight: weight,
            iterations,
            canary_success: Some(99.0),
            primary_success: Some(100.0),
            canary_p99_ms: Some(12.0),
            primary_p99_ms: None,
        }
    }

    const BOUNDS: Thresholds = Thresholds { success_min: 95.0, p99_max_ms: 100.0 };

    #[test]
    fn the_report_draws_every_series_and_threshold_and_escapes_text() {
        let samples =
            [sample(0.0, "Progressing", 0, 0), sample(5.0, "Progressing", 20, 0), sample(9.0, "Succeeded", 0, 0)];
        let page =
            html("podinfo <demo>", "Succeeded", &samples, &[(9.0, "Promotion completed & done".into())], &BOUNDS);
        assert!(page.contains("podinfo &lt;demo&gt;"));
        assert!(page.contains("Promotion completed &amp; done"));
        assert_eq!(page.matches("<polyline").count(), 5);
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains("request-success-rate min 95%") && page.contains("request-duration max 100 ms"));
        assert!(live_line(&samples[1]).contains("20%"));
    }

    #[test]
    fn the_timeline_marks_phases_steps_iterations_and_gate_waits() {
        let samples = [
            sample(0.0, "Initialized", 0, 0),
            sample(1.0, "Progressing", 0, 0),
            sample(2.0, "Progressing", 20, 0),
            sample(3.0, "Progressing", 20, 0),
            sample(4.0, "WaitingPromotion", 20, 1),
            sample(5.0, "WaitingPromotion", 20, 1),
            sample(6.0, "WaitingPromotion", 20, 2),
            sample(7.0, "Promoting", 20, 2),
            sample(9.0, "Succeeded", 0, 2),
        ];
        let timeline = timeline(&samples);
        let labels = |marks: &[Mark]| marks.iter().map(|m| format!("{}@{}", m.label, m.seconds)).collect::<Vec<_>>();
        assert_eq!(
            labels(&timeline.phases),
            ["Initialized@0", "Progressing@1", "WaitingPromotion@4", "Promoting@7", "Succeeded@9"]
        );
        assert_eq!(labels(&timeline.steps), ["20%@2", "#1@4", "#2@6"]);
        assert_eq!(timeline.gate_waits, [(4.0, 7.0, "waiting at confirm-promotion".to_string())]);
        assert_eq!(timeline.end, 9.0);
    }
}
