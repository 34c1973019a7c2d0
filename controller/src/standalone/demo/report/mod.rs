//! The demo's record of a rollout, as a live line per sample and an HTML report with SVG charts of
//! weight, success rate and latency over time.

use std::fmt::Write as _;

/// What the demo saw at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the new version was deployed.
    pub seconds: f64,
    pub phase: String,
    pub canary_weight: i32,
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

/// One line of a chart.
struct Series<'a> {
    label: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// The whole report as one HTML page.
pub fn html(title: &str, outcome: &str, samples: &[Sample], events: &[(f64, String)]) -> String {
    let series = |label: &'static str, color: &'static str, pick: fn(&Sample) -> Option<f64>| Series {
        label,
        color,
        points: samples.iter().filter_map(|s| pick(s).map(|v| (s.seconds, v))).collect(),
    };
    let traffic = chart(
        "Canary weight and success rate (%)",
        &[
            series("canary weight", "#888888", |s| Some(s.canary_weight as f64)),
            series("canary success", "#d9480f", |s| s.canary_success),
            series("primary success", "#1971c2", |s| s.primary_success),
        ],
        Some(100.0),
        samples,
    );
    let latency = chart(
        "p99 latency (ms)",
        &[series("canary p99", "#d9480f", |s| s.canary_p99_ms), series("primary p99", "#1971c2", |s| s.primary_p99_ms)],
        None,
        samples,
    );
    let mut rows = String::new();
    for (seconds, message) in events {
        let _ = writeln!(rows, "<tr><td>{seconds:.0}s</td><td>{}</td></tr>", escape(message));
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} td{{padding:2px 12px 2px 0;vertical-align:top}} .outcome{{font-size:1.3em;font-weight:bold}}</style>
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
    )
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 50.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 30.0;

fn chart(title: &str, series: &[Series<'_>], fixed_max: Option<f64>, samples: &[Sample]) -> String {
    let end = samples.last().map_or(1.0, |s| s.seconds.max(1.0));
    let highest = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let top = fixed_max.unwrap_or_else(|| (highest * 1.2).max(1.0));
    let x = |t: f64| LEFT + (WIDTH - LEFT - 10.0) * t / end;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v.clamp(0.0, top) / top);
    let mut svg = format!(
        r#"<h2>{}</h2><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#ccc"/>"##,
        WIDTH - LEFT - 10.0,
        HEIGHT - TOP - BOTTOM
    );
    for fraction in [0.0, 0.5, 1.0] {
        let value = top * fraction;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{value:.0}</text>"##,
            LEFT - 4.0,
            y(value) + 4.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{end:.0}s</text>"##,
        WIDTH - 10.0,
        HEIGHT - 10.0
    );
    // Phase changes as vertical markers.
    let mut last_phase = "";
    for sample in samples {
        if sample.phase != last_phase {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#eee"/><text x="{2:.1}" y="{3}" font-size="10" fill="#777">{4}</text>"##,
                x(sample.seconds),
                HEIGHT - BOTTOM,
                x(sample.seconds) + 2.0,
                TOP - 4.0,
                escape(&sample.phase)
            );
            last_phase = &sample.phase;
        }
    }
    for (i, line) in series.iter().enumerate() {
        let points: Vec<String> = line.points.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            line.color,
            points.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" fill="{}">{}</text>"#,
            LEFT + 10.0 + 150.0 * i as f64,
            HEIGHT - 8.0,
            line.color,
            escape(line.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_draws_every_series_and_escapes_text() {
        let sample = |seconds: f64, phase: &str, weight: i32| Sample {
            seconds,
            phase: phase.into(),
            canary_weight: weight,
            canary_success: Some(99.0),
            primary_success: Some(100.0),
            canary_p99_ms: Some(12.0),
            primary_p99_ms: None,
        };
        let samples = [sample(0.0, "Progressing", 0), sample(5.0, "Progressing", 20), sample(9.0, "Succeeded", 0)];
        let page = html("podinfo <demo>", "Succeeded", &samples, &[(9.0, "Promotion completed & done".into())]);
        assert!(page.contains("podinfo &lt;demo&gt;"));
        assert!(page.contains("Promotion completed &amp; done"));
        assert_eq!(page.matches("<polyline").count(), 5);
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(live_line(&samples[1]).contains("20%"));
    }
}
