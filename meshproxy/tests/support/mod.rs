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
use serin_e2e::testapp;
use serin_meshproxy::admin::{self, Admin};
use serin_meshproxy::config::parse_config;
use serin_meshproxy::metrics::ProxyMetrics;
use serin_meshproxy::proxy::{Limits, ProxyServer, Shared, Upstreams};
use serin_meshproxy::store::ConfigStore;

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
    let config = parse_config("test config", config_yaml).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(ConfigStore::new(config).unwrap());
    let metrics = Arc::new(ProxyMetrics::default());
    let admin = admin::start(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Admin { store: store.clone(), metrics: metrics.clone() }),
    )
    .await
    .unwrap();
    let shared = Arc::new(Shared {
        store: store.clone(),
        upstreams: Upstreams::new(Duration::from_secs(2)),
        metrics,
        limits: Limits::default(),
    });
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap(), shared).await.unwrap();
    Proxy { addr: server.local_addr(), admin, store, server }
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
