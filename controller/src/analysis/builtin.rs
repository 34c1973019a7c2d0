//! The builtin metrics over meshproxy's request metrics, for one backend: as PromQL for Prometheus,
//! and computed from scraped deltas for the embedded provider. Both report no data below a floor
//! of requests, so a canary nobody called is never judged healthy.

use serin_meshproxy_api::metrics::{self as names, label};

use crate::engine::MetricValue;

use super::scrape::WindowDelta;
use super::template::QueryContext;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Builtin {
    /// Percent of requests that were not 5xx.
    SuccessRate,
    /// A latency quantile in milliseconds (`request-duration` is p99).
    Duration { quantile: f64 },
    /// Requests per second.
    RequestRate,
}

impl Builtin {
    pub const SPELLINGS: &str =
        "request-success-rate, request-duration (p99), request-duration-pNN (e.g. p95), request-rate";

    pub fn parse(name: &str) -> Option<Builtin> {
        match name {
            "request-success-rate" => Some(Builtin::SuccessRate),
            "request-duration" => Some(Builtin::Duration { quantile: 0.99 }),
            "request-rate" => Some(Builtin::RequestRate),
            other => {
                let digits = other.strip_prefix("request-duration-p")?;
                let percentile: f64 = digits.parse().ok()?;
                (percentile > 0.0 && percentile < 100.0).then_some(Builtin::Duration { quantile: percentile / 100.0 })
            }
        }
    }

    /// The PromQL for this metric on `context.backend` over `context.interval`. Builtins that judge
    /// quality are empty (no data) below `min_requests`.
    pub fn promql(self, context: &QueryContext, min_requests: u64) -> String {
        // Only what the upstream did: not what a client or the proxy's policy caused.
        let selector = format!(
            "{}=\"{}\",{}=\"{}\",{}!~\"{}\"",
            label::NAMESPACE,
            context.namespace,
            label::BACKEND,
            context.backend,
            label::BLAME,
            label::NOT_THE_UPSTREAMS
        );
        let errors = format!("{selector},{}=\"{}\"", label::CLASS, label::SERVER_ERROR_CLASS);
        let window = &context.interval;
        let (requests, buckets) = (names::REQUESTS_TOTAL, names::REQUEST_DURATION_BUCKET);
        let floor = format!("and on() (sum(increase({requests}{{{selector}}}[{window}])) >= {min_requests})");
        match self {
            // `or vector(0)`: with no 5xx at all the error series do not exist, which means 100 %.
            Builtin::SuccessRate => format!(
                "100 * (1 - ((sum(rate({requests}{{{errors}}}[{window}])) or vector(0)) / sum(rate({requests}{{{selector}}}[{window}])))) {floor}"
            ),
            Builtin::Duration { quantile } => format!(
                "histogram_quantile({quantile}, sum by (le) (rate({buckets}{{{selector}}}[{window}]))) * 1000 {floor}"
            ),
            Builtin::RequestRate => format!("sum(rate({requests}{{{selector}}}[{window}]))"),
        }
    }

    /// The same metric from a scraped window.
    pub fn from_delta(self, delta: &WindowDelta, context: &QueryContext, min_requests: u64) -> MetricValue {
        let seconds = delta.covered.as_secs_f64();
        if self != Builtin::RequestRate && delta.requests < min_requests as f64 {
            return MetricValue::TooFewRequests(format!(
                "only {} requests reached {} in the last {:.0}s (at least {min_requests} needed)",
                delta.requests, context.backend, seconds
            ));
        }
        match self {
            Builtin::SuccessRate => MetricValue::Value(delta.success_rate()),
            Builtin::Duration { quantile } => match delta.latency_ms(quantile) {
                ms if ms.is_nan() => MetricValue::NoData(format!("no latencies recorded for {}", context.backend)),
                ms => MetricValue::Value(ms),
            },
            Builtin::RequestRate if seconds > 0.0 => MetricValue::Value(delta.requests / seconds),
            Builtin::RequestRate => MetricValue::NoData("the window is empty".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn context() -> QueryContext {
        QueryContext {
            namespace: "test".into(),
            backend: "podinfo-canary".into(),
            interval: "1m".into(),
            ..QueryContext::default()
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(Builtin::parse("request-success-rate"), Some(Builtin::SuccessRate));
        assert_eq!(Builtin::parse("request-duration"), Some(Builtin::Duration { quantile: 0.99 }));
        assert_eq!(Builtin::parse("request-duration-p95"), Some(Builtin::Duration { quantile: 0.95 }));
        assert_eq!(Builtin::parse("request-duration-p100"), None);
        assert_eq!(Builtin::parse("error-rate"), None);
    }

    #[test]
    fn promql_selects_the_backend_and_carries_the_floor() {
        let query = Builtin::SuccessRate.promql(&context(), 10);
        assert!(
            query.contains(
                "meshproxy_requests_total{namespace=\"test\",backend=\"podinfo-canary\",blame!~\"client|policy\",class=\"5xx\"}[1m]"
            ),
            "{query}"
        );
        assert!(query.ends_with(">= 10)"), "{query}");
    }

    #[test]
    fn below_the_floor_is_no_data_and_above_it_a_value() {
        let delta = |requests: f64, errors: f64| WindowDelta {
            requests,
            server_errors: errors,
            buckets: vec![(0.05, requests), (f64::INFINITY, requests)],
            covered: Duration::from_secs(60),
        };
        let few = Builtin::SuccessRate.from_delta(&delta(3.0, 0.0), &context(), 10);
        assert!(
            matches!(&few, MetricValue::TooFewRequests(why) if why.contains("only 3 requests reached podinfo-canary")),
            "{few:?}"
        );
        assert_eq!(Builtin::SuccessRate.from_delta(&delta(200.0, 10.0), &context(), 10), MetricValue::Value(95.0));
        assert_eq!(Builtin::RequestRate.from_delta(&delta(120.0, 0.0), &context(), 10), MetricValue::Value(2.0));
        let MetricValue::Value(p99) =
            Builtin::Duration { quantile: 0.99 }.from_delta(&delta(100.0, 0.0), &context(), 10)
        else {
            panic!()
        };
        assert!((p99 - 49.5).abs() < 1e-9);
    }
}
