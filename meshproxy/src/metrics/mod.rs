//! meshproxy's Prometheus metrics: one counter and one latency histogram per service, route,
//! backend, version and response code, so a canary's success rate and latency can be compared
//! with the primary's over the same window.

mod series_cache;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use serin_meshproxy_api::metrics as names;

use crate::state::RuntimeState;
use series_cache::{Series, SeriesCache};

/// A label value shared by every request that carries it.
pub type Label = Arc<String>;

/// The label of what is not known (yet): one shared string, so a request's defaults cost nothing.
static UNKNOWN: LazyLock<Label> = LazyLock::new(Label::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    // Shared strings: a request's labels are refcount bumps, not copies.
    pub service: Label,
    pub namespace: Label,
    pub route: Label,
    pub backend: Label,
    pub version: Label,
    pub code: u16,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub class: &'static str,
    /// Empty when the upstream answered; else who is to blame for the proxy's own answer.
    pub blame: &'static str,
}

impl Default for RequestLabels {
    fn default() -> Self {
        RequestLabels {
            service: UNKNOWN.clone(),
            namespace: UNKNOWN.clone(),
            route: UNKNOWN.clone(),
            backend: UNKNOWN.clone(),
            version: UNKNOWN.clone(),
            code: 0,
            class: "",
            blame: "",
        }
    }
}

pub struct ProxyMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    retries: Family<RetryLabels, Counter>,
    series: SeriesCache,
    pub config_generation: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    service: Label,
    namespace: Label,
    route: Label,
    backend: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// Latency buckets from 0.5 ms to 30 s: fine below 10 ms, where a proxy hop lives.
const BUCKETS: [f64; 17] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0];

impl ProxyMetrics {
    /// The proxy's metrics; the endpoint gauges are read from `state` at each scrape.
    pub fn new(state: Arc<RuntimeState>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let config_generation = Gauge::default();
        registry.register(names::REQUESTS, "Requests proxied, by destination and response code", requests.clone());
        registry.register(
            names::REQUEST_DURATION,
            "Time from receiving a request to sending the response headers",
            durations.clone(),
        );
        registry.register(names::CONFIG_GENERATION, "Generation of the config in use", config_generation.clone());
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(names::RETRIES, "Attempts sent again under a TrafficPolicy's retry rule", retries.clone());
        registry.register_collector(Box::new(EndpointGauges(state)));
        ProxyMetrics { registry, requests, durations, retries, series: SeriesCache::default(), config_generation }
    }

    pub fn retried(&self, request: &RequestLabels) {
        let labels = RetryLabels {
            service: request.service.clone(),
            namespace: request.namespace.clone(),
            route: request.route.clone(),
            backend: request.backend.clone(),
        };
        self.retries.get_or_create(&labels).inc();
    }

    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        let series = self.series.get(labels, |labels| Series {
            requests: self.requests.get_or_create(labels).clone(),
            duration: self.durations.get_or_create(labels).clone(),
        });
        series.duration.observe(seconds);
        series.requests.inc();
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

pub fn class_of(code: u16) -> &'static str {
    match code {
        0..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Per-endpoint gauges, read at scrape time: open upstream connections, and whether the endpoint
/// is ejected by outlier detection right now.
#[derive(Debug)]
struct EndpointGauges(Arc<RuntimeState>);

impl Collector for EndpointGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let endpoints = self.0.endpoints();
        let now = std::time::Instant::now();
        let mut connections = encoder.encode_descriptor(
            names::UPSTREAM_CONNECTIONS,
            "Open connections from this proxy to an endpoint",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (address, state) in &endpoints {
            let labels = EndpointLabels { endpoint: address.to_string() };
            ConstGauge::new(state.connections.load(Ordering::Relaxed)).encode(connections.encode_family(&labels)?)?;
        }
        let mut ejected = encoder.encode_descriptor(
            names::ENDPOINT_EJECTED,
            "1 while outlier detection keeps an endpoint out of load balancing",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (address, state) in &endpoints {
            let labels = EndpointLabels { endpoint: address.to_string() };
            ConstGauge::new(i64::from(state.health.is_ejected(now))).encode(ejected.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_meshproxy_api::metrics::label;

    /// The contract's names are what the exposition really says: the analysis reads these.
    #[test]
    fn the_exposition_uses_the_contract_names_and_labels() {
        let metrics = ProxyMetrics::new(Arc::new(RuntimeState::default()));
        let labels = RequestLabels {
            service: Arc::new("podinfo".into()),
            namespace: Arc::new("test".into()),
            route: Arc::new("podinfo".into()),
            backend: Arc::new("podinfo-canary".into()),
            version: Arc::new("v2".into()),
            code: 503,
            class: class_of(503),
            blame: "upstream",
        };
        metrics.observe(labels.clone(), 0.002);
        metrics.retried(&labels);
        let text = metrics.render();
        let series = format!(
            "{}{{{}=\"podinfo\",{}=\"test\",{}=\"podinfo\",{}=\"podinfo-canary\",{}=\"v2\",{}=\"503\",{}=\"{}\",{}=\"upstream\"}} 1",
            names::REQUESTS_TOTAL,
            label::SERVICE,
            label::NAMESPACE,
            label::ROUTE,
            label::BACKEND,
            label::VERSION,
            label::CODE,
            label::CLASS,
            label::SERVER_ERROR_CLASS,
            label::BLAME
        );
        assert!(text.contains(&series), "{series} not in\n{text}");
        assert!(text.contains(&format!("{}{{", names::REQUEST_DURATION_BUCKET)), "{text}");
        assert!(text.contains(&format!("{}{{", names::RETRIES_TOTAL)), "{text}");
        assert!(text.contains(&format!("# TYPE {} gauge", names::CONFIG_GENERATION)), "{text}");
    }

    /// The series cache finds series by the label strings' identity: the same text in new strings
    /// (a new config) counts into the same series, and another code into another.
    #[test]
    fn series_are_the_same_whatever_strings_carry_the_text() {
        let metrics = ProxyMetrics::new(Arc::new(RuntimeState::default()));
        let labels = |code: u16| RequestLabels {
            service: Arc::new("podinfo".into()),
            backend: Arc::new("podinfo-canary".into()),
            code,
            class: class_of(code),
            ..RequestLabels::default()
        };
        let first = labels(200);
        for _ in 0..3 {
            metrics.observe(first.clone(), 0.001);
        }
        metrics.observe(labels(200), 0.001);
        metrics.observe(labels(503), 0.001);
        let text = metrics.render();
        let count = |code: &str| {
            text.lines()
                .find(|l| l.starts_with(names::REQUESTS_TOTAL) && l.contains(&format!("code=\"{code}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(count("200").as_deref(), Some("4"), "{text}");
        assert_eq!(count("503").as_deref(), Some("1"), "{text}");
    }
}
