//! The head of the request meshproxy sends upstream: the client's, with the route's URL rewrite
//! and header filters applied, hop-by-hop headers removed and `Forwarded` added. Every attempt and
//! every mirror sends a copy of it.

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use serin_meshproxy_api::config::UpstreamProtocol;

use super::client::Body;
use super::error::ProxyError;
use super::headers::{add_forwarded, strip_hop_by_hop};
use super::route::Routed;
use super::upgrade;
use crate::routing::BackendEndpoint;

/// The parts of a request every attempt and mirror sends again.
#[derive(Clone)]
pub struct RequestHead {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
}

impl RequestHead {
    /// The head to send for the client's `parts`, routed as `routed`. `upgrade` is the protocol
    /// the client asks to upgrade to, kept through hop-by-hop stripping.
    pub fn build(
        parts: http::request::Parts,
        routed: &Routed<'_>,
        upgrade: Option<HeaderValue>,
    ) -> Result<RequestHead, ProxyError> {
        let (rule, backend_ref) = (routed.rule, routed.backend_ref);
        let mut path_and_query = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut host = None;
        for rewrite in [&rule.filters.rewrite, &backend_ref.filters.rewrite].into_iter().flatten() {
            if let Some(hostname) = &rewrite.hostname {
                host = Some(hostname.clone());
            }
            if let Some(change) = &rewrite.path {
                let path = change.apply(parts.uri.path(), routed.matched_prefix);
                let rewritten = match parts.uri.query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
                path_and_query = rewritten.parse().map_err(|_| {
                    ProxyError::client(
                        StatusCode::BAD_REQUEST,
                        format!("the rewritten path {rewritten:?} is not valid"),
                    )
                })?;
            }
        }
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        add_forwarded(&mut headers, routed.client.address, &routed.authority, routed.client.scheme());
        // The upstream sees the host the client asked for (or the rewrite's), not the endpoint's
        // address. An HTTP/1.1 client's Host header is already there and is kept as it is.
        let host = match host {
            Some(host) => Some(host),
            None if headers.contains_key(header::HOST) => None,
            None => Some(routed.authority.clone()),
        };
        if let Some(host) = host {
            let value = HeaderValue::from_str(&host).map_err(|_| {
                ProxyError::client(StatusCode::BAD_REQUEST, format!("{host:?} is not a valid Host header value"))
            })?;
            headers.insert(header::HOST, value);
        }
        rule.filters.request_headers.apply(&mut headers);
        backend_ref.filters.request_headers.apply(&mut headers);
        if let Some(protocol) = upgrade {
            upgrade::restore(&mut headers, protocol);
        }
        Ok(RequestHead { method: parts.method, path_and_query, headers })
    }

    /// A request to `endpoint` with a copy of this head.
    pub fn to(&self, endpoint: &BackendEndpoint, body: Body) -> Result<Request<Body>, ProxyError> {
        self.clone().into_request(endpoint, body)
    }

    /// The request to `endpoint`, using up the head (for the last attempt, saving a copy), in the
    /// protocol the endpoint speaks, whatever the client spoke; an upgrade stays HTTP/1.1.
    pub fn into_request(self, endpoint: &BackendEndpoint, body: Body) -> Result<Request<Body>, ProxyError> {
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(endpoint.authority.clone())
            .path_and_query(self.path_and_query)
            .build()
            .map_err(|e| ProxyError::client(StatusCode::BAD_REQUEST, format!("cannot build the upstream URI: {e}")))?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = upstream_version(endpoint.protocol, &self.headers);
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// The HTTP version to speak to an endpoint of `protocol`: HTTP/1.1 for an upgrade (which HTTP/2
/// cannot carry), else what the endpoint speaks.
pub fn upstream_version(protocol: UpstreamProtocol, headers: &HeaderMap) -> Version {
    match protocol {
        UpstreamProtocol::H2c if upgrade::requested(headers).is_none() => Version::HTTP_2,
        _ => Version::HTTP_11,
    }
}
