//! Sending an admitted request to its backend: one attempt per endpoint the balancer picks, as
//! many attempts as the retry rule allows and the body can be replayed, each outcome fed to the
//! endpoint's latency estimate and outlier health.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serin_crds::traffic_policy::LoadBalancerAlgorithm;
use serin_meshproxy_api::config::UpstreamProtocol;

use super::Shared;
use super::client::Body;
use super::client_body::BodyBreak;
use super::error::ProxyError;
use super::head::RequestHead;
use super::observe::Observation;
use super::protocol_probe;
use super::replay::ReplayBody;
use crate::policy::{AttemptOutcome, RetryRule, ServicePolicy};
use crate::routing::{Backend, BackendEndpoint};

/// One request to send: its head and body, and where the client's body may have broken off.
pub struct Outgoing {
    pub head: RequestHead,
    pub body: Body,
    pub client_body: BodyBreak,
    /// An upgrade (WebSocket) is sent once: its body is the tunnel to come.
    pub upgrading: bool,
}

pub async fn send(
    shared: &Shared,
    backend: &Backend,
    policy: Option<&ServicePolicy>,
    outgoing: Outgoing,
    observation: &mut Observation,
) -> Result<http::Response<Incoming>, ProxyError> {
    let Outgoing { head, body, client_body, upgrading } = outgoing;
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

    let mut head = Some(head);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(endpoint) = pick_endpoint_but(backend, algorithm, refused) else {
            return Err(ProxyError::upstream(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("backend {}/{} has no endpoints", backend.namespace, backend.name),
            ));
        };
        observation.labels.version = endpoint.version.clone();
        observation.endpoint = Some(endpoint.address);
        observation.attempts = attempt;
        let body = match (single.take(), &replay) {
            (Some(body), _) => body,
            (None, Some(replay)) => match replay.next_attempt() {
                Some(body) => body.boxed(),
                None => {
                    return Err(ProxyError::upstream(
                        StatusCode::BAD_GATEWAY,
                        "the request failed and could not be retried: its body outgrew the replay buffer",
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
        let client = shared.upstreams.for_version(request.version());

        let in_flight = endpoint.state.load.start();
        let started = Instant::now();
        let result = match per_try_timeout {
            Some(limit) => tokio::time::timeout(limit, client.request(request)).await.ok(),
            None => Some(client.request(request).await),
        };
        drop(in_flight);
        // The client's body broke off: nothing the endpoint did, so not its health nor a retry.
        if let (Some(Err(_)), Some(why)) = (&result, client_body.reason()) {
            return Err(ProxyError::client(StatusCode::BAD_REQUEST, format!("the request body broke off: {why}")));
        }
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
            shared.metrics.retried(&observation.labels);
            tokio::time::sleep(RetryRule::backoff(attempt)).await;
            continue;
        }
        if outcome == AttemptOutcome::ConnectFailure && reconnects_left > 0 {
            reconnects_left -= 1;
            refused = Some(endpoint.address);
            shared.metrics.retried(&observation.labels);
            continue;
        }
        return match result {
            Some(Ok(response)) => Ok(response),
            Some(Err(error)) => Err(upstream_error(&error, endpoint, attempt).await),
            None => Err(ProxyError::upstream(
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

pub fn show(duration: Duration) -> String {
    serin_crds::duration::format(duration)
}

/// 502 when the endpoint could not be reached or broke the exchange, saying which. An endpoint
/// spoken to in HTTP/2 that turns out to speak only HTTP/1.1 is the config's doing (its
/// `appProtocol`), not the endpoint's: blamed on the policy, so it never counts against the version.
async fn upstream_error(
    error: &hyper_util::client::legacy::Error,
    endpoint: &BackendEndpoint,
    attempt: u32,
) -> ProxyError {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = format!("{cause}: {inner}");
        source = inner.source();
    }
    let address = endpoint.address;
    if endpoint.protocol == UpstreamProtocol::H2c
        && !error.is_connect()
        && protocol_probe::answers_in_http1(address).await
    {
        return ProxyError::policy(
            StatusCode::BAD_GATEWAY,
            format!(
                "endpoint {address} does not speak HTTP/2 (h2c), though its appProtocol says it does (it answers in HTTP/1.1); set the Service port's appProtocol to http: {cause}"
            ),
        );
    }
    let what = if error.is_connect() { "connecting to" } else { "exchanging with" };
    let attempts = if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
    ProxyError::upstream(StatusCode::BAD_GATEWAY, format!("{what} endpoint {address} failed{attempts}: {cause}"))
}
