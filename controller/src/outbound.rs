//! The controller's HTTP client for everything it calls out to: Prometheus, webhooks, alert
//! receivers and meshproxy's admin API. One pooled client per TLS mode, a deadline on every call
//! (connect, headers and body together), a cap on response bodies, and errors that name the URL.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Largest response body read; a larger one is an error rather than unbounded memory.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP(S) client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound(Arc<Clients>);

struct Clients {
    verified: HttpsClient,
    /// For `insecureSkipVerify` / `disableTLS`: accepts any server certificate.
    unverified: HttpsClient,
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
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

/// Why a call got no response. Each says which URL.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{url}: no response within {}", serin_crds::duration::format(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: the response body is over {limit} bytes")]
    TooLarge { url: String, limit: usize },
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
        let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        Outbound(Arc::new(Clients { verified: client(verified), unverified: client(unverified) }))
    }

    /// Sends `request` and reads the whole response, all within `timeout`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        skip_tls_verify: bool,
    ) -> Result<Reply, OutboundError> {
        let url = redacted(request.uri());
        let client = if skip_tls_verify { &self.0.unverified } else { &self.0.verified };
        let call = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| OutboundError::Failed { url: url.clone(), reason: error_chain(&e) })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    OutboundError::TooLarge { url: url.clone(), limit: MAX_RESPONSE_BYTES }
                } else {
                    OutboundError::Failed { url: url.clone(), reason: format!("reading the response: {e}") }
                }
            })?;
            Ok(Reply { status, body: body.to_bytes() })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout { url, after: timeout }),
        }
    }
}

fn client(tls: rustls::ClientConfig) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

/// The URL without its query string (which may carry a token) for messages.
fn redacted(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", uri.path()),
        _ => uri.path().to_string(),
    }
}

/// An error and its causes on one line: hyper's own message alone is often just "client error".
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
