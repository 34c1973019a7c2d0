//! One request through the proxy: find the service by host, the rule by match, a backend by
//! weight; apply the rule's filters and the TrafficPolicy's gates (rate limit, faults, breaker);
//! send it to an endpoint picked by the load balancer, retrying as the policy allows; record the
//! outcome.
//!
//! Failures the proxy itself produces carry `x-meshproxy-error`, saying who is to blame: no such
//! service, no matching route, a backend without endpoints, an endpoint that refused or timed out,
//! a policy that shed or failed the request on purpose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::client::Body;
use super::headers::{add_forwarded, strip_hop_by_hop};
use super::mirror::TeeBody;
use super::replay::ReplayBody;
use super::trace::{ensure_traceparent, trace_id};
use super::{Shared, mirror_task, upgrade};
use crate::access_log::{AccessEntry, AccessLog};
use crate::metrics::{RequestLabels, class_of};
use crate::policy::{AttemptOutcome, RetryRule, ServicePolicy, roll};
use crate::routing::{Backend, BackendEndpoint, RequestFacts};
use crate::store::Loaded;
use serin_crds::traffic_policy::LoadBalancerAlgorithm;

/// A request the proxy answers itself: the status, and why (sent in `x-meshproxy-error`).
type Failure = (StatusCode, String);

/// What became of a request, for metrics and the access log.
pub(super) struct Exchange {
    pub labels: RequestLabels,
    pub endpoint: Option<SocketAddr>,
    pub attempts: u32,
}

/// The parts of a request every attempt and mirror sends again.
#[derive(Clone)]
pub(super) struct RequestHead {
    pub method: Method,
    pub version: Version,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
}

impl RequestHead {
    /// A request to `endpoint` with a copy of this head.
    pub fn to(&self, endpoint: &BackendEndpoint, body: Body) -> Result<Request<Body>, Failure> {
        self.clone().into_request(endpoint, body)
    }

    /// The request to `endpoint`, using up the head (for the last attempt, saving a copy).
    pub fn into_request(self, endpoint: &BackendEndpoint, body: Body) -> Result<Request<Body>, Failure> {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(endpoint.authority.clone())
            .path_and_query(self.path_and_query)
            .build()
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("cannot build the upstream URI: {e}")))?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// How a client reached the proxy: its address, and whether over TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub address: SocketAddr,
    pub tls: bool,
}

impl Peer {
    fn scheme(self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

pub async fn forward(
    shared: Arc<Shared>,
    client: Peer,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let loaded = shared.store.load();
    ensure_traceparent(request.headers_mut());
    let logged = shared.access_log.wants().then(|| {
        (
            trace_id(request.headers()).to_string(),
            request.method().to_string(),
            authority_of(&request).unwrap_or_default(),
            request.uri().path().to_string(),
            format!("{:?}", request.version()),
        )
    });
    let mut exchange = Exchange { labels: RequestLabels::default(), endpoint: None, attempts: 0 };
    let http1 = request.version() == Version::HTTP_11;
    let response = route_and_send(&shared, &loaded, client, request, &mut exchange).await;
    let mut response = response.unwrap_or_else(|(code, why)| proxy_error(code, &why));
    // Shutting down: keep-alive clients are asked to reconnect, which takes them elsewhere.
    if http1 && shared.store.is_leaving() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    exchange.labels.code = response.status().as_u16();
    exchange.labels.class = class_of(exchange.labels.code);
    let elapsed = started.elapsed();
    if let Some((trace_id, method, authority, path, protocol)) = &logged {
        let labels = &exchange.labels;
        AccessLog::write(&AccessEntry {
            time: jiff::Timestamp::now().to_string(),
            client: client.address.to_string(),
            method,
            authority,
            path,
            protocol,
            status: labels.code,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            service: &labels.service,
            namespace: &labels.namespace,
            route: &labels.route,
            backend: &labels.backend,
            version: &labels.version,
            endpoint: exchange.endpoint.map(|e| e.to_string()),
            attempts: exchange.attempts,
            trace_id,
            error: response.headers().get("x-meshproxy-error").and_then(|v| v.to_str().ok()),
        });
    }
    shared.metrics.observe(exchange.labels, elapsed.as_secs_f64());
    Ok(response)
}

fn authority_of<B>(request: &Request<B>) -> Result<String, Failure> {
    match request.uri().authority() {
        Some(authority) => Ok(authority.as_str().to_string()),
        None => match request.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => Ok(host.to_string()),
            Some(Err(_)) => Err((StatusCode::BAD_REQUEST, "the Host header is not valid text".into())),
            None => Err((StatusCode::BAD_REQUEST, "the request names no host".into())),
        },
    }
}

async fn route_and_send(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    client: Peer,
    mut request: Request<Incoming>,
    exchange: &mut Exchange,
) -> Result<Response<Body>, Failure> {
    let authority = authority_of(&request)?;
    let Some(service) = loaded.table.service(&authority) else {
        return Err((StatusCode::NOT_FOUND, format!("no service for host {authority:?}")));
    };
    exchange.labels.service = service.name.clone();
    exchange.labels.namespace = service.namespace.clone();

    let facts = RequestFacts {
        method: request.method(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers: request.headers(),
    };
    let Some((matched, rule)) = service.rule_for(&facts) else {
        return Err((StatusCode::NOT_FOUND, format!("no route of {}/{} matches", service.namespace, service.name)));
    };
    exchange.labels.route = rule.route.clone();
    let matched_prefix = matched.matched_prefix();
    // A redirecting rule needs no backend.
    if let Some(redirect) = &rule.filters.redirect {
        let uri = request.uri();
        let location = redirect.location(client.scheme(), &authority, uri.path(), uri.query(), matched_prefix);
        return Ok(redirect_response(redirect.status, &location));
    }
    let Some(backend) = rule.pick_backend() else {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("route {} has no backend with weight", rule.route)));
    };
    exchange.labels.backend = backend.name.clone();
    if let Some(redirect) = &backend.filters.redirect {
        let uri = request.uri();
        let location = redirect.location(client.scheme(), &authority, uri.path(), uri.query(), matched_prefix);
        return Ok(redirect_response(redirect.status, &location));
    }

    let policy = backend.policy.as_deref().or(service.policy.as_deref());
    if let Some(policy) = policy {
        admit(policy).await?;
    }

    let upgrade_protocol =
        if request.version() == Version::HTTP_11 { upgrade::requested(request.headers()) } else { None };
    let client_upgrade = upgrade_protocol.is_some().then(|| hyper::upgrade::on(&mut request));

    let (parts, body) = request.into_parts();
    let mut path_and_query = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut host = None;
    for rewrite in [&rule.filters.rewrite, &backend.filters.rewrite].into_iter().flatten() {
        if let Some(hostname) = &rewrite.hostname {
            host = Some(hostname.clone());
        }
        if let Some(change) = &rewrite.path {
            let path = change.apply(parts.uri.path(), matched_prefix);
            let rewritten = match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            path_and_query = rewritten
                .parse()
                .map_err(|_| (StatusCode::BAD_REQUEST, format!("the rewritten path {rewritten:?} is not valid")))?;
        }
    }
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    add_forwarded(&mut headers, client.address, &authority, client.scheme());
    // The upstream sees the host the client asked for (or the rewrite's), not the endpoint's
    // address. An HTTP/1.1 client's Host header is already there and is kept as it is.
    let host = match host {
        Some(host) => Some(host),
        None if headers.contains_key(header::HOST) => None,
        None => Some(authority.clone()),
    };
    if let Some(host) = host {
        let value = HeaderValue::from_str(&host)
            .map_err(|_| (StatusCode::BAD_REQUEST, format!("{host:?} is not a valid Host header value")))?;
        headers.insert(header::HOST, value);
    }
    rule.filters.request_headers.apply(&mut headers);
    backend.filters.request_headers.apply(&mut headers);
    if let Some(protocol) = upgrade_protocol {
        upgrade::restore(&mut headers, protocol);
    }
    let head = RequestHead { method: parts.method, version: parts.version, path_and_query, headers };

    let mut body: Body = body.map_err(Into::into).boxed();
    let mirrors: Vec<_> =
        rule.filters.mirrors.iter().chain(&backend.filters.mirrors).filter(|m| roll(m.percent)).collect();
    if !mirrors.is_empty() && client_upgrade.is_none() {
        let mut tee = TeeBody::new(body);
        for mirror in mirrors {
            mirror_task::spawn(shared.clone(), mirror.backend.clone(), &head, tee.copy(), &exchange.labels);
        }
        body = tee.boxed();
    }

    let deadline = [rule.timeout, policy.and_then(|p| p.timeout)].into_iter().flatten().min();
    let sending = send(shared, backend, policy, head, body, exchange, client_upgrade.is_some());
    let mut response = match deadline {
        Some(limit) => tokio::time::timeout(limit, sending).await.map_err(|_| {
            (StatusCode::GATEWAY_TIMEOUT, format!("route {} timed out after {}", rule.route, show(limit)))
        })??,
        None => sending.await?,
    };

    let upstream_upgrade =
        (response.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    let upgraded_to = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let (Some(client_side), Some(upstream_side), Some(protocol)) = (client_upgrade, upstream_upgrade, upgraded_to) {
        upgrade::restore(&mut parts.headers, protocol);
        upgrade::tunnel(client_side, upstream_side);
    }
    rule.filters.response_headers.apply(&mut parts.headers);
    backend.filters.response_headers.apply(&mut parts.headers);
    Ok(Response::from_parts(parts, body.map_err(Into::into).boxed()))
}

/// The policy's gates before anything is sent: rate limit, then injected faults.
async fn admit(policy: &ServicePolicy) -> Result<(), Failure> {
    if let Some(limit) = policy.rate_limit
        && !policy.state.bucket.try_take(limit)
    {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit of {} ({} requests/s) exceeded", policy.object, limit.per_second),
        ));
    }
    if let Some(wait) = policy.fault.delay() {
        tokio::time::sleep(wait).await;
    }
    if let Some(status) = policy.fault.abort() {
        return Err((status, format!("fault injected by {}", policy.object)));
    }
    Ok(())
}

/// Sends the request to the backend through the breaker, one attempt per endpoint pick, as many
/// attempts as the retry policy allows and the body can be replayed.
async fn send(
    shared: &Shared,
    backend: &Backend,
    policy: Option<&ServicePolicy>,
    head: RequestHead,
    body: Body,
    exchange: &mut Exchange,
    upgrading: bool,
) -> Result<Response<Incoming>, Failure> {
    let _slot = match policy.and_then(|p| p.breaker.as_ref().map(|b| (p, b))) {
        Some((policy, breaker)) => Some(breaker.enter().await.map_err(|shed| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "circuit breaker of {} is open: {} requests at the endpoints, {} waiting",
                    policy.object, shed.active, shed.pending
                ),
            )
        })?),
        None => None,
    };
    let algorithm = policy.map(|p| p.balancer).unwrap_or_default();
    // A connect failure means nothing reached the endpoint. A request without a body then goes
    // once more, to another endpoint, whatever the retry policy says (Istio retries connect
    // failures by default): an endpoint that is going away must not fail a request.
    let reconnect = !upgrading && body.is_end_stream() && backend.endpoints.len() > 1;
    let mut reconnects_left = u32::from(reconnect);
    let mut refused: Option<SocketAddr> = None;
    let retry = policy.and_then(|p| p.retry.as_ref()).filter(|_| !upgrading);
    let attempts = retry.map_or(1, |r| r.attempts);
    let per_try_timeout = retry.and_then(|r| r.per_try_timeout);
    let outlier = policy.and_then(|p| p.outlier.as_ref());
    let (mut single, replay) = if attempts > 1 { (None, Some(ReplayBody::new(body))) } else { (Some(body), None) };
    let client = if head.version == Version::HTTP_2 { &shared.upstreams.http2 } else { &shared.upstreams.http1 };

    let mut head = Some(head);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(endpoint) = pick_endpoint_but(backend, algorithm, refused) else {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("backend {}/{} has no endpoints", backend.namespace, backend.name),
            ));
        };
        exchange.labels.version = endpoint.version.clone();
        exchange.endpoint = Some(endpoint.address);
        exchange.attempts = attempt;
        let body = match (single.take(), &replay) {
            (Some(body), _) => body,
            (None, Some(replay)) => match replay.next_attempt() {
                Some(body) => body.boxed(),
                None => {
                    return Err((
                        StatusCode::BAD_GATEWAY,
                        "the request failed and could not be retried: its body outgrew the replay buffer".into(),
                    ));
                }
            },
            (None, None) if reconnect => empty_body(),
            (None, None) => unreachable!("a request without replay is sent once, or again only when it has no body"),
        };
        let request = if attempt >= attempts && reconnects_left == 0 {
            head.take().expect("the head is kept until the last attempt").into_request(endpoint, body)?
        } else {
            head.as_ref().expect("the head is kept until the last attempt").to(endpoint, body)?
        };

        let in_flight = endpoint.state.load.start();
        let started = Instant::now();
        let result = match per_try_timeout {
            Some(limit) => tokio::time::timeout(limit, client.request(request)).await.ok(),
            None => Some(client.request(request).await),
        };
        drop(in_flight);
        let outcome = match &result {
            Some(Ok(response)) => AttemptOutcome::Status(response.status().as_u16()),
            Some(Err(error)) if error.is_connect() => AttemptOutcome::ConnectFailure,
            Some(Err(_)) => AttemptOutcome::Reset,
            None => AttemptOutcome::PerTryTimeout,
        };
        if outcome != AttemptOutcome::ConnectFailure {
            endpoint.state.load.observe(started.elapsed());
        }
        if let Some(rule) = outlier {
            let budget = rule.max_ejected(backend.endpoints.len());
            if let Some(time) =
                endpoint.state.health.record(outcome.is_endpoint_failure(), rule, || backend.ejected() < budget)
            {
                tracing::warn!(
                    endpoint = %endpoint.address,
                    backend = %format!("{}/{}", backend.namespace, backend.name),
                    ejected_for = %show(time),
                    "endpoint ejected after consecutive failures"
                );
            }
        }

        let may_retry = attempt < attempts
            && retry.is_some_and(|r| r.retries(outcome))
            && replay.as_ref().is_some_and(ReplayBody::replayable);
        if may_retry {
            shared.metrics.retried(&exchange.labels);
            tokio::time::sleep(RetryRule::backoff(attempt)).await;
            continue;
        }
        if outcome == AttemptOutcome::ConnectFailure && reconnects_left > 0 {
            reconnects_left -= 1;
            refused = Some(endpoint.address);
            shared.metrics.retried(&exchange.labels);
            continue;
        }
        return match result {
            Some(Ok(response)) => Ok(response),
            Some(Err(error)) => Err(upstream_error(&error, endpoint.address, attempt)),
            None => Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "endpoint {} did not answer within the per-try timeout of {} (attempt {attempt} of {attempts})",
                    endpoint.address,
                    show(per_try_timeout.unwrap_or_default())
                ),
            )),
        };
    }
}

/// An endpoint picked by the balancer, other than `avoid` when the backend has another (a few
/// picks, since the balancer is random).
fn pick_endpoint_but(
    backend: &Backend,
    algorithm: LoadBalancerAlgorithm,
    avoid: Option<SocketAddr>,
) -> Option<&BackendEndpoint> {
    let mut picked = backend.pick_endpoint(algorithm)?;
    for _ in 0..4 {
        if Some(picked.address) != avoid {
            break;
        }
        picked = backend.pick_endpoint(algorithm)?;
    }
    if Some(picked.address) == avoid {
        picked = backend.endpoints.iter().find(|e| Some(e.address) != avoid).unwrap_or(picked);
    }
    Some(picked)
}

fn empty_body() -> Body {
    http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

fn show(duration: Duration) -> String {
    serin_crds::duration::format(duration)
}

/// 502 when the endpoint could not be reached or broke the exchange, saying which.
fn upstream_error(error: &hyper_util::client::legacy::Error, endpoint: SocketAddr, attempt: u32) -> Failure {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = format!("{cause}: {inner}");
        source = inner.source();
    }
    let what = if error.is_connect() { "connecting to" } else { "exchanging with" };
    let attempts = if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
    (StatusCode::BAD_GATEWAY, format!("{what} endpoint {endpoint} failed{attempts}: {cause}"))
}

fn redirect_response(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
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
