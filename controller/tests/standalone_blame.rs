//! What the analysis counts, end to end: a client sending broken requests and a circuit breaker
//! shedding load during a rollout are not the canary's errors, and do not roll it back.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serin_crds::CanaryPhase;
use support::standalone::{Rig, canary_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The canary's Service lets one request through at a time and queues none: a burst is shed.
const BREAKER: &str = "---
apiVersion: serin.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: podinfo-canary, namespace: test}
spec:
  targetRef: {kind: Service, name: podinfo-canary}
  connectionPool: {maxConnections: 1, maxPendingRequests: 0}
";

#[derive(Default)]
struct Hostile {
    stop: AtomicBool,
    /// 400s blamed on the client, for bodies with broken chunked framing.
    client_errors: AtomicU64,
    /// 503s blamed on the policy: requests the breaker shed.
    shed: AtomicU64,
}

/// A status line and `x-meshproxy-error` of one raw exchange with the proxy.
async fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(proxy).await else { return String::new() };
    if stream.write_all(request).await.is_err() {
        return String::new();
    }
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;
    let n = read.ok().and_then(Result::ok).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase()
}

/// Every 100 ms, for at most two minutes: one request whose chunked body is broken, and a burst of
/// eight at once.
fn start_hostile_traffic(proxy: SocketAddr) -> Arc<Hostile> {
    let hostile = Arc::new(Hostile::default());
    let state = hostile.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !state.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let broken =
                b"POST / HTTP/1.1\r\nHost: podinfo.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nxyz\r\n\r\n";
            if exchange(proxy, broken).await.contains("x-meshproxy-error: client:") {
                state.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            let burst: Vec<_> = (0..8)
                .map(|_| {
                    tokio::spawn(exchange(proxy, b"GET / HTTP/1.1\r\nHost: podinfo.test\r\nConnection: close\r\n\r\n"))
                })
                .collect();
            for answer in burst {
                if answer.await.unwrap_or_default().contains("x-meshproxy-error: policy: circuit breaker") {
                    state.shed.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    hostile
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_requests_and_a_shedding_breaker_do_not_roll_back_a_healthy_canary() {
    let v1 = support::app("v1", 0.0, 0).await;
    // Slow enough that requests to the canary overlap and the breaker sheds.
    let v2 = support::app("v2", 0.0, 20).await;
    let analysis = "    threshold: 1\n    stepWeight: 50\n    maxWeight: 50\n    metrics:\n      - {name: request-success-rate, interval: 10s, thresholdRange: {min: 95}}";
    let rig = Rig::start(&format!("{}{BREAKER}", canary_yaml(analysis)), v1).await;
    rig.start_traffic(60, None);
    let hostile = start_hostile_traffic(rig.mesh.proxy);
    rig.point_canary_at(v2, "v2");
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], Duration::from_secs(60)).await;
    hostile.stop.store(true, Ordering::Relaxed);
    let status = record.status.unwrap();
    let (client_errors, shed) = (hostile.client_errors.load(Ordering::Relaxed), hostile.shed.load(Ordering::Relaxed));
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:#?}\n{:#?}", record.events);
    // Enough of both that, counted as the canary's, they would have failed it.
    assert!(client_errors >= 10 && shed >= 20, "broken requests answered {client_errors}, shed {shed}");
    let rate = status.metrics.iter().find(|m| m.name == "request-success-rate").and_then(|m| m.value);
    assert!(rate.is_some_and(|r| r >= 99.0), "the canary's own success rate: {rate:?}");
}
