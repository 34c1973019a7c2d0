//! The controller's HTTP client for everything it calls out to: Prometheus, webhooks, alert
//! receivers and meshproxy's admin API. One pooled reqwest client per TLS mode, and one per HTTP
//! proxy an AlertProvider names; TLS is rustls with ring; a deadline on every call (connect,
//! headers and body together), a cap on response bodies, and errors that name the URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    tls: TlsConfigs,
    /// One client per proxy and TLS mode, built on first use: each keeps its own pool of
    /// connections to its proxy. Proxies come from AlertProviders, so there are few.
    proxied: Mutex<HashMap<(HttpProxy, bool), reqwest::Client>>,
}

/// Kept to build proxied clients without reading the system's roots again.
struct TlsConfigs {
    verified: rustls::ClientConfig,
    unverified: rustls::ClientConfig,
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
    #[error("{url}: could not go through the proxy {proxy}: {reason}")]
    ProxyUnreachable { url: String, proxy: String, reason: String },
    #[error("{url}: the proxy {proxy} answered {status}: {hint}")]
    ProxyAuth { url: String, proxy: String, status: StatusCode, hint: &'static str },
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
            OutboundError::ProxyUnreachable { .. } => "proxy_unreachable",
            OutboundError::ProxyAuth { .. } => "proxy_auth",
        }
    }

    /// Whether the call went through a proxy and the proxy is what failed.
    pub fn is_proxy(&self) -> bool {
        matches!(self, OutboundError::ProxyUnreachable { .. } | OutboundError::ProxyAuth { .. })
    }
}

/// An HTTP forward proxy: `http://[user[:password]@]host[:port]` (or `https://` for TLS to the
/// proxy). The credentials, percent-decoded, go in `Proxy-Authorization` as basic auth.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpProxy {
    /// Without the credentials.
    url: reqwest::Url,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password, not even in a debug dump.
        match &self.credentials {
            Some((user, _)) => write!(f, "HttpProxy({}, user {user:?})", self.address()),
            None => write!(f, "HttpProxy({})", self.address()),
        }
    }
}

/// Why a proxy URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("not a URL ({0})")]
    NotAUrl(String),
    #[error("the scheme is {0:?}; an HTTP proxy URL starts with http:// or https://")]
    Scheme(String),
    #[error("it has no host")]
    NoHost,
    #[error("it has a path, query or fragment; a proxy URL is only scheme, credentials, host and port")]
    NotJustAnAddress,
    #[error("its credentials are not valid UTF-8 once percent-decoded")]
    Credentials,
}

impl ProxyUrlError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        "bad_config"
    }
}

impl HttpProxy {
    pub fn parse(text: &str) -> Result<HttpProxy, ProxyUrlError> {
        let mut url = reqwest::Url::parse(text.trim()).map_err(|e| ProxyUrlError::NotAUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProxyUrlError::Scheme(url.scheme().to_string()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ProxyUrlError::NoHost);
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::NotJustAnAddress);
        }
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| ProxyUrlError::Credentials)
        };
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some((decode(url.username())?, decode(url.password().unwrap_or_default())?))
        };
        // Cannot fail on an http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(HttpProxy { url, credentials })
    }

    /// The proxy's URL without credentials, for messages.
    pub fn address(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_string()
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }
}

/// `text` for messages when it may hold a proxy's password: the userinfo is replaced by `***`.
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
        Outbound(Arc::new(Clients {
            verified: direct(&verified),
            unverified: direct(&unverified),
            tls: TlsConfigs { verified, unverified },
            proxied: Mutex::new(HashMap::new()),
        }))
    }

    /// Sends `request` and reads the whole response, all within `timeout`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        skip_tls_verify: bool,
    ) -> Result<Reply, OutboundError> {
        let client = if skip_tls_verify { &self.0.unverified } else { &self.0.verified };
        execute(client, request, timeout, None).await
    }

    /// As [`Outbound::send`], through an HTTP forward proxy. A proxy that refuses the request
    /// itself (407, or a 401 it did not forward) is an [`OutboundError::ProxyAuth`].
    pub async fn send_through(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        skip_tls_verify: bool,
        proxy: &HttpProxy,
    ) -> Result<Reply, OutboundError> {
        let client = match self.proxied(proxy, skip_tls_verify) {
            Ok(client) => client,
            Err(error) => {
                let url = redacted(request.uri());
                return Err(OutboundError::ProxyUnreachable {
                    url,
                    proxy: proxy.address(),
                    reason: error_chain(&error),
                });
            }
        };
        execute(&client, request, timeout, Some(proxy)).await
    }

    fn proxied(&self, proxy: &HttpProxy, skip_tls_verify: bool) -> Result<reqwest::Client, reqwest::Error> {
        let key = (proxy.clone(), skip_tls_verify);
        let mut clients = self.0.proxied.lock().expect("proxied clients lock");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut route = reqwest::Proxy::all(proxy.url.clone())?;
        if let Some((user, password)) = &proxy.credentials {
            route = route.basic_auth(user, password);
        }
        let tls = if skip_tls_verify { &self.0.tls.unverified } else { &self.0.tls.verified };
        let client = builder(tls.clone()).proxy(route).build()?;
        clients.insert(key, client.clone());
        Ok(client)
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
    proxy: Option<&HttpProxy>,
) -> Result<Reply, OutboundError> {
    let url = redacted(request.uri());
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await;
    let request = reqwest::Request::try_from(Request::from_parts(parts, body.to_bytes()))
        .map_err(|e| OutboundError::BadRequest { url: url.clone(), reason: error_chain(&e.without_url()) })?;
    let call = async {
        let mut response = client.execute(request).await.map_err(|e| classify(&url, proxy, e))?;
        let status = response.status();
        if let Some(proxy) = proxy
            && let Some(hint) = proxy_refusal(proxy, &response)
        {
            return Err(OutboundError::ProxyAuth { url: url.clone(), proxy: proxy.address(), status, hint });
        }
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

/// Whether the proxy answered the request itself, refusing it, and what to do.
fn proxy_refusal(proxy: &HttpProxy, response: &reqwest::Response) -> Option<&'static str> {
    let hint = if proxy.has_credentials() {
        "check the user and password in the proxy URL"
    } else {
        "the proxy wants credentials: write them in its URL as http://user:password@host:port"
    };
    match response.status() {
        StatusCode::PROXY_AUTHENTICATION_REQUIRED => Some(hint),
        // Some proxies (tinyproxy 1.11) answer wrong credentials with 401. A forwarded response
        // carries the proxy's `Via`; one the proxy made itself does not.
        StatusCode::UNAUTHORIZED if !response.headers().contains_key(http::header::VIA) => Some(hint),
        _ => None,
    }
}

fn classify(url: &str, proxy: Option<&HttpProxy>, error: reqwest::Error) -> OutboundError {
    let connect = error.is_connect();
    let error = error.without_url();
    let reason = error_chain(&error);
    let url = url.to_string();
    if !connect {
        return OutboundError::Failed { url, reason };
    }
    // Through a proxy, the connection is to the proxy (or a tunnel it would not open).
    if let Some(proxy) = proxy {
        return OutboundError::ProxyUnreachable { url, proxy: proxy.address(), reason };
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
    fn a_proxy_url_gives_its_address_and_decoded_credentials() {
        let proxy = HttpProxy::parse("http://alert%40ops:p%3Ass@127.0.0.1:3128").unwrap();
        assert_eq!(proxy.address(), "http://127.0.0.1:3128");
        assert_eq!(proxy.credentials, Some(("alert@ops".to_string(), "p:ss".to_string())));
        assert_eq!(format!("{proxy:?}"), "HttpProxy(http://127.0.0.1:3128, user \"alert@ops\")");
        let plain = HttpProxy::parse("http://127.0.0.1:3128/").unwrap();
        assert_eq!((plain.address().as_str(), plain.has_credentials()), ("http://127.0.0.1:3128", false));
        let user_only = HttpProxy::parse("http://ops@127.0.0.1:3128").unwrap();
        assert_eq!(user_only.credentials, Some(("ops".to_string(), String::new())));
    }

    #[test]
    fn a_malformed_proxy_url_says_what_is_wrong() {
        assert!(matches!(
            HttpProxy::parse("127.0.0.1:3128"),
            Err(ProxyUrlError::Scheme(_) | ProxyUrlError::NotAUrl(_))
        ));
        assert!(matches!(HttpProxy::parse("proxy host"), Err(ProxyUrlError::NotAUrl(_))));
        assert_eq!(HttpProxy::parse("socks5://127.0.0.1:1080"), Err(ProxyUrlError::Scheme("socks5".into())));
        assert_eq!(HttpProxy::parse("http://127.0.0.1:3128/path"), Err(ProxyUrlError::NotJustAnAddress));
        assert_eq!(HttpProxy::parse("http://u:%FF@127.0.0.1:3128"), Err(ProxyUrlError::Credentials));
        assert_eq!(ProxyUrlError::NoHost.label(), "bad_config");
    }

    #[test]
    fn one_client_per_proxy_and_tls_mode() {
        let outbound = Outbound::new();
        let proxy = HttpProxy::parse("http://alerts:secret@127.0.0.1:3128").unwrap();
        for _ in 0..3 {
            outbound.proxied(&proxy, false).unwrap();
        }
        outbound.proxied(&proxy, true).unwrap();
        outbound.proxied(&HttpProxy::parse("http://127.0.0.1:3128").unwrap(), false).unwrap();
        assert_eq!(outbound.0.proxied.lock().unwrap().len(), 3);
    }

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
