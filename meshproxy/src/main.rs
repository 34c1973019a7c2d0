//! `meshproxy`: run the proxy, or check a config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serin_meshproxy::access_log::AccessLog;
use serin_meshproxy::config::ProxyConfig;
use serin_meshproxy::config::parse_config;
use serin_meshproxy::kubernetes::{self, Scope};
use serin_meshproxy::launch::{self, ConfigSource, Launch, Running};
use serin_meshproxy::proxy::{Limits, tls};

#[derive(Parser)]
#[command(
    name = "meshproxy",
    version,
    about = "Serin's L7 proxy: routes by Gateway API HTTPRoutes with weighted backends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with the services and routes of a config file (reloaded when it changes), or
    /// with those of the cluster it runs in (--kubernetes).
    Run(Box<RunArgs>),
    /// Check a config file and exit: 0 if meshproxy would accept it, 1 with the error if not.
    Check { config: PathBuf },
}

#[derive(Args)]
struct RunArgs {
    /// The config: `services`, `routes` (HTTPRoutes) and `trafficPolicies`, in YAML.
    #[arg(long, required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    config: Option<PathBuf>,
    /// Take the config from the cluster instead: HTTPRoutes attached to Services, TrafficPolicies,
    /// Services and EndpointSlices, watched through the Kubernetes API (in-cluster credentials, or
    /// KUBECONFIG). The admin API then only reads.
    #[arg(long)]
    kubernetes: bool,
    /// With --kubernetes: serve this namespace only, as a waypoint does (default: every namespace).
    #[arg(long, requires = "kubernetes")]
    namespace: Option<String>,
    /// Also serve /live, /ready and /metrics (nothing else) here, for probes and Prometheus from
    /// other pods, e.g. 0.0.0.0:4190.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Where clients connect (HTTP/1.1 and h2c; HTTP/1.1 and h2 by ALPN with --tls-cert).
    #[arg(long, default_value = "127.0.0.1:4140")]
    listen: SocketAddr,
    /// The admin API (/live, /ready, /metrics, /config); keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:4191")]
    admin: SocketAddr,
    /// Worker threads; 1 runs everything on one thread, as a sidecar should.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Seconds to keep taking connections after SIGTERM, unready and answering HTTP/1.1 with
    /// `Connection: close`, so that Services and clients move away before the port closes (what a
    /// preStop sleep does for other programs).
    #[arg(long, default_value_t = 0)]
    shutdown_delay_seconds: u64,
    /// Seconds to let requests in flight finish after SIGTERM (after the shutdown delay).
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake).
    #[arg(long, default_value_t = 10)]
    header_read_timeout_seconds: u64,
    /// Largest request head accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Most client connections open at once; further clients wait to be accepted.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Route and forward request paths as received, without normalising them (dot-segments,
    /// escaped unreserved characters, repeated slashes). Rules on paths can then be bypassed.
    #[arg(long)]
    no_normalize_paths: bool,
    /// Seconds to wait for an endpoint to accept a connection.
    #[arg(long, default_value_t = 5)]
    connect_timeout_seconds: u64,
    /// JSON access log lines on stdout: off, on, or sampled:SHARE (e.g. sampled:0.01).
    #[arg(long, default_value = "off")]
    access_log: AccessLog,
    /// PEM certificate chain: serve TLS instead of clear text (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    serin_meshproxy::init_logging();
    // One TLS provider for every client and server in the process (the Kubernetes client's too).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Check { config } => {
            let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            match parse_config(&config.display().to_string(), &text) {
                Ok(parsed) => {
                    println!(
                        "{}: ok ({} services, {} routes, {} traffic policies)",
                        config.display(),
                        parsed.services.len(),
                        parsed.routes.len(),
                        parsed.traffic_policies.len()
                    );
                    Ok(())
                }
                Err(error) => {
                    eprintln!("{error}");
                    std::process::exit(1);
                }
            }
        }
        Command::Run(args) => {
            anyhow::ensure!(args.workers >= 1, "--workers must be at least 1");
            anyhow::ensure!(args.max_connections >= 1, "--max-connections must be at least 1");
            let runtime = if args.workers == 1 {
                tokio::runtime::Builder::new_current_thread().enable_all().build()?
            } else {
                tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers).enable_all().build()?
            };
            runtime.block_on(run(*args))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (config, file) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            (parse_config(&path.display().to_string(), &text)?, Some((path.clone(), text)))
        }
        None => (ProxyConfig::default(), None),
    };
    // Connect before serving, so that missing credentials fail the start with one clear message.
    let cluster = match args.kubernetes {
        true => Some(kube::Client::try_default().await.context(
            "--kubernetes: no Kubernetes credentials (in a pod, the service-account token; elsewhere, KUBECONFIG)",
        )?),
        false => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let launch = Launch {
        config,
        listen: args.listen,
        admin: args.admin,
        limits: Limits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
            max_header_bytes: args.max_header_bytes,
            max_connections: args.max_connections,
            normalize_paths: !args.no_normalize_paths,
        },
        connect_timeout: Duration::from_secs(args.connect_timeout_seconds),
        access_log: args.access_log,
        tls,
        source: if cluster.is_some() { ConfigSource::Cluster } else { ConfigSource::Local },
        observe: args.metrics_listen,
    };
    let Running { store, server, admin: admin_addr, observe } = launch::start(launch).await?;
    tracing::info!(
        proxy = %server.local_addr(),
        admin = %admin_addr,
        metrics = ?observe,
        config = %args.config.as_ref().map_or("the cluster".to_string(), |p| p.display().to_string()),
        tls = args.tls_cert.is_some(),
        "meshproxy serving"
    );
    let leaving = store.clone();
    let mut source_failed = match (file, cluster) {
        (Some((path, text)), _) => {
            tokio::spawn(serin_meshproxy::watch::watch_file(path, store, text));
            None
        }
        (None, Some(client)) => {
            let scope = args.namespace.clone().map_or(Scope::All, Scope::Namespace);
            Some(tokio::spawn(kubernetes::run(client, scope, store)))
        }
        (None, None) => unreachable!("clap requires --config or --kubernetes"),
    };
    let source_ended = async {
        match source_failed.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        ended = source_ended => {
            // The cluster source only ends when it cannot start (a kind not served, no access).
            match ended {
                Ok(Err(error)) => anyhow::bail!("meshproxy --kubernetes: {error}"),
                other => anyhow::bail!("the cluster config source stopped: {other:?}"),
            }
        }
    }
    if args.shutdown_delay_seconds > 0 {
        tracing::info!(seconds = args.shutdown_delay_seconds, "unready; still taking connections before draining");
        leaving.mark_leaving();
        tokio::time::sleep(Duration::from_secs(args.shutdown_delay_seconds)).await;
    }
    let drain_seconds = args.drain_seconds;
    tracing::info!(drain_seconds, "draining");
    if !server.drain(Duration::from_secs(drain_seconds)).await {
        tracing::warn!("requests still in flight after the drain period were cut");
    }
    Ok(())
}
