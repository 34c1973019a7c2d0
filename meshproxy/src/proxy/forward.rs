//! One request through the proxy, its concerns in the order they act:
//!
//! 1. route (`route`): the service by host, the rule by match, a backend by weight; a redirect
//!    answers here;
//! 2. admit (`admit`): the TrafficPolicy's rate limit and injected faults, then a breaker slot;
//! 3. mirror (`mirror_task`): copies of the admitted request, to the rule's mirror backends;
//! 4. send (`send`): to an endpoint the balancer picks, retried as the policy allows;
//! 5. respond: the response header filters, and the tunnel of an upgrade;
//! 6. observe (`observe`): the request metrics and the access log.
//!
//! A request meshproxy answers itself is a `ProxyError`, which says who is to blame.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::admit;
use super::client::Body;
use super::client_body::ClientBody;
use super::error::{Blame, ProxyError};
use super::head::RequestHead;
use super::mirror::TeeBody;
use super::observe::Observation;
use super::route::{Peer, Route, Routed, route};
use super::send::{Outgoing, send, show};
use super::trace::ensure_traceparent;
use super::{Shared, mirror_task, request_checks, upgrade};
use crate::policy::roll;
use crate::store::Loaded;

pub async fn forward(
    shared: Arc<Shared>,
    client: Peer,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let loaded = shared.store.load();
    ensure_traceparent(request.headers_mut());
    let mut observation = Observation::start(client, &request, &shared.access_log);
    let http1 = request.version() == Version::HTTP_11;
    let mut client_at_fault = false;
    let mut response = match handle(&shared, &loaded, client, request, &mut observation).await {
        Ok(response) => response,
        Err(error) => {
            observation.blame = Some(error.blame);
            client_at_fault = error.blame == Blame::Client;
            error.into_response()
        }
    };
    // Shutting down: keep-alive clients are asked to reconnect, which takes them elsewhere. After
    // a malformed request nothing more on the connection can be trusted to be framed right.
    if http1 && (shared.store.is_leaving() || client_at_fault) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    observation.finish(&shared.metrics, &response);
    Ok(response)
}

async fn handle(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    client: Peer,
    mut request: Request<Incoming>,
    observation: &mut Observation,
) -> Result<Response<Body>, ProxyError> {
    request_checks::check(&mut request, shared.limits.normalize_paths)?;
    let routed = match route(loaded, client, &request, &mut observation.labels)? {
        Route::To(routed) => routed,
        Route::Redirect(response) => return Ok(response),
    };
    let policy = routed.policy();
    admit::rate_and_faults(policy).await?;

    let upgrade_protocol =
        if request.version() == Version::HTTP_11 { upgrade::requested(request.headers()) } else { None };
    let client_upgrade = upgrade_protocol.is_some().then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let is_head = parts.method == http::Method::HEAD;
    let head = RequestHead::build(parts, &routed, upgrade_protocol)?;
    let (body, client_body) = ClientBody::new(body);
    let upgrading = client_upgrade.is_some();

    let rule = routed.rule;
    let deadline = [rule.timeout, policy.and_then(|p| p.timeout)].into_iter().flatten().min();
    // The deadline covers waiting for a breaker slot too: a queued request is a slow one.
    let sending = async {
        let _slot = admit::breaker_slot(policy).await?;
        let body = mirror(shared, &routed, &head, body.boxed(), upgrading, observation);
        send(shared, routed.backend(), policy, Outgoing { head, body, client_body, upgrading }, observation).await
    };
    let response = match deadline {
        Some(limit) => tokio::time::timeout(limit, sending).await.map_err(|_| {
            ProxyError::upstream(
                StatusCode::GATEWAY_TIMEOUT,
                format!("route {} timed out after {}", rule.route, show(limit)),
            )
        })??,
        None => sending.await?,
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_none() {
        // RFC 9110 §15.2.2: a server switches only to a protocol the client asked for.
        return Err(ProxyError::upstream(
            StatusCode::BAD_GATEWAY,
            "the upstream answered 101 Switching Protocols to a request that asked for no upgrade",
        ));
    }
    Ok(respond(response, &routed, client_upgrade, is_head))
}

/// Starts the mirrors of an admitted request (an upgrade is not mirrored); returns the body to
/// send, which feeds theirs as it streams.
fn mirror(
    shared: &Arc<Shared>,
    routed: &Routed<'_>,
    head: &RequestHead,
    body: Body,
    upgrading: bool,
    observation: &Observation,
) -> Body {
    let mirrors: Vec<_> = routed
        .rule
        .filters
        .mirrors
        .iter()
        .chain(&routed.backend_ref.filters.mirrors)
        .filter(|m| roll(m.percent))
        .collect();
    if mirrors.is_empty() || upgrading {
        return body;
    }
    let mut tee = TeeBody::new(body);
    for mirror in mirrors {
        mirror_task::spawn(shared.clone(), mirror.backend.clone(), head, tee.copy(), &observation.labels);
    }
    tee.boxed()
}

/// The upstream's response as the client gets it: hop-by-hop headers out, the response filters
/// applied, an accepted upgrade joined to the client's connection, and no body for a HEAD
/// request (whatever an upstream sent: over HTTP/2 a body on HEAD makes the client reset).
fn respond(
    mut response: Response<Incoming>,
    routed: &Routed<'_>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    is_head: bool,
) -> Response<Body> {
    let upstream_upgrade =
        (response.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which must not be passed on.
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let upgraded_to = parts.headers.get(header::UPGRADE).cloned();
    super::headers::strip_hop_by_hop(&mut parts.headers);
    if let (Some(client_side), Some(upstream_side), Some(protocol)) = (client_upgrade, upstream_upgrade, upgraded_to) {
        upgrade::restore(&mut parts.headers, protocol);
        upgrade::tunnel(client_side, upstream_side);
    }
    routed.rule.filters.response_headers.apply(&mut parts.headers);
    routed.backend_ref.filters.response_headers.apply(&mut parts.headers);
    if is_head {
        return Response::from_parts(parts, http_body_util::Empty::new().map_err(|never| match never {}).boxed());
    }
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}
