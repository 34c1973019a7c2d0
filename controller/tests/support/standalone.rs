//! A standalone-mode rig: meshproxy and sample apps on loopback, a manifests folder, steady traffic,
//! and `serin-controller standalone` as a real process that a test can SIGKILL and restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serin_controller::standalone::state::{CanaryRecord, StateStore};
use serin_crds::CanaryPhase;

use super::{Mesh, TempDir, mesh_with};

pub struct Rig {
    pub dir: TempDir,
    pub mesh: Mesh,
    pub api: SocketAddr,
    controller: Option<Child>,
    /// Flags the controller starts with, beyond the manifests, meshproxy and API.
    controller_flags: Vec<&'static str>,
    pub traffic: Traffic,
}

/// Counts of the steady traffic sent through meshproxy.
#[derive(Clone, Default)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    pub server_errors: Arc<AtomicU64>,
    pub transport_errors: Arc<AtomicU64>,
}

impl Rig {
    /// Writes `canary_yaml` and a services file whose `podinfo-canary` group runs `first`, starts
    /// the controller, and waits until the Canary is Initialized.
    pub async fn start(canary_yaml: &str, first: SocketAddr) -> Rig {
        Rig::start_with_flags(canary_yaml, first, &["--scrape-interval", "500ms", "--min-requests", "5"]).await
    }

    /// As [`Rig::start`], with the controller's own defaults for scraping and the request floor.
    pub async fn start_with_defaults(canary_yaml: &str, first: SocketAddr) -> Rig {
        Rig::start_with_flags(canary_yaml, first, &[]).await
    }

    async fn start_with_flags(canary_yaml: &str, first: SocketAddr, flags: &[&'static str]) -> Rig {
        let dir = TempDir::new("standalone");
        std::fs::write(dir.path().join("canary.yaml"), canary_yaml).unwrap();
        let mut rig = Rig {
            dir,
            mesh: mesh_with("services: []").await,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            controller: None,
            controller_flags: flags.to_vec(),
            traffic: Traffic::default(),
        };
        rig.point_canary_at(first, "v1");
        rig.start_controller();
        rig.wait_for(&[CanaryPhase::Initialized], Duration::from_secs(30)).await;
        rig
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Repoints the `podinfo-canary` endpoint group: the standalone way to deploy a new version.
    pub fn point_canary_at(&self, address: SocketAddr, version: &str) {
        let services = format!(
            "services:\n  - name: podinfo-canary\n    namespace: test\n    labels: {{version: {version}}}\n    endpoints: [{{address: \"{address}\"}}]\n"
        );
        std::fs::write(self.dir.path().join("services.yaml"), services).unwrap();
    }

    /// Starts the controller with its API on an ephemeral port (a port picked in advance could be
    /// taken by a parallel test) and learns the port from its first log line.
    pub fn start_controller(&mut self) {
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        if !self.logs().is_empty() && !self.logs().ends_with('\n') {
            // A controller killed in the middle of a line: end it, so the next start's first line
            // is a line of its own.
            std::io::Write::write_all(&mut log, b"\n").unwrap();
        }
        let lines_before = self.logs().lines().count();
        let child = Command::new(env!("CARGO_BIN_EXE_serin-controller"))
            .args(["standalone", "--manifests"])
            .arg(self.dir.path())
            .args(["--meshproxy-admin", &format!("http://{}", self.mesh.admin)])
            .args(["--api", "127.0.0.1:0"])
            .args(&self.controller_flags)
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting serin-controller");
        self.controller = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = self.logs();
            let started = logs.lines().skip(lines_before).find(|l| l.contains("serin standalone controller running"));
            if let Some(line) = started {
                let fields: serde_json::Value = serde_json::from_str(line).unwrap();
                self.api = fields["fields"]["api"].as_str().unwrap().parse().unwrap();
                return;
            }
            assert!(Instant::now() < deadline, "the controller did not start; its log:\n{logs}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("controller.log")
    }

    /// Everything the controller wrote to stdout so far (JSON lines).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill_controller(&mut self) {
        if let Some(mut child) = self.controller.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn record(&self) -> Option<CanaryRecord> {
        let store = StateStore::new(&self.dir.path().join(".serin"));
        store.load_one("test/podinfo").ok().flatten()
    }

    pub fn phase(&self) -> Option<CanaryPhase> {
        self.record().and_then(|r| r.status).map(|s| s.phase)
    }

    /// Waits for one of `phases`; panics with the controller's last status and events otherwise.
    /// Waits until the record satisfies `wanted` (named `what` in the failure).
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&CanaryRecord) -> bool,
    ) -> CanaryRecord {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(record) = self.record()
                && wanted(&record)
            {
                return record;
            }
            if Instant::now() > deadline {
                let record = self.record();
                panic!(
                    "not {what} within {limit:?}; status: {:#?}\nevents: {:#?}",
                    record.as_ref().and_then(|r| r.status.clone()),
                    record.map(|r| r.events)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&self, phases: &[CanaryPhase], limit: Duration) -> CanaryRecord {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(record) = self.record()
                && record.status.as_ref().is_some_and(|s| phases.contains(&s.phase))
            {
                // The status is written before the actions it decides; give them a moment to land
                // (a later tick cannot leave these phases without a new revision or request).
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.record().unwrap_or(record);
            }
            if Instant::now() > deadline {
                let record = self.record();
                panic!(
                    "no phase in {phases:?} within {limit:?}; status: {:#?}\nevents: {:#?}",
                    record.as_ref().and_then(|r| r.status.clone()),
                    record.map(|r| r.events)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends about `rate` requests per second for `podinfo.test` until stopped (at most 3 minutes),
    /// with `header` on every other request when given.
    pub fn start_traffic(&self, rate: u32, header: Option<(&'static str, &'static str)>) {
        let traffic = self.traffic.clone();
        let proxy = self.mesh.proxy;
        tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut n = 0u64;
            while !traffic.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                ticker.tick().await;
                n += 1;
                let mut request = Request::get(format!("http://{proxy}/")).header("host", "podinfo.test");
                if let Some((name, value)) = header
                    && n.is_multiple_of(2)
                {
                    request = request.header(name, value);
                }
                let client = client.clone();
                let traffic = traffic.clone();
                tokio::spawn(async move {
                    traffic.sent.fetch_add(1, Ordering::Relaxed);
                    match client.request(request.body(Full::default()).unwrap()).await {
                        Ok(response) => {
                            if response.status().is_server_error() {
                                traffic.server_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = response.into_body().collect().await;
                        }
                        Err(_) => {
                            traffic.transport_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
    }

    /// The version that answers `podinfo.test` now, through meshproxy.
    /// Sends one request to `podinfo.test`, with a Cookie header if given; returns the version that
    /// answered and the response's Set-Cookie values.
    pub async fn version_with_cookie(&self, cookie: Option<&str>) -> (String, Vec<String>) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = Request::get(format!("http://{}/version", self.mesh.proxy)).header("host", "podinfo.test");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = client.request(request.body(Full::default()).unwrap()).await.unwrap();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (json["version"].as_str().unwrap_or_default().to_string(), set_cookies)
    }

    pub async fn serving_version(&self) -> String {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::get(format!("http://{}/version", self.mesh.proxy))
            .header("host", "podinfo.test")
            .body(Full::default())
            .unwrap();
        let body = client.request(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["version"].as_str().unwrap_or_default().to_string()
    }

    /// POST to the controller's API.
    pub async fn post(&self, path: &str) -> u16 {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::post(format!("http://{}{path}", self.api)).body(Full::default()).unwrap();
        client.request(request).await.unwrap().status().as_u16()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.traffic.stop.store(true, Ordering::Relaxed);
        self.kill_controller();
    }
}

/// A Canary for `podinfo` in namespace `test` with a 1s interval and the given analysis lines
/// (indented by six spaces, under `analysis:`).
pub fn canary_yaml(analysis: &str) -> String {
    format!(
        r#"apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
  analysis:
    interval: 1s
{analysis}
"#
    )
}
