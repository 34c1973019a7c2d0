use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The app's own metrics, named as podinfo names them, so the same queries work on both.
pub struct AppMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    path: &'static str,
}

impl AppMetrics {
    pub fn new(version: &str) -> Self {
        let mut registry =
            Registry::with_labels([(std::borrow::Cow::Borrowed("version"), version.to_string().into())].into_iter());
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register("http_requests", "Requests answered, by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer a request, by route", durations.clone());
        AppMetrics { registry, requests, durations }
    }

    /// `path` is the route pattern (`/status/{code}`), never the raw path, so labels stay bounded.
    pub fn observe(&self, method: &http::Method, path: &'static str, status: u16, seconds: f64) {
        let method = method.as_str().to_string();
        self.requests.get_or_create(&RequestLabels { method: method.clone(), path, status }).inc();
        self.durations.get_or_create(&RouteLabels { method, path }).observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
