//! The controller's own metrics, with Flagger's names under a `serin_` prefix so dashboards and
//! alerts written for Flagger carry over: each Canary's status, weights, last metric values and
//! tick duration, and totals of promotions and rollbacks.

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
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: &'static str,
    analysis_status: &'static str,
}

pub struct ControllerMetrics {
    registry: Registry,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    duration: Family<CanaryLabels, Histogram>,
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
        let successes = Family::default();
        registry.register("canary_successes", "Promotions", successes.clone());
        let failures = Family::default();
        registry.register("canary_failures", "Rollbacks and failed promotions", failures.clone());
        ControllerMetrics { registry, status, weight, analysis, duration, successes, failures }
    }

    /// Records one reconcile: its duration, the status it decided, and a promotion or rollback when
    /// the phase moved to Succeeded or Failed in it.
    pub fn observe(
        &self,
        namespace: &str,
        name: &str,
        spec: &CanarySpec,
        before: Option<CanaryPhase>,
        status: &CanaryStatus,
        seconds: f64,
    ) {
        let canary = CanaryLabels { name: name.to_string(), namespace: namespace.to_string() };
        self.duration.get_or_create(&canary).observe(seconds);
        let code = match status.phase {
            CanaryPhase::Progressing => 0,
            CanaryPhase::Failed => 2,
            _ => 1,
        };
        self.status.get_or_create(&canary).set(code);
        let target = &spec.target_ref.name;
        for (workload, weight) in
            [(spec.primary_workload_name(), 100 - status.canary_weight), (target.clone(), status.canary_weight)]
        {
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
            let outcome = OutcomeLabels {
                name: name.to_string(),
                namespace: namespace.to_string(),
                deployment_strategy: strategy_name(spec),
                analysis_status: if spec.skip_analysis == Some(true) { "skipped" } else { "completed" },
            };
            match status.phase {
                CanaryPhase::Succeeded => self.successes.get_or_create(&outcome).inc(),
                CanaryPhase::Failed => self.failures.get_or_create(&outcome).inc(),
                _ => 0,
            };
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
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
