//! `serin-controller demo`: a whole progressive rollout on one machine. It starts meshproxy, two
//! versions of the sample app, steady traffic through meshproxy and the standalone controller (all
//! real processes but the traffic), deploys v2 by repointing the `podinfo-canary` endpoint group,
//! shows each step live, writes an HTML report, and exits 0 when v2 is promoted, 1 when it is
//! rolled back. Every process it started ends with it, on Ctrl-C too.

pub mod error;
pub mod processes;
pub mod report;
mod traffic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serin_crds::CanaryPhase;
use tokio::process::Command;

use crate::analysis::scrape::{BackendKey, MeshproxyScraper};
use crate::outbound::Outbound;
use crate::standalone::state::StateStore;
pub use error::DemoError;
use processes::{Binaries, Children, free_port, wait_listening};
use report::Sample;

/// How the demo's rollout runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoStrategy {
    /// Shift traffic in steps of 20% up to 60%.
    Canary,
    /// Requests with `x-canary: insider` go to v2 for five iterations.
    Ab,
    /// v2 is judged on mirrored traffic for five iterations, then takes everything at once.
    BlueGreen,
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub strategy: DemoStrategy,
    /// v2 fails 30% of its requests and adds latency.
    pub faulty: bool,
    /// Requests per second through meshproxy.
    pub rate: u32,
    /// Where the manifests, logs, state and report go.
    pub folder: PathBuf,
}

/// The demo's Canary, as the state names it.
const CANARY: &str = "test/podinfo";

/// What the demo's Canary asks of v2, also drawn on the report's charts.
const THRESHOLDS: report::Thresholds = report::Thresholds { success_min: 95.0, p99_max_ms: 100.0 };

/// Longest a demo rollout may take before it is called stuck.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(150);

/// Runs the demo; `Ok(true)` when v2 was promoted.
pub async fn run(options: DemoOptions) -> Result<bool, DemoError> {
    let binaries = Binaries::locate()?;
    let folder = &options.folder;
    if folder.exists() {
        std::fs::remove_dir_all(folder).map_err(DemoError::io(format!("cannot clear {}", folder.display())))?;
    }
    let manifests = folder.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(DemoError::io(manifests.display().to_string()))?;
    let mut children = Children::default();
    let outcome = tokio::select! {
        outcome = rollout(&options, &binaries, &manifests, &mut children) => outcome,
        _ = tokio::signal::ctrl_c() => Err(DemoError::Interrupted),
    };
    children.stop_all().await;
    outcome
}

async fn rollout(
    options: &DemoOptions,
    binaries: &Binaries,
    manifests: &Path,
    children: &mut Children,
) -> Result<bool, DemoError> {
    let folder = &options.folder;
    let port = |_: &str| free_port();
    let (v1, v2, proxy, admin, api) = (port("v1")?, port("v2")?, port("proxy")?, port("admin")?, port("api")?);
    let address = |p: u16| -> std::net::SocketAddr { ([127, 0, 0, 1], p).into() };

    println!(
        "Serin demo: a {} rollout of podinfo v1 -> v2{}",
        strategy_name(options.strategy),
        if options.faulty { " (v2 is faulty)" } else { "" }
    );
    children.spawn(
        "podinfo v1",
        Command::new(&binaries.testapp).args(["--listen", &address(v1).to_string(), "--app-version", "v1"]),
        &folder.join("podinfo-v1.log"),
    )?;
    let mut v2_command = Command::new(&binaries.testapp);
    v2_command.args(["--listen", &address(v2).to_string(), "--app-version", "v2"]);
    if options.faulty {
        v2_command.args(["--error-rate", "0.3", "--latency-ms", "150"]);
    }
    children.spawn("podinfo v2", &mut v2_command, &folder.join("podinfo-v2.log"))?;
    std::fs::write(folder.join("meshproxy.yaml"), "services: []\n").map_err(DemoError::io("meshproxy.yaml"))?;
    children.spawn(
        "meshproxy",
        Command::new(&binaries.meshproxy).args([
            "run",
            "--config",
            &folder.join("meshproxy.yaml").display().to_string(),
            "--listen",
            &address(proxy).to_string(),
            "--admin",
            &address(admin).to_string(),
        ]),
        &folder.join("meshproxy.log"),
    )?;
    for (what, p) in [("podinfo v1", v1), ("podinfo v2", v2), ("meshproxy", proxy), ("meshproxy admin", admin)] {
        wait_listening(address(p), what).await?;
    }
    write_manifests(manifests, options.strategy, address(v1), "v1")?;
    children.spawn(
        "serin-controller",
        Command::new(&binaries.controller).args([
            "standalone",
            "--manifests",
            &manifests.display().to_string(),
            "--meshproxy-admin",
            &format!("http://{}", address(admin)),
            "--api",
            &address(api).to_string(),
            "--scrape-interval",
            "1s",
            "--min-requests",
            "5",
        ]),
        &folder.join("controller.log"),
    )?;
    println!("  meshproxy     http://{} (admin http://{})", address(proxy), address(admin));
    println!("  controller    http://{}/status", address(api));
    println!("  work folder   {}", folder.display());

    let store = StateStore::new(&manifests.join(".serin"));
    wait_phase(&store, children, &[CanaryPhase::Initialized], Duration::from_secs(30)).await?;
    let header = (options.strategy == DemoStrategy::Ab).then_some(("x-canary", "insider"));
    let traffic = traffic::Traffic::start(address(proxy), "podinfo.test", options.rate, header);
    // A few seconds of v1 alone, so the primary has a baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("\nDeploying v2: the podinfo-canary endpoint group now points at {}\n", address(v2));
    write_manifests(manifests, options.strategy, address(v2), "v2")?;

    let scraper =
        MeshproxyScraper::new(vec![format!("http://{}", address(admin))], Duration::from_secs(60), Outbound::new());
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    println!("{}", report::header_line());
    let final_phase = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(exited) = children.exited() {
            return Err(DemoError::ProcessExited { exited, folder: folder.clone() });
        }
        let _ = scraper.scrape().await;
        let record = store.load_one(CANARY).ok().flatten();
        let status = record.and_then(|r| r.status).unwrap_or_default();
        let window = Duration::from_secs(5);
        let measure = |backend: &str| {
            scraper
                .delta(&BackendKey { namespace: "test".into(), backend: backend.into() }, window)
                .filter(|d| d.requests > 0.0)
        };
        let (canary, primary) = (measure("podinfo-canary"), measure("podinfo-primary"));
        let sample = Sample {
            seconds: started.elapsed().as_secs_f64(),
            phase: status.phase.to_string(),
            canary_weight: status.canary_weight,
            iterations: status.iterations,
            canary_success: canary.as_ref().map(|d| d.success_rate()),
            primary_success: primary.as_ref().map(|d| d.success_rate()),
            canary_p99_ms: canary.as_ref().map(|d| d.latency_ms(0.99)).filter(|v| v.is_finite()),
            primary_p99_ms: primary.as_ref().map(|d| d.latency_ms(0.99)).filter(|v| v.is_finite()),
        };
        println!("{}", report::live_line(&sample));
        samples.push(sample);
        if matches!(status.phase, CanaryPhase::Succeeded | CanaryPhase::Failed)
            && started.elapsed() > Duration::from_secs(3)
        {
            break status;
        }
        if started.elapsed() > ROLLOUT_LIMIT {
            return Err(DemoError::PhaseNotReached {
                wanted: "Succeeded or Failed".into(),
                limit: ROLLOUT_LIMIT,
                phase: status.phase.to_string(),
                folder: folder.clone(),
            });
        }
    };
    let sent = traffic.stop();
    let record = store.load_one(CANARY).ok().flatten().unwrap_or_default();
    let deployed_at = started;
    let events: Vec<(f64, String)> = record
        .events
        .iter()
        .map(|e| {
            let age = jiff::Timestamp::now().duration_since(e.at).as_secs_f64();
            ((deployed_at.elapsed().as_secs_f64() - age).max(0.0), format!("{}: {}", e.reason, e.message))
        })
        .collect();
    let promoted = final_phase.phase == CanaryPhase::Succeeded;
    let outcome = if promoted {
        format!("Succeeded: v2 promoted in {:.0}s. {}", started.elapsed().as_secs_f64(), final_phase.message)
    } else {
        format!(
            "Failed: v2 rolled back, all traffic on v1. {}",
            final_phase.last_failure_reason.clone().unwrap_or(final_phase.message.clone())
        )
    };
    let report_path = folder.join("report.html");
    let title = format!("Serin demo: {} rollout of podinfo", strategy_name(options.strategy));
    std::fs::write(&report_path, report::html(&title, &outcome, &samples, &events, &THRESHOLDS))
        .map_err(DemoError::io(report_path.display().to_string()))?;
    println!("\n{outcome}");
    println!(
        "Traffic: {} requests sent, {} answered 5xx, {} failed to connect",
        sent.sent, sent.server_errors, sent.transport_errors
    );
    println!("Report: {}", report_path.display());
    Ok(promoted)
}

fn strategy_name(strategy: DemoStrategy) -> &'static str {
    match strategy {
        DemoStrategy::Canary => "canary",
        DemoStrategy::Ab => "A/B",
        DemoStrategy::BlueGreen => "blue/green",
    }
}

async fn wait_phase(
    store: &StateStore,
    children: &mut Children,
    phases: &[CanaryPhase],
    limit: Duration,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + limit;
    let folder = store.dir().parent().and_then(Path::parent).unwrap_or(Path::new(".")).to_path_buf();
    loop {
        if let Some(exited) = children.exited() {
            return Err(DemoError::ProcessExited { exited, folder });
        }
        let phase = store.load_one(CANARY).ok().flatten().and_then(|r| r.status.map(|s| s.phase));
        if phase.is_some_and(|p| phases.contains(&p)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::PhaseNotReached {
                wanted: format!("{phases:?}"),
                limit,
                phase: format!("{phase:?}"),
                folder,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The services file (the canary group pointing at `canary`) and the Canary for `strategy`.
fn write_manifests(
    folder: &Path,
    strategy: DemoStrategy,
    canary: std::net::SocketAddr,
    version: &str,
) -> Result<(), DemoError> {
    let services = format!(
        "# Endpoint groups. Repointing podinfo-canary deploys a new version; the controller owns podinfo-primary.\nservices:\n  - name: podinfo-canary\n    namespace: test\n    labels: {{version: {version}}}\n    endpoints: [{{address: \"{canary}\"}}]\n"
    );
    let steps = match strategy {
        DemoStrategy::Canary => "    stepWeight: 20\n    maxWeight: 60\n",
        DemoStrategy::Ab => "    iterations: 5\n    match:\n      - headers: {x-canary: {exact: insider}}\n",
        DemoStrategy::BlueGreen => "    iterations: 5\n    mirror: true\n",
    };
    let canary_yaml = format!(
        r#"apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
  analysis:
    interval: 2s
    threshold: 2
{steps}    metrics:
      - name: request-success-rate
        interval: 10s
        thresholdRange: {{min: {success_min}}}
      - name: request-duration
        interval: 10s
        thresholdRange: {{max: {p99_max_ms}}}
"#,
        success_min = THRESHOLDS.success_min,
        p99_max_ms = THRESHOLDS.p99_max_ms,
    );
    let write = |name: &str, text: &str| {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(DemoError::io(path.display().to_string()))
    };
    write("canary.yaml", &canary_yaml)?;
    write("services.yaml", &services)
}

/// Where the demo puts its files unless told: beside the build, so `cargo clean` removes them.
pub fn default_folder() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|p| p.join("serin-demo")))
        .unwrap_or_else(|| std::env::temp_dir().join("serin-demo"))
}
