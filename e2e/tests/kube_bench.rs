//! Benchmarks of Kubernetes mode on the rig (run by `e2e/bench/kube.sh`, not by CI): how fast a
//! weight written to an HTTPRoute reaches the waypoint's data plane, and what the waypoint costs
//! with many Services and endpoints in its watch. Prints a table and writes it to
//! `target/bench/kube.md`. Nothing here asserts a time: the figures are for people to compare.

// Shared with the rig tests; the benchmark uses part of it.
#[allow(dead_code)]
mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use support::cluster::{install_crds, install_httproute_crd, install_waypoint, ready_deployment};
use support::{TestNamespace, apply, rig_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Weight changes measured.
const CHANGES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_weight_propagation_and_waypoint_scale() {
    let services: usize = std::env::var("SERIN_BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let per_service: usize = std::env::var("SERIN_BENCH_ENDPOINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let client = rig_client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    let ns = TestNamespace::create(&client, "bench").await;
    for version in ["v1", "v2"] {
        apply(&ns.api::<Deployment>(), &deployment(version)).await;
        apply(&ns.api::<Service>(), &service(version, json!({"app": version}), "http")).await;
    }
    install_waypoint(&ns).await;
    let apex = service("podinfo", json!({"app.kubernetes.io/name": "serin-waypoint"}), "proxy");
    apply(&ns.api::<Service>(), &apex).await;
    apply(&ns.api::<HttpRoute>(), &route(100, 0)).await;
    ready_deployment(&ns, "v1").await;
    ready_deployment(&ns, "v2").await;
    let waypoint = waypoint_pod_ip(&ns).await;

    let mut rows = Vec::new();
    let small = measure_propagation(&ns, waypoint).await;
    rows.push(("2 Services", small, rss_of_waypoints(&ns.name)));

    let started = Instant::now();
    add_services(&ns, services, per_service).await;
    let created = started.elapsed();
    // Let the waypoints take the new objects in.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let large = measure_propagation(&ns, waypoint).await;
    let label = format!("{services} more Services, {} endpoints", services * per_service);
    rows.push((label.as_str(), large, rss_of_waypoints(&ns.name)));

    let mut table = String::from(
        "## Kubernetes mode: HTTPRoute weight write to the waypoint serving it\n\n\
         | watch holds | changes | p50 ms | p90 ms | p99 ms | max ms | not applied in 5 s | waypoint RSS MiB (each) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (label, latencies, rss) in &rows {
        let (mut ok, missed): (Vec<f64>, usize) = (latencies.iter().flatten().copied().collect(), 0);
        let missed = missed + latencies.iter().filter(|l| l.is_none()).count();
        ok.sort_by(f64::total_cmp);
        let q = |p: f64| ok.get(((ok.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
        let rss: Vec<String> = rss.iter().map(|kib| format!("{:.1}", *kib as f64 / 1024.0)).collect();
        table.push_str(&format!(
            "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {missed} | {} |\n",
            latencies.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            rss.join(", ")
        ));
    }
    table.push_str(&format!(
        "\nCreating the {services} Services and their EndpointSlices took {:.1} s. Each change is a \
         server-side apply of the route flipping all traffic between two versions; it counts as applied \
         at the first answer from the new version, asked of one waypoint pod directly every few ms.\n",
        created.as_secs_f64()
    ));
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("kube.md"), &table).unwrap();
    ns.delete().await;
}

/// Flips the route between the two versions `CHANGES` times; for each, the milliseconds from just
/// before the write to the first answer from the new version, or None after 5 s.
async fn measure_propagation(ns: &TestNamespace, waypoint: Ipv4Addr) -> Vec<Option<f64>> {
    let mut latencies = Vec::with_capacity(CHANGES);
    let mut to_v2 = true;
    for _ in 0..CHANGES {
        let (wanted, weights) = if to_v2 { ("v2", (0, 100)) } else { ("v1", (100, 0)) };
        let started = Instant::now();
        apply(&ns.api::<HttpRoute>(), &route(weights.0, weights.1)).await;
        let mut applied = None;
        while started.elapsed() < Duration::from_secs(5) {
            if version_at(waypoint).await.as_deref() == Some(wanted) {
                applied = Some(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(applied);
        to_v2 = !to_v2;
        // Let the version settle before the next change.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies
}

/// The version the waypoint answers with for `podinfo`, asked over a fresh connection.
async fn version_at(waypoint: Ipv4Addr) -> Option<String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect((waypoint, 4140))).await.ok()?.ok()?;
    stream.write_all(b"GET /version HTTP/1.1\r\nHost: podinfo:9898\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut response)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&response);
    let line = text.lines().find(|l| l.to_ascii_lowercase().starts_with("x-testapp-version:"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

async fn waypoint_pod_ip(ns: &TestNamespace) -> Ipv4Addr {
    let pods =
        ns.api::<Pod>().list(&ListParams::default().labels("app.kubernetes.io/name=serin-waypoint")).await.unwrap();
    pods.items.iter().find_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()).expect("a waypoint pod IP")
}

/// Resident memory (KiB) of every meshproxy serving the namespace, from /proc.
fn rss_of_waypoints(namespace: &str) -> Vec<u64> {
    let wanted = format!("--namespace={namespace}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if !args.first().is_some_and(|a| a.ends_with("meshproxy")) || !args.contains(&wanted) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some(kib) =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.parse().ok())
        {
            found.push(kib);
        }
    }
    found
}

/// `count` selector-less Services, each with one EndpointSlice of `per_service` addresses in the
/// pod range (nothing listens there: the waypoint only has to hold them).
async fn add_services(ns: &TestNamespace, count: usize, per_service: usize) {
    let services = ns.api::<Service>();
    let slices = ns.api::<EndpointSlice>();
    let post = PostParams::default();
    for i in 0..count {
        let name = format!("svc-{i}");
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }))
        .unwrap();
        services.create(&post, &service).await.unwrap();
        let endpoints: Vec<serde_json::Value> = (0..per_service)
            .map(|e| json!({"addresses": [format!("10.244.{}.{}", 100 + (i * per_service + e) / 250 % 150, 1 + (i * per_service + e) % 250)], "conditions": {"ready": true}}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-1"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap();
        slices.create(&post, &slice).await.unwrap();
    }
}

fn deployment(version: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": version},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": version}},
            "template": {
                "metadata": {"labels": {"app": version}},
                "spec": {"containers": [{
                    "name": "app", "image": format!("serin-testapp:{version}"),
                    "ports": [{"name": "http", "containerPort": 9898}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
                }]},
            },
        },
    }))
    .unwrap()
}

fn service(name: &str, selector: serde_json::Value, target_port: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 9898, "targetPort": target_port}]},
    }))
    .unwrap()
}

fn route(v1: i32, v2: i32) -> HttpRoute {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}],
            "rules": [{"backendRefs": [
                {"name": "v1", "port": 9898, "weight": v1},
                {"name": "v2", "port": 9898, "weight": v2},
            ]}],
        },
    }))
    .unwrap()
}
