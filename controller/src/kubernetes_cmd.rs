//! `serin-controller kubernetes`: the controller in a cluster (or against any kubeconfig).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serin_controller::analysis::MetricSources;
use serin_controller::api::{Api, RequestSink};
use serin_controller::kube::leader::LeaseConfig;
use serin_controller::kube::requests::ClusterRequests;
use serin_controller::kube::{Context, run, run_replica};
use serin_controller::outbound::Outbound;

#[derive(Args, Debug)]
pub struct KubernetesArgs {
    /// A Prometheus server for the builtin metrics (a Canary's `metricsServer` wins).
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Where `/healthz`, `/readyz`, `/metrics`, the gate checks (`GET /gates/{ns}/{name}/{gate}`) and
    /// operator requests with a bearer token (`POST /canaries/{ns}/{name}/{action}`) are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub api: std::net::SocketAddr,
    /// Lead through this Lease (`namespace/name`) so that one of several replicas reconciles.
    /// Without it, this replica reconciles at once (run one replica).
    #[arg(long)]
    pub leader_election: Option<String>,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Reconcile only Canaries labelled serin.dev/controller-instance=ID, so that several
    /// controllers can share a cluster (default: only Canaries without that label).
    #[arg(long)]
    pub instance: Option<String>,
    /// How many Canaries reconcile at once.
    #[arg(long, default_value_t = serin_controller::kube::DEFAULT_WORKERS)]
    pub workers: u16,
    /// Fewer requests than this in a metric's window is not enough evidence to judge.
    #[arg(long, default_value_t = 10)]
    pub min_requests: u64,
}

pub fn run_in_cluster(args: KubernetesArgs) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = crate::controller_runtime()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes API to talk to: run in a pod, or set KUBECONFIG")?;
        let version = client.apiserver_version().await.context("the Kubernetes API does not answer")?;
        if let Err(missing) = serin_controller::kube::preflight(&client, args.namespace.as_deref(), &serin_controller::kube::required_kinds()).await
        {
            anyhow::bail!("cannot run: {}", missing.join("; "));
        }
        let metrics = MetricSources {
            client: Outbound::new(),
            prometheus: args.prometheus.clone(),
            embedded: None,
            min_requests: args.min_requests,
            query_timeout: Duration::from_secs(10),
        };
        let mut context = Context::new(client, args.namespace.clone(), metrics);
        context.instance = args.instance.clone();
        context.workers = args.workers.max(1);
        let context = Arc::new(context);
        let telemetry = context.clone();
        let gates = context.clone();
        let api = Api {
            gates: None,
            gate_check: Some(Arc::new(move |namespace, name, gate| gates.gate_is_open(namespace, name, gate))),
            status: None,
            metrics: Some(Arc::new(move || telemetry.telemetry.render())),
            requests: Some(RequestSink::Cluster(Arc::new(ClusterRequests { context: context.clone() }))),
            canaries: None,
        };
        let address = serin_controller::api::start(args.api, Arc::new(api))
            .await
            .with_context(|| format!("cannot listen on {} for /healthz and /metrics", args.api))?;
        tracing::info!(kubernetes = %version.git_version, api = %address, "serin controller running in Kubernetes mode");
        match &args.leader_election {
            None => run(context).await,
            Some(lease) => {
                let (namespace, name) = lease
                    .split_once('/')
                    .with_context(|| format!("--leader-election {lease:?}: write it as namespace/name"))?;
                let config = LeaseConfig {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    identity: std::env::var("POD_NAME")
                        .or_else(|_| std::env::var("HOSTNAME"))
                        .unwrap_or_else(|_| format!("serin-controller-{}", std::process::id())),
                    duration: Duration::from_secs(15),
                    renew_every: Duration::from_secs(5),
                };
                run_replica(context, &config).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
