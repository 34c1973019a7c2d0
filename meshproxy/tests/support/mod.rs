//! A proxy under test: real sample-app backends on loopback, meshproxy in-process on an ephemeral
//! port, and a pooled client that sends requests through it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serin_meshproxy::config::parse_config;
use serin_meshproxy::launch::{self, Launch};
use serin_meshproxy::proxy::{Limits, ProxyServer};
use serin_meshproxy::store::ConfigStore;
use serin_testapp as testapp;

pub struct Backend {
    pub server: testapp::Server,
}

/// Starts a sample app answering with `version`.
pub async fn backend(version: &str) -> SocketAddr {
    let server = testapp::Server::start(&testapp::Config::for_tests(version)).await.unwrap();
    let addr = server.local_addr();
    // Kept alive for the whole test process: tests end before it matters.
    std::mem::forget(server);
    addr
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub store: Arc<ConfigStore>,
    pub server: ProxyServer,
}

pub async fn proxy(config_yaml: &str) -> Proxy {
    proxy_with(config_yaml, None, Limits::default()).await
}

pub async fn proxy_with_tls(config_yaml: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Proxy {
    proxy_with(config_yaml, tls, Limits::default()).await
}

/// A proxy whose listener speaks TLS with `tls`, if given, and has `limits`.
pub async fn proxy_with(config_yaml: &str, tls: Option<tokio_rustls::TlsAcceptor>, limits: Limits) -> Proxy {
    let config = parse_config("test config", config_yaml).unwrap_or_else(|e| panic!("{e}"));
    let running = launch::start(Launch { limits, tls, ..Launch::local(config) }).await.unwrap();
    Proxy { addr: running.server.local_addr(), admin: running.admin, store: running.store, server: running.server }
}

/// The usual test setup: `podinfo` (apex) routing to `podinfo-primary` (v1) and
/// `podinfo-canary` (v2) by the given weights, plus optional extra rules before the weighted one.
pub fn canary_config(
    primary: SocketAddr,
    canary: SocketAddr,
    primary_weight: u32,
    canary_weight: u32,
    extra_rules: &str,
) -> String {
    format!(
        r#"
services:
  - name: podinfo
    namespace: test
  - name: podinfo-primary
    namespace: test
    labels: {{version: v1}}
    endpoints: [{{address: "{primary}"}}]
  - name: podinfo-canary
    namespace: test
    labels: {{version: v2}}
    endpoints: [{{address: "{canary}"}}]
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {{name: podinfo, namespace: test}}
    spec:
      parentRefs: [{{group: "", kind: Service, name: podinfo}}]
      rules:
{extra_rules}
        - backendRefs:
            - {{name: podinfo-primary, port: 9898, weight: {primary_weight}}}
            - {{name: podinfo-canary, port: 9898, weight: {canary_weight}}}
"#
    )
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http()
}

/// Sends GET `path` to the proxy with `Host: host` and extra headers; returns status, headers, body.
pub async fn get(
    client: &TestClient,
    proxy: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = Request::get(format!("http://{proxy}{path}")).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client.request(request.body(Full::new(Bytes::new())).unwrap()).await.expect("the proxy answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The `version` field of a sample-app answer.
pub fn version_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What a scripted backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub path_and_query: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body_len: usize,
}

/// How a scripted backend answers request number `n` (from 0): a status and a delay.
pub type Script = Arc<dyn Fn(u64, &Seen) -> (StatusCode, Duration) + Send + Sync>;

/// A backend on loopback that answers by a script and records every request it got. Its answer
/// body is `{"version": "<name>", "n": <request number>}`.
pub struct ScriptedBackend {
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl ScriptedBackend {
    pub async fn start(name: &str, script: Script) -> ScriptedBackend {
        use hyper_util::rt::TokioIo;
        use hyper_util::server::conn::auto;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
        let (name, log) = (name.to_string(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (name, log, script) = (name.clone(), log.clone(), script.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (name, log, script) = (name.clone(), log.clone(), script.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            // Read the whole body before answering, as most apps do.
                            let body_len = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                            let request_seen = Seen {
                                method: parts.method,
                                path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                version: parts.version,
                                headers: parts.headers,
                                body_len,
                            };
                            let n = {
                                let mut log = log.lock().unwrap();
                                log.push(request_seen.clone());
                                log.len() as u64 - 1
                            };
                            let (status, delay) = script(n, &request_seen);
                            tokio::time::sleep(delay).await;
                            let body = serde_json::json!({ "version": name, "n": n }).to_string();
                            let mut response = http::Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedBackend { addr, seen }
    }

    /// Answers 200 at once to everything.
    pub async fn ok(name: &str) -> ScriptedBackend {
        Self::start(name, Arc::new(|_, _| (StatusCode::OK, Duration::ZERO))).await
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A config of one service `app` in namespace `test`, routed to backend services `app-a`
/// (endpoints `a`) and `app-b` (endpoints `b`) by the given weights, with extra YAML for the
/// rule (filters, timeouts: indented 10 spaces) and top-level `trafficPolicies`.
pub fn app_config(a: &[SocketAddr], b: &[SocketAddr], weights: (u32, u32), rule_extra: &str, policies: &str) -> String {
    let endpoints = |list: &[SocketAddr], version: &str| {
        list.iter()
            .enumerate()
            .map(|(i, addr)| format!("{{address: \"{addr}\", labels: {{version: {version}-{i}}}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let services = format!(
        "  - {{name: app-a, namespace: test, endpoints: [{}]}}\n  - {{name: app-b, namespace: test, endpoints: [{}]}}",
        endpoints(a, "a"),
        endpoints(b, "b")
    );
    let rules = format!(
        "        - backendRefs:\n            - {{name: app-a, port: 80, weight: {}}}\n            - {{name: app-b, port: 80, weight: {}}}\n{rule_extra}",
        weights.0, weights.1
    );
    format!("{}trafficPolicies:\n{policies}\n", app_route(&services, &rules))
}

/// A config of the apex service `app` in namespace `test`, the services behind it (YAML list
/// items, indented two spaces), and one HTTPRoute attached to `app` with `rules` (indented eight).
pub fn app_route(services: &str, rules: &str) -> String {
    format!(
        r#"
services:
  - {{name: app, namespace: test}}
{services}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {{name: app, namespace: test}}
    spec:
      parentRefs: [{{group: "", kind: Service, name: app}}]
      rules:
{rules}
"#
    )
}

/// Reads one counter or histogram sample from `/metrics` on the admin port.
pub async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let client = client();
    let response = client
        .request(Request::get(format!("http://{admin}/metrics")).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of a per-endpoint gauge in a scrape.
pub fn endpoint_gauge(scrape: &prometheus_parse::Scrape, metric: &str, endpoint: SocketAddr) -> Option<f64> {
    let endpoint = endpoint.to_string();
    scrape.samples.iter().find(|s| s.metric == metric && s.labels.get("endpoint") == Some(endpoint.as_str())).map(|s| {
        match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        }
    })
}

/// `meshproxy run` as a process on ephemeral ports: returns it with the proxy and admin addresses
/// it reports on stderr once it serves (so parallel tests can never pick the same port).
pub fn spawn_meshproxy(
    config: &std::path::Path,
    extra: &[&str],
    stdout: std::process::Stdio,
) -> (std::process::Child, SocketAddr, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshproxy"))
        .args(["run", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let field = |line: &str, name: &str| -> Option<SocketAddr> {
        line.split_whitespace().find_map(|word| word.strip_prefix(name)).and_then(|v| v.parse().ok())
    };
    let (proxy, admin) = loop {
        let line = lines.next().expect("meshproxy exited before serving").unwrap();
        if line.contains("meshproxy serving") {
            break (field(&line, "proxy=").unwrap(), field(&line, "admin=").unwrap());
        }
    };
    // Keep reading so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, proxy, admin)
}

/// A self-signed certificate for `app.test`: the proxy's acceptor, and clients that trust it.
pub struct TestTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    roots: rustls::RootCertStore,
}

impl TestTls {
    pub fn new() -> TestTls {
        let certified = rcgen::generate_simple_self_signed(vec!["app.test".to_string()]).unwrap();
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("meshproxy-tls-{}-{made}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let acceptor = serin_meshproxy::proxy::tls::acceptor(&cert, &key).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        TestTls { acceptor, roots }
    }

    /// A connector offering `alpn`.
    pub fn connector(&self, alpn: &str) -> tokio_rustls::TlsConnector {
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(self.roots.clone())
                .with_no_client_auth();
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}
