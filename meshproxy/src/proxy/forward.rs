//! One request through the proxy: find the service by host, the rule by match, a backend by
//! weight, an endpoint; forward with the hop's header rules; record the outcome.
//!
//! Failures the proxy itself produces carry `x-meshproxy-error`, saying who is to blame: no such
//! service, no matching route, a backend without endpoints, an endpoint that refused or timed out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::client::{Body, Upstreams};
use super::headers::{add_forwarded, strip_hop_by_hop};
use crate::metrics::{ProxyMetrics, RequestLabels, class_of};
use crate::routing::RequestFacts;
use crate::store::ConfigStore;

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time allowed to send a request's headers (slowloris protection).
    pub header_read_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_read_timeout: Duration::from_secs(10), max_header_bytes: 64 * 1024 }
    }
}

/// What every request shares.
pub struct Shared {
    pub store: Arc<ConfigStore>,
    pub upstreams: Upstreams,
    pub metrics: Arc<ProxyMetrics>,
    pub limits: Limits,
}

pub async fn forward(
    shared: Arc<Shared>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let loaded = shared.store.load();
    let mut labels = RequestLabels {
        service: String::new(),
        namespace: String::new(),
        route: String::new(),
        backend: String::new(),
        version: String::new(),
        code: 0,
        class: "",
    };
    let response = route_and_send(&shared, &loaded, client, request, &mut labels).await;
    let response = response.unwrap_or_else(|(code, why)| proxy_error(code, &why));
    labels.code = response.status().as_u16();
    labels.class = class_of(labels.code);
    shared.metrics.observe(labels, started.elapsed().as_secs_f64());
    Ok(response)
}

async fn route_and_send(
    shared: &Shared,
    loaded: &crate::store::Loaded,
    client: SocketAddr,
    request: Request<Incoming>,
    labels: &mut RequestLabels,
) -> Result<Response<Body>, (StatusCode, String)> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.as_str().to_string(),
        None => match request.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => host.to_string(),
            Some(Err(_)) => return Err((StatusCode::BAD_REQUEST, "the Host header is not valid text".into())),
            None => return Err((StatusCode::BAD_REQUEST, "the request names no host".into())),
        },
    };
    let Some(service) = loaded.table.service(&authority) else {
        return Err((StatusCode::NOT_FOUND, format!("no service for host {authority:?}")));
    };
    labels.service = service.name.clone();
    labels.namespace = service.namespace.clone();

    let facts = RequestFacts {
        method: request.method(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers: request.headers(),
    };
    let Some(rule) = service.rule_for(&facts) else {
        return Err((StatusCode::NOT_FOUND, format!("no route of {}/{} matches", service.namespace, service.name)));
    };
    labels.route = rule.route.clone();
    let Some(backend) = rule.pick_backend() else {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("route {} has no backend with weight", rule.route)));
    };
    labels.backend = backend.name.clone();
    let Some(endpoint) = backend.pick_endpoint() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("backend {}/{} has no endpoints", backend.namespace, backend.name),
        ));
    };
    labels.version = endpoint.version.to_string();

    let (mut parts, body) = request.into_parts();
    let incoming_version = parts.version;
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(endpoint.address.to_string())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("cannot build the upstream URI: {e}")))?;
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, client, &authority);
    // The upstream sees the host the client asked for, not the endpoint's address.
    if let Ok(host) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, host);
    }
    rule.request_headers.apply(&mut parts.headers);

    let upstream = Request::from_parts(parts, body.boxed());
    let sent = match incoming_version {
        Version::HTTP_2 => shared.upstreams.http2.request(upstream),
        _ => shared.upstreams.http1.request(upstream),
    };
    let result = match rule.timeout {
        Some(limit) => tokio::time::timeout(limit, sent)
            .await
            .map_err(|_| (StatusCode::GATEWAY_TIMEOUT, format!("route {} timed out after {limit:?}", rule.route)))?,
        None => sent.await,
    };
    let response = result.map_err(|error| upstream_error(&error, endpoint.address))?;

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rule.response_headers.apply(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// 502 when the endpoint could not be reached or broke the exchange, saying which.
fn upstream_error(error: &hyper_util::client::legacy::Error, endpoint: SocketAddr) -> (StatusCode, String) {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = format!("{cause}: {inner}");
        source = inner.source();
    }
    let what = if error.is_connect() { "connecting to" } else { "exchanging with" };
    (StatusCode::BAD_GATEWAY, format!("{what} endpoint {endpoint} failed: {cause}"))
}

fn proxy_error(code: StatusCode, why: &str) -> Response<Body> {
    tracing::debug!(%code, why, "request failed in the proxy");
    let mut response =
        Response::new(Full::new(Bytes::from(format!("meshproxy: {why}\n"))).map_err(|never| match never {}).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(why) {
        response.headers_mut().insert("x-meshproxy-error", value);
    }
    response
}
