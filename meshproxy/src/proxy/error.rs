//! A request meshproxy answers itself, and who is to blame for it. The blame decides the status
//! code, the `x-meshproxy-error` text, the access log's `error` and the `blame` label on the
//! request metrics, which the canary analysis reads: only what the upstream did may count against
//! a version, so a hostile client or the proxy's own policy never rolls back a healthy canary.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::client::Body;

/// Who caused a request to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// A request the proxy cannot forward: malformed, over a limit, a body that broke off.
    Client,
    /// The proxy's routing or a TrafficPolicy acting as configured: no route, a rate limit, an open
    /// circuit breaker.
    Policy,
    /// A fault a TrafficPolicy injected. Counted as the upstream's, since that is what it simulates.
    Fault,
    /// The upstream: no endpoint to send to, a refused connection, a reset, a timeout, a response
    /// that is not HTTP.
    Upstream,
}

impl Blame {
    /// The value of the `blame` metrics label (empty on responses the upstream gave).
    pub fn label(self) -> &'static str {
        match self {
            Blame::Client => "client",
            Blame::Policy => "policy",
            Blame::Fault => "fault",
            Blame::Upstream => "upstream",
        }
    }
}

/// A request meshproxy answers itself: its status, who is to blame, and why.
#[derive(Debug)]
pub struct ProxyError {
    pub status: StatusCode,
    pub blame: Blame,
    pub message: String,
}

impl ProxyError {
    pub fn client(status: StatusCode, message: impl Into<String>) -> ProxyError {
        ProxyError { status, blame: Blame::Client, message: message.into() }
    }

    pub fn policy(status: StatusCode, message: impl Into<String>) -> ProxyError {
        ProxyError { status, blame: Blame::Policy, message: message.into() }
    }

    pub fn fault(status: StatusCode, message: impl Into<String>) -> ProxyError {
        ProxyError { status, blame: Blame::Fault, message: message.into() }
    }

    pub fn upstream(status: StatusCode, message: impl Into<String>) -> ProxyError {
        ProxyError { status, blame: Blame::Upstream, message: message.into() }
    }

    /// `x-meshproxy-error`: the blame, then why.
    pub fn header_text(&self) -> String {
        format!("{}: {}", self.blame.label(), self.message)
    }

    /// The response the client gets: the status, the reason in `x-meshproxy-error` and as the
    /// body.
    pub fn into_response(self) -> Response<Body> {
        let text = self.header_text();
        tracing::debug!(code = %self.status, blame = self.blame.label(), why = %self.message, "request failed in the proxy");
        let body = Full::new(Bytes::from(format!("meshproxy: {text}\n"))).map_err(|never| match never {}).boxed();
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().insert("x-meshproxy-error", value);
        }
        response
    }
}
