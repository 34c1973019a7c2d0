use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// Where a probe is aimed: the pod's address, the container's named ports, and its process (exec
/// probes run inside the container's namespaces, as a kubelet runs them).
pub struct ProbeTarget<'a> {
    pub pod_ip: Ipv4Addr,
    pub ports: &'a [ContainerPort],
    pub pid: Option<u32>,
    pub env: &'a [(String, String)],
}

/// A probe's timing, with a kubelet's defaults.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn of(probe: &Probe) -> ProbeTiming {
        let seconds = |value: Option<i32>, default: i32| Duration::from_secs(value.unwrap_or(default).max(0) as u64);
        ProbeTiming {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive results against the thresholds: `passing` flips only after enough in a row.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub passing: bool,
    successes: u32,
    failures: u32,
    pub last_failure: Option<String>,
}

impl ProbeState {
    pub fn new(passing: bool) -> Self {
        ProbeState { passing, successes: 0, failures: 0, last_failure: None }
    }

    pub fn record(&mut self, timing: &ProbeTiming, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= timing.success_threshold {
                    self.passing = true;
                }
            }
            Err(why) => {
                self.successes = 0;
                self.failures += 1;
                self.last_failure = Some(why);
                if self.failures >= timing.failure_threshold {
                    self.passing = false;
                }
            }
        }
    }
}

/// Runs one probe; Err says why it failed.
pub async fn probe_once(probe: &Probe, timing: &ProbeTiming, target: &ProbeTarget<'_>) -> Result<(), String> {
    let attempt = async {
        if let Some(http) = &probe.http_get {
            if http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")) {
                return Err("HTTPS probes are not played by the rig".to_string());
            }
            let host = match &http.host {
                Some(host) => host.parse::<IpAddr>().map_err(|_| format!("probe host {host:?} is not an IP"))?,
                None => IpAddr::V4(target.pod_ip),
            };
            let port = resolve_port(http.port.clone(), target.ports)?;
            let headers: Vec<(String, String)> =
                http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
            http_get(SocketAddr::new(host, port), http.path.as_deref().unwrap_or("/"), &headers).await
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(tcp.port.clone(), target.ports)?;
            TcpStream::connect(SocketAddr::new(IpAddr::V4(target.pod_ip), port))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {}:{port}: {e}", target.pod_ip))
        } else if let Some(exec) = &probe.exec {
            exec_in_container(exec.command.as_deref().unwrap_or_default(), target).await
        } else {
            Err("only httpGet, tcpSocket and exec probes are played by the rig".to_string())
        }
    };
    match tokio::time::timeout(timing.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {:?}", timing.timeout)),
    }
}

fn resolve_port(port: IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    match port {
        IntOrString::Int(number) => u16::try_from(number).map_err(|_| format!("port {number} is out of range")),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?}")),
    }
}

/// A minimal HTTP/1.1 GET that reads only the status line: 200–399 passes, as for a kubelet.
async fn http_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: not an HTTP response: {line:?}"))?;
    if (200..400).contains(&code) { Ok(()) } else { Err(format!("HTTP probe failed with statuscode: {code}")) }
}

async fn exec_in_container(command: &[String], target: &ProbeTarget<'_>) -> Result<(), String> {
    let Some(pid) = target.pid else { return Err("the container is not running".to_string()) };
    if command.is_empty() {
        return Err("exec probe without a command".to_string());
    }
    let output = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--mount", "--net", "--"])
        .args(command)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running exec probe: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "command {command:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
