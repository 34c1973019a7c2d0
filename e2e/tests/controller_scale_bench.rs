//! The controller with many Canaries on the rig (run by `e2e/bench/controller.sh`, not by CI): its
//! resident memory, CPU and how late its ticks run while it bootstraps SERIN_BENCH_CANARIES Canaries
//! (default 1,000), idles over them, and rolls every one of them out at once. Their workloads run
//! on the scale node `kwok-scale-0`, whose pods kwok plays without processes. The controller is the
//! real binary (SERIN_CONTROLLER_BIN), a process of its own so that /proc measures it alone. Prints
//! a table and writes it to `target/bench/controller.md`. Nothing here asserts a figure.

#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;
use support::cluster::{install_crds, install_httproute_crd};
use support::{TestNamespace, apply, eventually, http_get, rig_client};

const SCALE_NODE: &str = "kwok-scale-0";
/// Writes in flight at once while creating or changing the workloads.
const PARALLEL: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_controller_with_many_canaries() {
    let count: usize = std::env::var("SERIN_BENCH_CANARIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let interval = std::env::var("SERIN_BENCH_INTERVAL").unwrap_or_else(|_| "30s".into());
    let workers = std::env::var("SERIN_BENCH_WORKERS").unwrap_or_else(|_| "10".into());
    let binary = std::env::var("SERIN_CONTROLLER_BIN").expect("SERIN_CONTROLLER_BIN: the serin-controller to measure");
    let client = rig_client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    add_scale_node(&client, count).await;
    let ns = TestNamespace::create(&client, "scale").await;
    // A waypoint Service without pods: the apex Services point at it, as in a mesh.
    apply(&ns.api::<Service>(), &serde_json::from_value(json!({
        "metadata": {"name": "serin-waypoint", "labels": {"serin.dev/waypoint": "true"}},
        "spec": {"selector": {"app.kubernetes.io/name": "serin-waypoint"}, "ports": [{"name": "proxy", "port": 8080}]},
    })).unwrap()).await;

    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let ns = &ns;
            let interval = &interval;
            async move {
                apply(&ns.api::<Deployment>(), &workload(i, "v1")).await;
                apply(&ns.api::<Canary>(), &canary(ns, i, interval)).await;
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
    let created = started.elapsed();

    let port = free_port();
    let mut controller = tokio::process::Command::new(&binary)
        .args(["kubernetes", "--namespace", &ns.name, "--api", &format!("127.0.0.1:{port}"), "--workers", &workers])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("the controller starts");
    let pid = controller.id().expect("a running controller");
    let sampler = Sampler::start(pid);
    let mut rows = Vec::new();

    let phase = Instant::now();
    let cpu = cpu_seconds(pid);
    all_reach(&ns, count, CanaryPhase::Initialized, Duration::from_secs(1800)).await;
    rows.push(Row::measure("bootstrap to Initialized", phase, cpu, pid, &sampler, port).await);

    let phase = Instant::now();
    let cpu = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(120)).await;
    rows.push(Row::measure("idle, 120 s", phase, cpu, pid, &sampler, port).await);

    let phase = Instant::now();
    let cpu = cpu_seconds(pid);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = ns.api::<Deployment>();
            async move {
                let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v2"}]}}}});
                api.patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Strategic(&patch)).await.map(drop)
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    all_reach(&ns, count, CanaryPhase::Succeeded, Duration::from_secs(3600)).await;
    rows.push(Row::measure("every Canary rolled out", phase, cpu, pid, &sampler, port).await);

    let _ = controller.kill().await;
    let mut table = format!(
        "## The controller with {count} Canaries (interval {interval}, {workers} workers)\n\n\
         | phase | wall s | CPU s | CPU % of one core | RSS MiB at end | peak RSS MiB | mean tick ms | ticks late: p50 / p99 / max bucket s (count) |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for row in &rows {
        table.push_str(&row.line());
    }
    table.push_str(&format!(
        "\nCreating the {count} Deployments and Canaries took {:.0} s. Each Canary's target has one \
         replica on the scale node, whose pods kwok plays. Lateness is the controller's own \
         `serin_canary_reconcile_lateness_seconds`, cumulative from its start (upper bucket bounds).\n",
        created.as_secs_f64()
    ));
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("controller.md"), &table).unwrap();
    ns.delete().await;
    let _ = Api::<Node>::all(client).delete(SCALE_NODE, &DeleteParams::default()).await;
}

/// The node kwok plays pods on, tainted so that no other test's pods land there.
async fn add_scale_node(client: &kube::Client, count: usize) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": SCALE_NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "serin.dev/max-pods": (count * 3 + 100).to_string()},
            "labels": {"kubernetes.io/hostname": SCALE_NODE, "type": "kwok-scale"},
        },
        "spec": {
            "podCIDR": "10.246.0.0/16", "podCIDRs": ["10.246.0.0/16"],
            "taints": [{"key": "serin.dev/scale", "value": "true", "effect": "NoSchedule"}],
        },
    }))
    .unwrap();
    let nodes = Api::<Node>::all(client.clone());
    apply(&nodes, &node).await;
    eventually("the scale node Ready", Duration::from_secs(60), || async {
        let node = nodes.get(SCALE_NODE).await.map_err(|e| e.to_string())?;
        let ready = node.status.and_then(|s| s.conditions).unwrap_or_default();
        if ready.iter().any(|c| c.type_ == "Ready" && c.status == "True") { Ok(()) } else { Err(format!("{ready:?}")) }
    })
    .await;
}

fn workload(i: usize, version: &str) -> Deployment {
    let name = format!("app-{i}");
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": SCALE_NODE},
                    "tolerations": [{"key": "serin.dev/scale", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "app", "image": format!("serin-testapp:{version}"),
                        "ports": [{"name": "http", "containerPort": 9898}]}],
                },
            },
        },
    }))
    .unwrap()
}

fn canary(ns: &TestNamespace, i: usize, interval: &str) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": format!("app-{i}"), "namespace": ns.name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("app-{i}")},
            "service": {"port": 9898, "targetPort": "http"},
            "progressDeadlineSeconds": 3600,
            "analysis": {"interval": interval, "threshold": 2, "stepWeight": 50, "maxWeight": 50},
        },
    }))
    .unwrap()
}

/// Waits until every Canary of the namespace is in `phase`.
async fn all_reach(ns: &TestNamespace, count: usize, phase: CanaryPhase, limit: Duration) {
    eventually(&format!("{count} Canaries {phase}"), limit, || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let canaries = ns.api::<Canary>().list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let done = canaries.items.iter().filter(|c| c.status.as_ref().is_some_and(|s| s.phase == phase)).count();
        if done == count { Ok(()) } else { Err(format!("{done} of {count}")) }
    })
    .await;
}

/// Samples the process's resident memory every 200 ms, keeping the peak since the last reset.
struct Sampler {
    peak_kib: Arc<Mutex<u64>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak_kib = Arc::new(Mutex::new(0));
        let peak = peak_kib.clone();
        tokio::spawn(async move {
            while let Some(kib) = rss_kib(pid) {
                {
                    let mut peak = peak.lock().unwrap();
                    *peak = (*peak).max(kib);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Sampler { peak_kib }
    }

    fn take_peak(&self) -> u64 {
        std::mem::take(&mut *self.peak_kib.lock().unwrap())
    }
}

struct Row {
    label: &'static str,
    wall: f64,
    cpu: f64,
    rss_kib: u64,
    peak_kib: u64,
    lateness: String,
    /// Mean time one tick took in this phase, from the controller's tick-duration histograms.
    mean_tick_ms: f64,
}

impl Row {
    async fn measure(
        label: &'static str,
        since: Instant,
        cpu_before: f64,
        pid: u32,
        sampler: &Sampler,
        port: u16,
    ) -> Row {
        let rss_kib = rss_kib(pid).unwrap_or(0);
        let (sum, count) = tick_totals(port).await;
        let (sum_before, count_before) = std::mem::replace(&mut *TICKS.lock().unwrap(), (sum, count));
        Row {
            mean_tick_ms: 1000.0 * (sum - sum_before) / (count - count_before).max(1.0),
            label,
            wall: since.elapsed().as_secs_f64(),
            cpu: cpu_seconds(pid) - cpu_before,
            rss_kib,
            peak_kib: sampler.take_peak().max(rss_kib),
            lateness: lateness(port).await,
        }
    }

    fn line(&self) -> String {
        format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} |\n",
            self.label,
            self.wall,
            self.cpu,
            100.0 * self.cpu / self.wall,
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.mean_tick_ms,
            self.lateness
        )
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.parse().ok())
}

/// User plus system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// The tick-duration totals at the end of the last phase measured.
static TICKS: Mutex<(f64, f64)> = Mutex::new((0.0, 0.0));

/// Seconds spent in ticks and ticks run so far, summed over every Canary.
async fn tick_totals(port: u16) -> (f64, f64) {
    let Ok((200, text)) = http_get(std::net::Ipv4Addr::LOCALHOST, port, "/metrics").await else { return (0.0, 0.0) };
    let total = |suffix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("serin_canary_duration_seconds_{suffix}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (total("sum"), total("count"))
}

/// p50, p99 and the highest bucket of the controller's lateness histogram.
async fn lateness(port: u16) -> String {
    let Ok((200, text)) = http_get(std::net::Ipv4Addr::LOCALHOST, port, "/metrics").await else {
        return "(no metrics)".into();
    };
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("serin_canary_reconcile_lateness_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (bound, count) = l.split_once("\"} ")?;
            Some((bound.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        return "(none due yet)".into();
    }
    let at = |q: f64| buckets.iter().find(|(_, c)| *c >= q * total).map_or(f64::INFINITY, |b| b.0);
    let max = buckets.iter().find(|(_, c)| *c >= total).map_or(f64::INFINITY, |b| b.0);
    format!("{} / {} / {} ({total})", at(0.5), at(0.99), max)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
