//! One load run against one target over keep-alive HTTP/1.1 connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

use super::pacer;
use super::process::ProcessUsage;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Names the target in results (`direct`, `meshproxy`, ...).
    pub label: String,
    pub target: SocketAddr,
    /// The Host header sent.
    pub host: String,
    pub path: String,
    /// Requests per second; None sends as fast as the connections allow.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    /// Processes whose CPU time and peak memory are measured during the run.
    pub pids: Vec<u32>,
}

/// What a run measured. Latencies are in milliseconds, over the requests due after the warmup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub label: String,
    /// Target rate, or None for a maximum-throughput run.
    pub rate: Option<f64>,
    pub completed: u64,
    pub errors: u64,
    pub achieved_rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// CPU seconds the measured processes used per 1,000 requests (warmup included on both
    /// sides); None when no process was measured.
    pub cpu_seconds_per_1k: Option<f64>,
    pub peak_rss_kib: u64,
}

struct Sample {
    due: Instant,
    latency: Duration,
    ok: bool,
}

pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let mut senders = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        senders.push(connect(spec.target).await?);
    }
    let usage = ProcessUsage::start(&spec.pids);
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;

    let due = match spec.rate {
        Some(rate) => {
            let (sender, receiver) = mpsc::unbounded_channel();
            pacer::spawn(start, end, rate, sender);
            Some(Arc::new(Mutex::new(receiver)))
        }
        None => None,
    };
    let request = Arc::new((spec.host.clone(), spec.path.clone()));
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let (due, request, target) = (due.clone(), request.clone(), spec.target);
            tokio::spawn(async move { worker(sender, target, request, due, start, end).await })
        })
        .collect();
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await?);
    }
    let (cpu, peak_rss_kib) = usage.finish();

    let all_completed = samples.len() as u64;
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.due >= measure_from).collect();
    let errors = measured.iter().filter(|s| !s.ok).count() as u64;
    let mut latencies: Vec<Duration> = measured.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let quantile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    Ok(LoadResult {
        label: spec.label.clone(),
        rate: spec.rate,
        completed: measured.len() as u64,
        errors,
        achieved_rps: measured.len() as f64 / spec.duration.as_secs_f64(),
        p50_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        p99_ms: quantile(0.99),
        p999_ms: quantile(0.999),
        max_ms: quantile(1.0),
        cpu_seconds_per_1k: (!spec.pids.is_empty() && all_completed > 0)
            .then(|| cpu.as_secs_f64() * 1000.0 / all_completed as f64),
        peak_rss_kib,
    })
}

async fn connect(target: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(target).await.map_err(|e| anyhow::anyhow!("connecting to {target}: {e}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends requests on one connection: when due (rate mode) or back to back (max mode).
async fn worker(
    mut sender: SendRequest<Empty<Bytes>>,
    target: SocketAddr,
    request: Arc<(String, String)>,
    due: Option<Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>>,
    start: Instant,
    end: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    tokio::time::sleep_until(start.into()).await;
    loop {
        let due_at = match &due {
            Some(due) => match due.lock().await.recv().await {
                Some(at) => at,
                None => break,
            },
            None if Instant::now() >= end => break,
            None => Instant::now(),
        };
        if sender.ready().await.is_err() {
            match connect(target).await {
                Ok(fresh) => sender = fresh,
                Err(_) => {
                    samples.push(Sample { due: due_at, latency: due_at.elapsed(), ok: false });
                    continue;
                }
            }
        }
        let (host, path) = (&request.0, &request.1);
        let built = Request::get(path.as_str()).header("host", host.as_str()).body(Empty::new());
        let ok = match built {
            Ok(built) => match sender.send_request(built).await {
                Ok(response) => {
                    let success = response.status().is_success();
                    success && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        samples.push(Sample { due: due_at, latency: due_at.elapsed(), ok });
    }
    samples
}
