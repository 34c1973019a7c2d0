//! The controller's own metrics, with Flagger's names under a `serin_` prefix so dashboards and
//! alerts written for Flagger carry over: each Canary's status, weights, last metric values and
//! tick duration, and totals of promotions and rollbacks. Serin adds how long each phase lasted.
//! A deleted Canary's series go with it, so the output stays as large as the cluster's Canaries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serin_crds::{CanaryPhase, CanarySpec, CanaryStatus};

use crate::engine::strategy::Strategy;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    name: String,
    namespace: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: &'static str,
    analysis_status: &'static str,
}

/// The label values one Canary's series were made with.
#[derive(Default)]
struct CanarySeries {
    workloads: BTreeSet<String>,
    phases: BTreeSet<String>,
    metrics: BTreeSet<String>,
    outcomes: BTreeSet<OutcomeLabels>,
}

pub struct ControllerMetrics {
    registry: Registry,
    total: Family<NamespaceLabels, Gauge>,
    /// The series of each Canary seen, by namespace and name: for `total`, and for forgetting a
    /// deleted one's.
    known: Mutex<BTreeMap<String, BTreeMap<String, CanarySeries>>>,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    duration: Family<CanaryLabels, Histogram>,
    lateness: Histogram,
    phase_duration: Family<PhaseLabels, Histogram>,
    successes: Family<OutcomeLabels, Counter>,
    failures: Family<OutcomeLabels, Counter>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerMetrics {
    pub fn new() -> ControllerMetrics {
        let mut registry = Registry::with_prefix("serin");
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())]).set(1);
        registry.register("info", "Serin's version", info);
        let total = Family::default();
        registry.register("canary_total", "Canaries this controller runs", total.clone());
        let status = Family::default();
        registry.register(
            "canary_status",
            "0 while Progressing, 2 when Failed, 1 otherwise (as Flagger)",
            status.clone(),
        );
        let weight = Family::default();
        registry.register(
            "canary_weight",
            "Route weight of the primary (<target>-primary) and the canary (<target>)",
            weight.clone(),
        );
        let analysis = Family::default();
        registry.register("canary_metric_analysis", "Last value of each metric of the analysis", analysis.clone());
        let duration: Family<CanaryLabels, Histogram> = Family::new_with_constructor(tick_histogram);
        registry.register("canary_duration_seconds", "Time one reconcile of a Canary took", duration.clone());
        let lateness = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "canary_reconcile_lateness_seconds",
            "How long after its requeue time a Canary's tick ran (the controller keeping up, or not)",
            lateness.clone(),
        );
        let phase_duration: Family<PhaseLabels, Histogram> = Family::new_with_constructor(phase_histogram);
        registry.register(
            "canary_phase_duration_seconds",
            "Time a Canary spent in a phase, observed when it left it",
            phase_duration.clone(),
        );
        let successes = Family::default();
        registry.register("canary_successes", "Promotions", successes.clone());
        let failures = Family::default();
        registry.register("canary_failures", "Rollbacks and failed promotions", failures.clone());
        ControllerMetrics {
            registry,
            total,
            known: Mutex::default(),
            status,
            weight,
            analysis,
            duration,
            lateness,
            phase_duration,
            successes,
            failures,
        }
    }

    /// Records one reconcile: its duration, the status it decided, how long the phase it left
    /// lasted, and a promotion or rollback when the phase moved to Succeeded or Failed in it.
    pub fn observe(
        &self,
        namespace: &str,
        name: &str,
        spec: &CanarySpec,
        previous: Option<&CanaryStatus>,
        status: &CanaryStatus,
        seconds: f64,
    ) {
        let before = previous.map(|s| s.phase);
        let target = &spec.target_ref.name;
        let workloads = [spec.primary_workload_name(), target.clone()];
        let outcome = OutcomeLabels {
            name: name.to_string(),
            namespace: namespace.to_string(),
            deployment_strategy: strategy_name(spec),
            analysis_status: if spec.skip_analysis == Some(true) { "skipped" } else { "completed" },
        };
        self.remember(namespace, name, |series| {
            series.workloads.extend(workloads.iter().cloned());
            series.metrics.extend(status.metrics.iter().filter(|m| m.value.is_some()).map(|m| m.name.clone()));
            series.outcomes.insert(outcome.clone());
            series.phases.extend(previous.map(|p| p.phase.to_string()));
        });
        if let Some(previous) = previous.filter(|p| p.phase != status.phase)
            && let Some(since) = &previous.last_transition_time
        {
            let lasted = jiff::Timestamp::now().duration_since(since.0).as_secs_f64().max(0.0);
            let phase =
                PhaseLabels { name: name.into(), namespace: namespace.into(), phase: previous.phase.to_string() };
            self.phase_duration.get_or_create(&phase).observe(lasted);
        }
        let canary = CanaryLabels { name: name.to_string(), namespace: namespace.to_string() };
        self.duration.get_or_create(&canary).observe(seconds);
        let code = match status.phase {
            CanaryPhase::Progressing => 0,
            CanaryPhase::Failed => 2,
            _ => 1,
        };
        self.status.get_or_create(&canary).set(code);
        for (workload, weight) in workloads.into_iter().zip([100 - status.canary_weight, status.canary_weight]) {
            let labels = WorkloadLabels { workload, namespace: namespace.to_string() };
            self.weight.get_or_create(&labels).set(i64::from(weight));
        }
        for metric in &status.metrics {
            if let Some(value) = metric.value {
                let labels = MetricLabels {
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    metric: metric.name.clone(),
                };
                self.analysis.get_or_create(&labels).set(value);
            }
        }
        if before != Some(status.phase) {
            match status.phase {
                CanaryPhase::Succeeded => self.successes.get_or_create(&outcome).inc(),
                CanaryPhase::Failed => self.failures.get_or_create(&outcome).inc(),
                _ => 0,
            };
        }
    }

    /// A tick that ran `seconds` after it was due.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness.observe(seconds);
    }

    /// Drops every series of a Canary that no longer exists.
    pub fn forget(&self, namespace: &str, name: &str) {
        let series = {
            let mut known = self.known.lock().expect("metrics lock");
            let Some(names) = known.get_mut(namespace) else { return };
            let Some(series) = names.remove(name) else { return };
            let count = names.len() as i64;
            if names.is_empty() {
                known.remove(namespace);
            }
            let labels = NamespaceLabels { namespace: namespace.into() };
            if count == 0 {
                self.total.remove(&labels);
            } else {
                self.total.get_or_create(&labels).set(count);
            }
            series
        };
        let canary = CanaryLabels { name: name.into(), namespace: namespace.into() };
        self.status.remove(&canary);
        self.duration.remove(&canary);
        for workload in series.workloads {
            self.weight.remove(&WorkloadLabels { workload, namespace: namespace.into() });
        }
        for phase in series.phases {
            self.phase_duration.remove(&PhaseLabels { name: name.into(), namespace: namespace.into(), phase });
        }
        for metric in series.metrics {
            self.analysis.remove(&MetricLabels { name: name.into(), namespace: namespace.into(), metric });
        }
        for outcome in series.outcomes {
            self.successes.remove(&outcome);
            self.failures.remove(&outcome);
        }
    }

    /// Notes the series a Canary has, keeping its namespace's count.
    fn remember(&self, namespace: &str, name: &str, note: impl FnOnce(&mut CanarySeries)) {
        let mut known = self.known.lock().expect("metrics lock");
        let names = known.entry(namespace.to_string()).or_default();
        let before = names.len();
        note(names.entry(name.to_string()).or_default());
        if names.len() != before {
            self.total.get_or_create(&NamespaceLabels { namespace: namespace.into() }).set(names.len() as i64);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// 1 s to 2.3 h: a phase lasts from one tick to a long bake or a wait for approval.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// 5 ms to 10 s: a reconcile is a few API calls, a metric query or a webhook.
fn tick_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

fn strategy_name(spec: &CanarySpec) -> &'static str {
    match Strategy::of(&spec.analysis) {
        Strategy::Canary(_) => "canary",
        Strategy::AbTesting { .. } => "ab-testing",
        Strategy::BlueGreen { .. } => "blue-green",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CanarySpec {
        serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "10s", "stepWeight": 10},
        }))
        .unwrap()
    }

    fn status(phase: CanaryPhase, seconds_ago: i64) -> CanaryStatus {
        let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
        CanaryStatus {
            phase,
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(since)),
            ..Default::default()
        }
    }

    #[test]
    fn the_time_spent_in_a_phase_is_observed_when_the_canary_leaves_it() {
        let metrics = ControllerMetrics::new();
        let progressing = status(CanaryPhase::Progressing, 90);
        metrics.observe("test", "podinfo", &spec(), Some(&progressing), &progressing, 0.01);
        assert!(!metrics.render().contains("serin_canary_phase_duration_seconds_count"), "still in the phase");
        let done = status(CanaryPhase::Succeeded, 0);
        metrics.observe("test", "podinfo", &spec(), Some(&progressing), &done, 0.01);
        let text = metrics.render();
        let labels = r#"name="podinfo",namespace="test",phase="Progressing""#;
        assert!(text.contains(&format!("serin_canary_phase_duration_seconds_count{{{labels}}} 1")), "{text}");
        assert!(
            text.contains(&format!("serin_canary_phase_duration_seconds_bucket{{le=\"128.0\",{labels}}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("serin_canary_phase_duration_seconds_bucket{{le=\"64.0\",{labels}}} 0")),
            "{text}"
        );
    }

    #[test]
    fn a_deleted_canary_leaves_no_series_behind() {
        let metrics = ControllerMetrics::new();
        let progressing = status(CanaryPhase::Progressing, 5);
        let mut done = status(CanaryPhase::Failed, 0);
        done.metrics = vec![
            serde_json::from_value(serde_json::json!({"name": "error-rate", "value": 7.0, "outcome": "Failed"}))
                .unwrap(),
        ];
        for name in ["podinfo", "other"] {
            metrics.observe("test", name, &spec(), Some(&progressing), &done, 0.01);
        }
        assert!(metrics.render().contains(r#"serin_canary_total{namespace="test"} 2"#));
        metrics.forget("test", "podinfo");
        let text = metrics.render();
        assert!(text.contains(r#"serin_canary_total{namespace="test"} 1"#), "{text}");
        let left: Vec<&str> = text.lines().filter(|l| l.contains(r#"name="podinfo""#)).collect();
        assert!(left.is_empty(), "{left:#?}");
        assert!(text.contains(r#"serin_canary_failures_total{name="other""#), "the other Canary keeps its series");
    }
}
