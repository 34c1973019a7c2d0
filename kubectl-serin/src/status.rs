//! `kubectl serin status NAME [--watch]`: one Canary's rollout at a glance. The revisions (image
//! tags) of primary and canary, phase and message, step i of N with a weight bar, each metric's last
//! value against its threshold, the gates, and the recent events. With `--watch` on a terminal the
//! view redraws in place; otherwise it prints a new view whenever something changed. Colour is off
//! with `--no-color`, with `NO_COLOR`, or when stdout is not a terminal.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};
use serin_crds::canary::{Canary, CanaryMetric, HookType};
use serin_crds::canary_status::MetricOutcome;
use serin_crds::{CanaryPhase, CanaryStatus};

use crate::get::{step_of, strategy, threshold};
use crate::source::Source;

/// How the view is drawn.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
    /// Redraw in place (a terminal) rather than print view after view.
    pub redraw: bool,
}

/// Shows the view once, or with `watch` until interrupted (or `until` passes, for tests).
pub async fn show(
    source: &Source,
    namespace: &str,
    name: &str,
    watch: bool,
    style: Style,
    until: Option<Duration>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let view = render(&source.snapshot(namespace, name).await?, style);
        if view != last {
            if watch && style.redraw {
                // Home and clear: the view replaces the last one.
                print!("\x1b[H\x1b[2J");
            } else if watch && !last.is_empty() {
                println!();
            }
            print!("{view}");
            last = view;
        }
        if !watch || until.is_some_and(|u| started.elapsed() >= u) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What one view shows.
pub struct Snapshot {
    pub canary: Canary,
    /// What primary and canary run: a workload's images, or a standalone group's labels and
    /// endpoints.
    pub primary_runs: Vec<String>,
    pub canary_runs: Vec<String>,
    /// Newest last: (reason, note).
    pub events: Vec<(String, String)>,
}

/// The snapshot of `canary` in a cluster: its workloads' images and its events.
pub async fn cluster_snapshot(client: &Client, namespace: &str, canary: Canary) -> anyhow::Result<Snapshot> {
    let name = canary.metadata.name.clone().unwrap_or_default();
    let target = &canary.spec.target_ref;
    let kind = target.kind.as_deref().unwrap_or("Deployment");
    let primary_images = images(client, namespace, kind, &canary.spec.primary_workload_name()).await?;
    let canary_images = images(client, namespace, kind, &target.name).await?;
    // The apiserver picks this Canary's events (this very object, by uid, not an earlier one of
    // the same name), so a watch does not read the whole namespace's events every second.
    let mut fields = format!("regarding.kind=Canary,regarding.name={name}");
    if let Some(uid) = &canary.metadata.uid {
        fields.push_str(&format!(",regarding.uid={uid}"));
    }
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&fields))
        .await?
        .items
        .into_iter()
        .filter(|e| {
            let regarding = e.regarding.as_ref();
            regarding.and_then(|r| r.kind.as_deref()) == Some("Canary")
                && regarding.and_then(|r| r.name.as_deref()) == Some(name.as_str())
        })
        .collect();
    events.sort_by_key(last_seen);
    let events = events
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|e| (e.reason.clone().unwrap_or_default(), e.note.clone().unwrap_or_default()))
        .collect();
    Ok(Snapshot { canary, primary_runs: primary_images, canary_runs: canary_images, events })
}

fn last_seen(event: &Event) -> Option<jiff::Timestamp> {
    let series = event.series.as_ref().map(|s| s.last_observed_time.0);
    series.or(event.event_time.as_ref().map(|t| t.0)).or(event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

async fn images(client: &Client, namespace: &str, kind: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let template = crate::revision::workload_template(client, namespace, kind, name).await?;
    let containers = template.and_then(|t| t.spec).map(|s| s.containers).unwrap_or_default();
    Ok(containers.into_iter().filter_map(|c| c.image).collect())
}

/// The view as text.
pub fn render(snapshot: &Snapshot, style: Style) -> String {
    let paint = |code: &str, text: &str| {
        if style.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    };
    let canary = &snapshot.canary;
    let status = canary.status.clone().unwrap_or_default();
    let analysis = &canary.spec.analysis;
    let mut out = String::new();
    let name = format!(
        "{}/{}",
        canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.metadata.name.as_deref().unwrap_or_default()
    );
    out.push_str(&format!("Canary {}  ({})\n", paint("1", &name), strategy(analysis)));
    out.push_str(&format!("  primary  {}\n", list(&snapshot.primary_runs)));
    out.push_str(&format!("  canary   {}\n", list(&snapshot.canary_runs)));
    let phase_colour = match status.phase {
        CanaryPhase::Failed => "31",
        CanaryPhase::Succeeded | CanaryPhase::Initialized => "32",
        _ => "33",
    };
    let paused = if status.paused { " (paused)" } else { "" };
    out.push_str(&format!(
        "  phase    {}{paused}: {}\n",
        paint(phase_colour, &status.phase.to_string()),
        status.message
    ));
    let (step, steps) = step_of(analysis, status.canary_weight, status.iterations);
    out.push_str(&format!(
        "  step     {step} of {steps}  {}  canary {}%\n",
        bar(status.canary_weight),
        status.canary_weight
    ));
    out.push_str(&format!("  checks   {} failed of {} allowed\n", status.failed_checks, threshold(analysis)));
    if !analysis.metrics.is_empty() {
        out.push_str("  metrics\n");
        for metric in &analysis.metrics {
            out.push_str(&format!("    {}\n", metric_line(metric, &status, &paint)));
        }
    }
    out.push_str(&format!("  gates    {}\n", gates(canary, &status)));
    if !snapshot.events.is_empty() {
        out.push_str("  events\n");
        for (reason, note) in &snapshot.events {
            out.push_str(&format!("    {reason}: {note}\n"));
        }
    }
    out
}

fn list(images: &[String]) -> String {
    if images.is_empty() { "(none)".into() } else { images.join(", ") }
}

/// A 20-cell bar of the canary's weight.
fn bar(weight: i32) -> String {
    let filled = (weight.clamp(0, 100) / 5) as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
}

fn metric_line(metric: &CanaryMetric, status: &CanaryStatus, paint: &impl Fn(&str, &str) -> String) -> String {
    let result = status.metrics.iter().find(|m| m.name == metric.name);
    let value = result.and_then(|m| m.value).map_or("-".to_string(), |v| format!("{v:.2}"));
    let mut bounds = Vec::new();
    if let Some(range) = &metric.threshold_range {
        if let Some(min) = range.min {
            bounds.push(format!(">= {min}"));
        }
        if let Some(max) = range.max {
            bounds.push(format!("<= {max}"));
        }
    }
    if let Some(threshold) = metric.threshold {
        bounds.push(format!("<= {threshold}"));
    }
    let mut line = format!(
        "{:<24} {value:>10}  wanted {}",
        metric.name,
        if bounds.is_empty() { "-".into() } else { bounds.join(" and ") }
    );
    if let (Some(_), Some(primary)) = (&metric.compare_to_primary, result.and_then(|m| m.primary_value)) {
        line.push_str(&format!("  (primary {primary:.2})"));
    }
    let (code, word) = match result.map(|m| m.outcome) {
        Some(MetricOutcome::Passed) => ("32", "passed"),
        Some(MetricOutcome::Failed) => ("31", "failed"),
        Some(MetricOutcome::NoData) => ("33", "no data"),
        Some(MetricOutcome::Error) => ("31", "error"),
        Some(_) => ("33", "waiting for evidence"),
        None => ("2", "not checked yet"),
    };
    line.push_str(&format!("  {}", paint(code, word)));
    if let Some(reason) = result.and_then(|m| m.reason.as_deref()) {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// Each gate the analysis has, open or closed, and whether the run waits for it now.
fn gates(canary: &Canary, status: &CanaryStatus) -> String {
    let gated: Vec<(&str, &str)> = canary
        .spec
        .analysis
        .webhooks
        .iter()
        .filter_map(|w| match w.type_ {
            HookType::ConfirmRollout => Some(("rollout", w.name.as_str())),
            HookType::ConfirmTrafficIncrease => Some(("traffic-increase", w.name.as_str())),
            HookType::ConfirmPromotion => Some(("promotion", w.name.as_str())),
            _ => None,
        })
        .collect();
    if gated.is_empty() {
        return "none".into();
    }
    let waiting = match status.phase {
        CanaryPhase::Waiting => Some("rollout"),
        CanaryPhase::WaitingPromotion => Some("promotion"),
        _ => None,
    };
    gated
        .iter()
        .map(|(gate, hook)| {
            let state = if status.open_gates.contains(*gate) { "open" } else { "closed" };
            let wait = if waiting == Some(*gate) { ", the run waits for it" } else { "" };
            format!("{gate} ({hook}): {state}{wait}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_shows_its_value_its_threshold_the_primarys_and_the_verdict() {
        let canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "service": {"port": 80},
                "analysis": {"interval": "10s", "threshold": 3, "stepWeights": [10, 30, 60], "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "compareToPrimary": {"maxDecrease": 1}},
                    {"name": "request-duration", "thresholdRange": {"max": 500}},
                ]},
            },
            "status": {"phase": "Progressing", "canaryWeight": 30, "failedChecks": 1, "message": "advancing", "metrics": [
                {"name": "request-success-rate", "value": 97.5, "primaryValue": 99.9, "outcome": "Failed", "reason": "below 99"},
            ]},
        }))
        .unwrap();
        let snapshot = Snapshot {
            canary,
            primary_runs: vec!["web:1.0".into()],
            canary_runs: vec!["web:1.1".into()],
            events: vec![("Synced".into(), "Advance web.shop canary weight 30".into())],
        };
        let view = render(&snapshot, Style { colour: false, redraw: false });
        assert!(view.contains("  step     2 of 3  [######..............]  canary 30%"), "{view}");
        assert!(view.contains("  checks   1 failed of 3 allowed"), "{view}");
        assert!(
            view.contains("request-success-rate          97.50  wanted >= 99  (primary 99.90)  failed: below 99"),
            "{view}"
        );
        assert!(view.contains("request-duration                  -  wanted <= 500  not checked yet"), "{view}");
        assert!(view.contains("    Synced: Advance web.shop canary weight 30"), "{view}");
        let coloured = render(&snapshot, Style { colour: true, redraw: true });
        assert!(coloured.contains("\x1b[31mfailed\x1b[0m"), "{coloured:?}");
    }
}
