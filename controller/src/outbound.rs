//! The controller's HTTP client for everything it calls out to: Prometheus, webhooks, alert
//! receivers and meshproxy's admin API. One pooled reqwest client per TLS mode, TLS from rustls
//! with ring, a deadline on every call (connect, headers and body together), a cap on response
//! bodies, and errors that name the URL.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Largest response body read; a larger one is an error rather than unbounded memory.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A pooled HTTP(S) client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound(Arc<Clients>);

struct Clients {
    verified: reqwest::Client,
    /// For `insecureSkipVerify` / `disableTLS`: accepts any server certificate.
    unverified: reqwest::Client,
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text for messages, cut at `limit` characters.
    pub fn body_excerpt(&self, limit: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(limit) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_string(),
        }
    }
}

/// Why a call got no usable response. Each names the URL (without its query string).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{url}: no response within {}", serin_crds::duration::format(*after))]
    Timeout { url: String, after: Duration },
    /// Nothing listens at the address.
    #[error("{url}: {reason}")]
    Refused { url: String, reason: String },
    /// The TLS handshake failed, most often on the server's certificate.
    #[error("{url}: {reason}")]
    Tls { url: String, reason: String },
    /// No connection for another reason: the name does not resolve, the network is unreachable...
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Connected, but the exchange broke off.
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: the response body is over {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The request itself cannot be sent, e.g. its URL is not absolute.
    #[error("{url}: {reason}")]
    BadRequest { url: String, reason: String },
}

impl OutboundError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OutboundError::Timeout { .. } => "timeout",
            OutboundError::Refused { .. } => "refused",
            OutboundError::Tls { .. } => "tls",
            OutboundError::Unreachable { .. } => "unreachable",
            OutboundError::Failed { .. } => "failed",
            OutboundError::TooLarge { .. } => "too_large",
            OutboundError::BadRequest { .. } => "bad_request",
        }
    }
}

/// `text` for messages when it may hold a password: the userinfo is replaced by `***`.
pub fn without_credentials(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_string() };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..scheme_end + 3], &rest[at..]),
        None => text.to_string(),
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbound {
    pub fn new() -> Outbound {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates only mean fewer trusted roots; calls to such servers then
        // fail with a certificate error that says so.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let mut verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        // reqwest leaves ALPN to a preconfigured TLS config: offer HTTP/2 and HTTP/1.1.
        for config in [&mut verified, &mut unverified] {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        let direct = |tls: &rustls::ClientConfig| {
            // No proxy, not even one from the environment: calls go where their URL says.
            builder(tls.clone()).no_proxy().build().expect("a client from a rustls config")
        };
        Outbound(Arc::new(Clients { verified: direct(&verified), unverified: direct(&unverified) }))
    }

    /// Sends `request` and reads the whole response, all within `timeout`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        skip_tls_verify: bool,
    ) -> Result<Reply, OutboundError> {
        let client = if skip_tls_verify { &self.0.unverified } else { &self.0.verified };
        execute(client, request, timeout).await
    }
}

fn builder(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        // A redirect is the answer: a webhook or Prometheus that redirects is misconfigured, and
        // following a POST's redirect would change what is sent.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
}

async fn execute(
    client: &reqwest::Client,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Reply, OutboundError> {
    let url = redacted(request.uri());
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await;
    let request = reqwest::Request::try_from(Request::from_parts(parts, body.to_bytes()))
        .map_err(|e| OutboundError::BadRequest { url: url.clone(), reason: error_chain(&e.without_url()) })?;
    let call = async {
        let mut response = client.execute(request).await.map_err(|e| classify(&url, e))?;
        let status = response.status();
        if response.content_length().is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
            return Err(OutboundError::TooLarge { url: url.clone(), limit: MAX_RESPONSE_BYTES });
        }
        let headers = response.headers().clone();
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| OutboundError::Failed {
            url: url.clone(),
            reason: format!("reading the response: {}", error_chain(&e.without_url())),
        })? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OutboundError::TooLarge { url: url.clone(), limit: MAX_RESPONSE_BYTES });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body: body.freeze() })
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(OutboundError::Timeout { url, after: timeout }),
    }
}

fn classify(url: &str, error: reqwest::Error) -> OutboundError {
    let connect = error.is_connect();
    let error = error.without_url();
    let reason = error_chain(&error);
    let url = url.to_string();
    if !connect {
        return OutboundError::Failed { url, reason };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return OutboundError::Refused { url, reason };
            }
            // rustls' errors reach here inside an io::Error, whose `source` skips them.
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return OutboundError::Tls { url, reason };
            }
        }
        if cause.is::<rustls::Error>() {
            return OutboundError::Tls { url, reason };
        }
        source = cause.source();
    }
    OutboundError::Unreachable { url, reason }
}

/// A URL for messages: without its query string (which may carry a token) or credentials.
pub fn display_url(text: &str) -> String {
    match text.parse::<http::Uri>() {
        Ok(uri) if uri.scheme().is_some() => redacted(&uri),
        _ => without_credentials(text.split(['?', '#']).next().unwrap_or_default()),
    }
}

/// The URL without its query string (which may carry a token) for messages.
fn redacted(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            format!("{scheme}://{}{}", without_credentials_in_authority(authority.as_str()), uri.path())
        }
        _ => uri.path().to_string(),
    }
}

fn without_credentials_in_authority(authority: &str) -> &str {
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

/// An error and its causes on one line: a client's own message alone is often just "client error".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `insecureSkipVerify`: the handshake still runs (and is encrypted), but any certificate is taken.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_message() {
        assert_eq!(without_credentials("http://user:secret@127.0.0.1:3128"), "http://***@127.0.0.1:3128");
        assert_eq!(without_credentials("http://127.0.0.1:3128/a@b"), "http://127.0.0.1:3128/a@b");
        assert_eq!(without_credentials("not a url"), "not a url");
        let uri: http::Uri = "http://user:secret@127.0.0.1:8080/hook?token=x".parse().unwrap();
        assert_eq!(redacted(&uri), "http://127.0.0.1:8080/hook");
        assert_eq!(display_url("https://hooks.example/T0/B0?token=x"), "https://hooks.example/T0/B0");
        assert_eq!(display_url("not a url?token=x"), "not a url");
    }
}
