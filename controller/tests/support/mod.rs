//! Real parts for the controller's I/O tests: sample apps and meshproxy in-process on loopback, a
//! Prometheus server and an HTTP forward proxy as child processes, and a client that sends traffic
//! through meshproxy.
#![allow(dead_code)]

pub mod debian;
pub mod prometheus;
pub mod receiver;
pub mod standalone;
pub mod tinyproxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serin_meshproxy::config::parse_config;
use serin_meshproxy::launch::{self, Launch};
use serin_meshproxy::proxy::ProxyServer;
use serin_testapp as testapp;

/// A sample app on an ephemeral port that fails `error_rate` of its requests and adds `latency_ms`.
pub async fn app(version: &str, error_rate: f64, latency_ms: u64) -> SocketAddr {
    let mut config = testapp::Config::for_tests(version);
    config.error_rate = error_rate;
    config.latency_ms = latency_ms;
    let server = testapp::Server::start(&config).await.unwrap();
    let addr = server.local_addr();
    // Lives as long as the test process.
    std::mem::forget(server);
    addr
}

pub struct Mesh {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub server: ProxyServer,
}

/// meshproxy in-process: `podinfo` in namespace `test` routes to `podinfo-primary` and
/// `podinfo-canary` by the given weights.
pub async fn mesh(primary: SocketAddr, canary: SocketAddr, weights: (u32, u32)) -> Mesh {
    mesh_with(&mesh_yaml(primary, canary, weights)).await
}

/// The config [`mesh`] runs, for tests that add to it (top-level keys such as `trafficPolicies`).
pub fn mesh_yaml(primary: SocketAddr, canary: SocketAddr, weights: (u32, u32)) -> String {
    let (primary_weight, canary_weight) = weights;
    format!(
        r#"
services:
  - {{name: podinfo, namespace: test}}
  - {{name: podinfo-primary, namespace: test, labels: {{version: v1}}, endpoints: [{{address: "{primary}"}}]}}
  - {{name: podinfo-canary, namespace: test, labels: {{version: v2}}, endpoints: [{{address: "{canary}"}}]}}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {{name: podinfo, namespace: test}}
    spec:
      parentRefs: [{{group: "", kind: Service, name: podinfo}}]
      rules:
        - backendRefs:
            - {{name: podinfo-primary, port: 9898, weight: {primary_weight}}}
            - {{name: podinfo-canary, port: 9898, weight: {canary_weight}}}
"#
    )
}

/// meshproxy in-process with `yaml` as its config.
pub async fn mesh_with(yaml: &str) -> Mesh {
    let config = parse_config("test config", yaml).unwrap_or_else(|e| panic!("{e}"));
    let running = launch::start(Launch::local(config)).await.unwrap();
    Mesh { proxy: running.server.local_addr(), admin: running.admin, server: running.server }
}

/// Sends `count` GETs of `/` for `podinfo.test` through the proxy; returns how many were 5xx.
pub async fn traffic(proxy: SocketAddr, count: usize) -> usize {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut failed = 0;
    for _ in 0..count {
        let request =
            Request::get(format!("http://{proxy}/")).header("host", "podinfo.test").body(Full::default()).unwrap();
        let response = client.request(request).await.unwrap();
        if response.status().is_server_error() {
            failed += 1;
        }
        response.into_body().collect().await.unwrap();
    }
    failed
}

/// A loopback port free right now (for servers that cannot report an ephemeral one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("serin-{prefix}-{}-{}", std::process::id(), unique_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos ^ NEXT.fetch_add(1, Ordering::Relaxed) << 32
}

/// A Canary spec for `target` in namespace `test` with these metric lines (indented by six spaces).
pub fn canary_spec(target: &str, metrics: &str) -> serin_crds::CanarySpec {
    let yaml = format!(
        r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  service: {{port: 9898}}
  analysis:
    interval: 10s
    stepWeight: 10
    metrics:
{metrics}
"#
    );
    serin_crds::manifest::parse_canary("test", &yaml).unwrap_or_else(|e| panic!("{e}")).spec
}

/// The number in a measured value; anything else fails the test, showing what came instead.
pub fn value(v: &serin_controller::engine::MetricValue) -> f64 {
    match v {
        serin_controller::engine::MetricValue::Value(v) => *v,
        other => panic!("expected a value, got {other:?}"),
    }
}
