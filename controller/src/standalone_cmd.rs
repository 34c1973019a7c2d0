//! `serin-controller standalone` and `serin-controller status`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serin_controller::analysis::MetricSources;
use serin_controller::analysis::scrape::MeshproxyScraper;
use serin_controller::api::{self, Api};
use serin_controller::hooks::gates::GateStore;
use serin_controller::outbound::Outbound;
use serin_controller::standalone::Standalone;
use serin_controller::standalone::demo::{self, DemoOptions, DemoStrategy};
use serin_controller::standalone::manifests::ManifestSource;
use serin_controller::standalone::router::MeshproxyAdmin;
use serin_controller::standalone::state::StateStore;

#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {
    /// Folder with Canary, MetricTemplate, AlertProvider, TrafficPolicy and HTTPRoute YAML, a
    /// `services.yaml` of endpoint groups, and secrets as `secrets/<name>/<key>` files.
    #[arg(long)]
    pub manifests: PathBuf,
    /// The endpoint groups file. Default: `services.yaml` in the manifests folder.
    #[arg(long)]
    pub services: Option<PathBuf>,
    /// The state folder (one file per Canary). Default: `.serin` in the manifests folder.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Gate file. Default: `.serin/gates.json` in the manifests folder.
    #[arg(long)]
    pub gates: Option<PathBuf>,
    /// meshproxy's admin API.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    pub meshproxy_admin: String,
    /// The controller's API: `/healthz`, `/status`, `/gates`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub api: SocketAddr,
    /// A Prometheus server for the builtin metrics; without one, meshproxy is scraped directly.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Fewer requests than this in a metric's window is no data.
    #[arg(long, default_value_t = 10)]
    pub min_requests: u64,
    /// How often meshproxy is scraped when there is no Prometheus.
    #[arg(long, default_value = "2s", value_parser = serin_crds::duration::parse)]
    pub scrape_interval: Duration,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this Canary (`name` or `namespace/name`).
    pub name: Option<String>,
    /// The state folder, or the manifests folder whose `.serin` to read.
    #[arg(long, default_value = ".")]
    pub state: PathBuf,
    /// Print the whole record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Make v2 fail 30% of its requests and answer 150 ms slower: the rollout ends in a rollback.
    #[arg(long)]
    pub faulty: bool,
    #[arg(long, value_enum, default_value = "canary")]
    pub strategy: DemoStrategy,
    /// Requests per second sent through meshproxy.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// Where manifests, logs, state and the report go. Default: `serin-demo` beside this binary.
    #[arg(long)]
    pub folder: Option<PathBuf>,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let options = DemoOptions {
        strategy: args.strategy,
        faulty: args.faulty,
        rate: args.rate,
        folder: args.folder.unwrap_or_else(demo::default_folder),
    };
    match runtime.block_on(demo::run(options)) {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(problem) => Err(problem.into()),
    }
}

impl StandaloneArgs {
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| self.manifests.join(".serin"))
    }

    pub fn gates_path(&self) -> PathBuf {
        self.gates.clone().unwrap_or_else(|| self.manifests.join(".serin").join("gates.json"))
    }
}

pub fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = crate::controller_runtime()?;
    runtime.block_on(async move {
        let client = Outbound::new();
        let embedded = match &args.prometheus {
            Some(_) => None,
            None => Some(Arc::new(MeshproxyScraper::new(
                vec![args.meshproxy_admin.clone()],
                Duration::from_secs(15 * 60),
                client.clone(),
            ))),
        };
        if let Some(scraper) = &embedded {
            tokio::spawn(scraper.clone().run(args.scrape_interval));
        }
        let metrics = MetricSources {
            client: client.clone(),
            prometheus: args.prometheus.clone(),
            embedded,
            min_requests: args.min_requests,
            query_timeout: Duration::from_secs(10),
        };
        let source = ManifestSource::new(&args.manifests, args.services.as_deref());
        let admin = MeshproxyAdmin::new(&args.meshproxy_admin, client);
        let controller = Standalone::new(source, StateStore::new(&args.state_dir()), admin, metrics)?;
        let gates = Arc::new(GateStore::open_file(&args.gates_path()).map_err(anyhow::Error::msg)?);
        let state = controller.state.clone();
        let status = Arc::new(move || serde_json::to_value(&*state.lock().expect("state lock")).unwrap_or_default());
        let requests = Some(api::RequestSink::Local(controller.requests.clone()));
        let canaries = Some(Arc::new(controller.view(gates.clone())));
        let api = Api { gates: Some(gates), gate_check: None, status: Some(status), metrics: None, requests, canaries };
        let address = api::start(args.api, Arc::new(api))
            .await
            .with_context(|| format!("cannot listen on {} for the API", args.api))?;
        tracing::info!(api = %address, canaries = controller.manifests().canaries.len(), "serin standalone controller running");
        let shutdown = async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate.recv() => {},
            }
            Ok::<_, std::io::Error>(())
        };
        tokio::select! {
            () = controller.run() => {},
            _ = shutdown => tracing::info!("stopping; rollouts resume from the state file on the next start"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    // The manifests folder (holding `.serin`) or the state folder itself.
    let path = if args.state.join(".serin").is_dir() { args.state.join(".serin") } else { args.state.clone() };
    anyhow::ensure!(
        path.join("canaries").is_dir() || path.join("state.json").is_file(),
        "{}: no Serin state here (has `serin-controller standalone` run here?)",
        path.display()
    );
    let state = StateStore::new(&path).load()?;
    let selected: Vec<_> = state
        .canaries
        .iter()
        .filter(|(key, _)| match &args.name {
            None => true,
            Some(name) => *key == name || key.rsplit('/').next() == Some(name.as_str()),
        })
        .collect();
    if let Some(name) = &args.name {
        anyhow::ensure!(!selected.is_empty(), "no Canary {name} in {}", path.display());
    }
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            selected.iter().map(|(k, r)| (k.to_string(), serde_json::to_value(r).unwrap_or_default())).collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<17} {:>6} {:>6} {:>6}  MESSAGE", "CANARY", "PHASE", "WEIGHT", "ITER", "FAILED");
    for (key, record) in &selected {
        let status = record.status.clone().unwrap_or_default();
        println!(
            "{key:<24} {:<17} {:>5}% {:>6} {:>6}  {}",
            status.phase.to_string(),
            status.canary_weight,
            status.iterations,
            status.failed_checks,
            status.message
        );
        for metric in &status.metrics {
            let shown = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            let primary = metric.primary_value.map(|p| format!(" (primary {})", shown(Some(p)))).unwrap_or_default();
            println!("    {:<22} {:>10}{primary}  {:?}", metric.name, shown(metric.value), metric.outcome);
        }
        if args.name.is_some() {
            for event in record.events.iter().rev().take(10).rev() {
                println!("    {} {:<7} {}: {}", event.at.strftime("%H:%M:%S"), event.kind, event.reason, event.message);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
