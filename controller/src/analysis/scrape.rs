//! The embedded metrics provider: scrapes meshproxy's `/metrics` directly, keeps a short window of
//! samples, and computes request counts, success rates and latency quantiles from counter deltas and
//! histogram buckets, as Prometheus' `increase()` and `histogram_quantile()` would. The default
//! when no Prometheus is configured.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use serin_meshproxy_api::metrics::{self as names, label};

use serin_meshproxy_api::admin::METRICS_PATH;

use crate::outbound::{Outbound, OutboundError};

/// The series of one backend, summed over meshproxy instances, routes and codes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendCounters {
    pub requests: f64,
    pub server_errors: f64,
    /// Cumulative histogram buckets `(le seconds, count)`, ascending, ending with `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

/// A backend in meshproxy's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendKey {
    pub namespace: String,
    pub backend: String,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    backends: BTreeMap<BackendKey, BackendCounters>,
}

/// What happened in one backend over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowDelta {
    pub requests: f64,
    pub server_errors: f64,
    pub buckets: Vec<(f64, f64)>,
    /// The time the delta actually covers (shorter than asked for while the window fills up).
    pub covered: Duration,
}

impl WindowDelta {
    /// Percent of requests that were not 5xx.
    pub fn success_rate(&self) -> f64 {
        100.0 * (self.requests - self.server_errors) / self.requests
    }

    /// The `quantile` (0..1) latency in milliseconds, interpolated within buckets like Prometheus'
    /// `histogram_quantile`; NaN without observations.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        histogram_quantile(quantile, &self.buckets) * 1000.0
    }
}

/// Samples of meshproxy's metrics over time, from one or more meshproxy admin addresses.
pub struct MeshproxyScraper {
    targets: Vec<String>,
    retention: Duration,
    samples: Mutex<VecDeque<Sample>>,
    /// The first successful scrape since this process started: before a window has passed since
    /// then, a thin window says nothing about the canary.
    first_sample: std::sync::OnceLock<Instant>,
    client: Outbound,
}

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

impl MeshproxyScraper {
    /// `targets` are admin base URLs (`http://127.0.0.1:9901`); samples older than `retention` go.
    pub fn new(targets: Vec<String>, retention: Duration, client: Outbound) -> MeshproxyScraper {
        let targets = targets.into_iter().map(|t| t.trim_end_matches('/').to_string()).collect();
        MeshproxyScraper {
            targets,
            retention,
            samples: Mutex::new(VecDeque::new()),
            first_sample: std::sync::OnceLock::new(),
            client,
        }
    }

    /// Scrapes every target once and keeps the sum as a sample. A target that fails makes the
    /// whole sample fail: a partial sum would look like a counter reset.
    pub async fn scrape(&self) -> Result<(), ScrapeError> {
        let mut backends: BTreeMap<BackendKey, BackendCounters> = BTreeMap::new();
        for target in &self.targets {
            let text = self.fetch(target).await?;
            let parsed = parse_metrics(&text)
                .map_err(|source| ScrapeError::NotText { url: format!("{target}{METRICS_PATH}"), source })?;
            merge(&mut backends, parsed);
        }
        let now = Instant::now();
        self.first_sample.get_or_init(|| now);
        let mut samples = self.samples.lock().expect("scraper lock");
        samples.push_back(Sample { at: now, backends });
        while samples.front().is_some_and(|s| now.duration_since(s.at) > self.retention) {
            samples.pop_front();
        }
        Ok(())
    }

    /// Scrapes every `period` until the task is dropped; failures are logged and retried.
    pub async fn run(self: std::sync::Arc<Self>, period: Duration) {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = self.scrape().await {
                tracing::warn!(%error, "scraping meshproxy failed");
            }
        }
    }

    /// What `backend` did over the last `window`: the newest sample minus the newest one at least
    /// `window` older (or the oldest kept, while the window fills). `None` with fewer than two samples.
    pub fn delta(&self, key: &BackendKey, window: Duration) -> Option<WindowDelta> {
        let samples = self.samples.lock().expect("scraper lock");
        let newest = samples.back()?;
        let base = samples
            .iter()
            .rev()
            .find(|s| newest.at.duration_since(s.at) >= window)
            .or_else(|| samples.front().filter(|s| s.at < newest.at))?;
        let now = newest.backends.get(key).cloned().unwrap_or_default();
        let then = base.backends.get(key).cloned().unwrap_or_default();
        Some(WindowDelta {
            requests: increase(then.requests, now.requests),
            server_errors: increase(then.server_errors, now.server_errors),
            buckets: now
                .buckets
                .iter()
                .map(|&(le, count)| {
                    let before = then.buckets.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
                    (le, increase(before, count))
                })
                .collect(),
            covered: newest.at.duration_since(base.at),
        })
    }

    /// How long this scraper has been sampling (since its first successful scrape).
    pub fn sampling_for(&self) -> Duration {
        self.first_sample.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    /// How many samples are kept.
    pub fn sample_count(&self) -> usize {
        self.samples.lock().expect("scraper lock").len()
    }

    async fn fetch(&self, target: &str) -> Result<String, ScrapeError> {
        let url = format!("{target}{METRICS_PATH}");
        let request = Request::get(&url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ScrapeError::NotMetrics { url: url.clone(), reason: e.to_string() })?;
        let reply = self.client.send(request, SCRAPE_TIMEOUT, false).await.map_err(ScrapeError::Unreachable)?;
        if !reply.status.is_success() {
            return Err(ScrapeError::BadStatus { url, status: reply.status, body: reply.body_excerpt(200) });
        }
        String::from_utf8(reply.body.to_vec())
            .map_err(|_| ScrapeError::NotMetrics { url, reason: "the metrics are not UTF-8".into() })
    }
}

/// Why meshproxy could not be scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("scraping meshproxy: {0}")]
    Unreachable(#[source] OutboundError),
    #[error("{url} answered {status}: {body}")]
    BadStatus { url: String, status: http::StatusCode, body: String },
    #[error("{url}: {reason}")]
    NotMetrics { url: String, reason: String },
    #[error("{url}: not Prometheus text format: {source}")]
    NotText { url: String, source: std::io::Error },
}

impl ScrapeError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ScrapeError::Unreachable(error) => error.label(),
            ScrapeError::BadStatus { .. } => "bad_status",
            ScrapeError::NotMetrics { .. } | ScrapeError::NotText { .. } => "not_metrics",
        }
    }
}

/// A counter's increase, counting a reset (a restarted meshproxy) as starting from zero.
fn increase(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

fn merge(into: &mut BTreeMap<BackendKey, BackendCounters>, from: BTreeMap<BackendKey, BackendCounters>) {
    for (key, counters) in from {
        let entry = into.entry(key).or_default();
        entry.requests += counters.requests;
        entry.server_errors += counters.server_errors;
        add_buckets(&mut entry.buckets, &counters.buckets);
    }
}

fn add_buckets(into: &mut Vec<(f64, f64)>, from: &[(f64, f64)]) {
    for &(le, count) in from {
        match into.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += count,
            None => into.push((le, count)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// meshproxy's request counters and latency buckets, summed per (namespace, backend).
pub fn parse_metrics(text: &str) -> Result<BTreeMap<BackendKey, BackendCounters>, std::io::Error> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
    let mut backends: BTreeMap<BackendKey, BackendCounters> = BTreeMap::new();
    for sample in scrape.samples {
        // What the client or the proxy's policy caused says nothing about the version.
        let blame = sample.labels.get(label::BLAME).unwrap_or_default();
        if label::NOT_THE_UPSTREAMS.split('|').any(|not_upstream| not_upstream == blame) {
            continue;
        }
        let key = |labels: &prometheus_parse::Labels| BackendKey {
            namespace: labels.get(label::NAMESPACE).unwrap_or_default().to_string(),
            backend: labels.get(label::BACKEND).unwrap_or_default().to_string(),
        };
        match (sample.metric.as_str(), &sample.value) {
            (names::REQUESTS_TOTAL, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v)) => {
                let entry = backends.entry(key(&sample.labels)).or_default();
                entry.requests += v;
                if sample.labels.get(label::CLASS) == Some(label::SERVER_ERROR_CLASS) {
                    entry.server_errors += v;
                }
            }
            (names::REQUEST_DURATION, prometheus_parse::Value::Histogram(counts)) => {
                let entry = backends.entry(key(&sample.labels)).or_default();
                let buckets: Vec<(f64, f64)> = counts.iter().map(|c| (c.less_than, c.count)).collect();
                add_buckets(&mut entry.buckets, &buckets);
            }
            _ => {}
        }
    }
    Ok(backends)
}

/// Prometheus' `histogram_quantile` over cumulative buckets: linear interpolation inside the bucket
/// the rank falls in; the highest finite bound when it falls in `+Inf`.
pub fn histogram_quantile(quantile: f64, buckets: &[(f64, f64)]) -> f64 {
    let Some(&(_, total)) = buckets.last() else { return f64::NAN };
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = quantile * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return le;
            }
            return lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket;
        }
        lower = (le, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP meshproxy_requests Requests proxied, by destination and response code.
# TYPE meshproxy_requests counter
meshproxy_requests_total{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx"} 90
meshproxy_requests_total{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="503",class="5xx"} 10
meshproxy_requests_total{service="podinfo",namespace="test",route="podinfo",backend="podinfo-primary",version="v1",code="200",class="2xx"} 400
meshproxy_requests_total{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="400",class="4xx",blame="client"} 70
meshproxy_requests_total{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="503",class="5xx",blame="policy"} 30
# TYPE meshproxy_request_duration_seconds histogram
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx",le="0.01"} 50
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx",le="0.1"} 90
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx",le="+Inf"} 90
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="503",class="5xx",le="0.01"} 10
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="503",class="5xx",le="0.1"} 10
meshproxy_request_duration_seconds_bucket{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="503",class="5xx",le="+Inf"} 10
meshproxy_request_duration_seconds_sum{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx"} 3.0
meshproxy_request_duration_seconds_count{service="podinfo",namespace="test",route="podinfo",backend="podinfo-canary",version="v2",code="200",class="2xx"} 90
# EOF
"#;

    #[test]
    fn counters_and_buckets_are_summed_per_backend_leaving_out_what_clients_and_policy_caused() {
        let parsed = parse_metrics(TEXT).unwrap();
        let canary = &parsed[&BackendKey { namespace: "test".into(), backend: "podinfo-canary".into() }];
        assert_eq!((canary.requests, canary.server_errors), (100.0, 10.0));
        assert_eq!(canary.buckets, vec![(0.01, 60.0), (0.1, 100.0), (f64::INFINITY, 100.0)]);
        let primary = &parsed[&BackendKey { namespace: "test".into(), backend: "podinfo-primary".into() }];
        assert_eq!(primary.requests, 400.0);
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let buckets = [(0.01, 60.0), (0.1, 100.0), (f64::INFINITY, 100.0)];
        // rank 99 of 100 falls in (0.01, 0.1]: 0.01 + 0.09 * (99 - 60) / 40
        assert!((histogram_quantile(0.99, &buckets) - 0.09775).abs() < 1e-9);
        assert!((histogram_quantile(0.5, &buckets) - 0.01 * 50.0 / 60.0).abs() < 1e-9);
        assert_eq!(histogram_quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 10.0)]), 0.1);
        assert!(histogram_quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]).is_nan());
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        assert_eq!(increase(100.0, 130.0), 30.0);
        assert_eq!(increase(100.0, 7.0), 7.0);
    }
}
