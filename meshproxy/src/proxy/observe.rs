//! What became of a request, recorded once it is answered: the request metrics (the series the
//! canary analysis reads) and, when enabled, a line of the access log.

use std::net::SocketAddr;
use std::time::Instant;

use http::{Request, Response};

use super::client::Body;
use super::error::Blame;
use super::route::{Peer, authority_of};
use super::trace::trace_id;
use crate::access_log::{AccessEntry, AccessLog};
use crate::metrics::{RequestLabels, class_of};

/// Filled in as a request goes through the proxy.
pub struct Observation {
    started: Instant,
    client: Peer,
    pub labels: RequestLabels,
    pub endpoint: Option<SocketAddr>,
    pub attempts: u32,
    /// Set when meshproxy answered itself.
    pub blame: Option<Blame>,
    /// The request's line for the access log, taken before the request is used up.
    logged: Option<RequestLine>,
}

struct RequestLine {
    trace_id: String,
    method: String,
    authority: String,
    path: String,
    protocol: String,
}

impl Observation {
    pub fn start<B>(client: Peer, request: &Request<B>, access_log: &AccessLog) -> Observation {
        let logged = access_log.wants().then(|| RequestLine {
            trace_id: trace_id(request.headers()).to_string(),
            method: request.method().to_string(),
            authority: authority_of(request).unwrap_or_default(),
            path: request.uri().path().to_string(),
            protocol: format!("{:?}", request.version()),
        });
        Observation {
            started: Instant::now(),
            client,
            labels: RequestLabels::default(),
            endpoint: None,
            attempts: 0,
            blame: None,
            logged,
        }
    }

    /// Records the answer in the metrics and the access log.
    pub fn finish(mut self, metrics: &crate::metrics::ProxyMetrics, response: &Response<Body>) {
        let elapsed = self.started.elapsed();
        self.labels.code = response.status().as_u16();
        self.labels.class = class_of(self.labels.code);
        self.labels.blame = self.blame.map_or("", Blame::label);
        if let Some(line) = &self.logged {
            let labels = &self.labels;
            AccessLog::write(&AccessEntry {
                time: jiff::Timestamp::now().to_string(),
                client: self.client.address.to_string(),
                method: &line.method,
                authority: &line.authority,
                path: &line.path,
                protocol: &line.protocol,
                status: labels.code,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                service: &labels.service,
                namespace: &labels.namespace,
                route: &labels.route,
                backend: &labels.backend,
                version: &labels.version,
                endpoint: self.endpoint.map(|e| e.to_string()),
                attempts: self.attempts,
                trace_id: &line.trace_id,
                blame: self.blame.map(Blame::label),
                error: response.headers().get("x-meshproxy-error").and_then(|v| v.to_str().ok()),
            });
        }
        metrics.observe(self.labels, elapsed.as_secs_f64());
    }
}
