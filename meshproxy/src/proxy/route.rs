//! Routing one request: the service by host, the rule by Gateway API precedence, a backend by
//! weight. A redirecting rule or backendRef answers here, before any backend is involved.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::client::Body;
use super::error::ProxyError;
use crate::metrics::RequestLabels;
use crate::policy::ServicePolicy;
use crate::routing::{Backend, BackendRef, RequestFacts, Rule, ServiceEntry};
use crate::store::Loaded;

/// How a client reached the proxy: its address, and whether over TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub address: std::net::SocketAddr,
    pub tls: bool,
}

impl Peer {
    pub fn scheme(self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// Where a request goes.
pub struct Routed<'a> {
    pub client: Peer,
    /// The host the client asked for.
    pub authority: String,
    pub service: &'a ServiceEntry,
    pub rule: &'a Rule,
    /// The backend picked by weight, with the filters of its `backendRef`.
    pub backend_ref: &'a BackendRef,
    /// The prefix a PathPrefix match matched, for prefix rewrites.
    pub matched_prefix: Option<&'a str>,
}

impl Routed<'_> {
    pub fn backend(&self) -> &Backend {
        &self.backend_ref.backend
    }

    /// The TrafficPolicy of the backend's Service, else of the addressed Service.
    pub fn policy(&self) -> Option<&ServicePolicy> {
        self.backend().policy.as_deref().or(self.service.policy.as_deref())
    }
}

/// Where a request goes, or the redirect that answers it.
pub enum Route<'a> {
    To(Routed<'a>),
    Redirect(Response<Body>),
}

/// Routes `request` in `loaded`'s table, naming service, route and backend in `labels` as they
/// are found (so an error names as much as is known).
pub fn route<'a, B>(
    loaded: &'a Loaded,
    client: Peer,
    request: &Request<B>,
    labels: &mut RequestLabels,
) -> Result<Route<'a>, ProxyError> {
    let authority = authority_of(request)?;
    let Some(service) = loaded.table.service(&authority) else {
        return Err(ProxyError::policy(StatusCode::NOT_FOUND, format!("no service for host {authority:?}")));
    };
    labels.service = service.name.clone();
    labels.namespace = service.namespace.clone();
    // `OPTIONS *` asks about the server as a whole: routed as a request for `/`, sent on as `*`.
    let path = match request.uri().path() {
        "*" => "/",
        path => path,
    };
    let facts =
        RequestFacts { method: request.method(), path, query: request.uri().query(), headers: request.headers() };
    let Some((matched, rule)) = service.rule_for(&facts) else {
        return Err(ProxyError::policy(
            StatusCode::NOT_FOUND,
            format!("no route of {}/{} matches", service.namespace, service.name),
        ));
    };
    labels.route = rule.route.clone();
    let matched_prefix = matched.matched_prefix();
    let uri = request.uri();
    if let Some(redirect) = &rule.filters.redirect {
        let location = redirect.location(client.scheme(), &authority, uri.path(), uri.query(), matched_prefix);
        return Ok(Route::Redirect(redirect_response(redirect.status, &location)));
    }
    let Some(backend_ref) = rule.pick_backend() else {
        return Err(ProxyError::policy(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("route {} has no backend with weight", rule.route),
        ));
    };
    labels.backend = backend_ref.backend.name.clone();
    if let Some(redirect) = &backend_ref.filters.redirect {
        let location = redirect.location(client.scheme(), &authority, uri.path(), uri.query(), matched_prefix);
        return Ok(Route::Redirect(redirect_response(redirect.status, &location)));
    }
    Ok(Route::To(Routed { client, authority, service, rule, backend_ref, matched_prefix }))
}

/// The host a request is for: the authority of an absolute-form target, else the Host header.
pub fn authority_of<B>(request: &Request<B>) -> Result<String, ProxyError> {
    match request.uri().authority() {
        Some(authority) => Ok(authority.as_str().to_string()),
        None => match request.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => Ok(host.to_string()),
            Some(Err(_)) => Err(ProxyError::client(StatusCode::BAD_REQUEST, "the Host header is not valid text")),
            None => Err(ProxyError::client(StatusCode::BAD_REQUEST, "the request names no host")),
        },
    }
}

fn redirect_response(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    let value = HeaderValue::from_str(&ascii_uri(location)).expect("an ASCII URI is a valid header value");
    response.headers_mut().insert(header::LOCATION, value);
    response
}

/// `location` with every byte a URI cannot hold (outside ASCII, controls, space) percent-encoded:
/// a query is passed on as the client sent it, and a client may send raw UTF-8.
fn ascii_uri(location: &str) -> std::borrow::Cow<'_, str> {
    if location.bytes().all(|b| b.is_ascii_graphic()) {
        return location.into();
    }
    let mut encoded = String::with_capacity(location.len() + 16);
    for byte in location.bytes() {
        if byte.is_ascii_graphic() {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_to_a_path_with_raw_utf8_still_says_where() {
        let response = redirect_response(StatusCode::MOVED_PERMANENTLY, "https://app.test/caf\u{e9}?q=a b");
        assert_eq!(response.headers()[header::LOCATION], "https://app.test/caf%C3%A9?q=a%20b");
        assert!(matches!(ascii_uri("https://app.test/plain?q=1"), std::borrow::Cow::Borrowed(_)));
    }
}
