use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Config;
use super::faults::ErrorSchedule;
use super::metrics::AppMetrics;
use super::routes::App;

/// A running testapp. Dropping it without `drain` aborts it.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    accept_loop: JoinHandle<GracefulShutdown>,
}

impl Server {
    /// Binds the listener and starts serving.
    pub async fn start(config: &Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let version = config.version();
        let app = Arc::new(App {
            metrics: AppMetrics::new(&version),
            version,
            message: config.message.clone(),
            hostname: hostname(),
            added_latency: config.added_latency(),
            errors: ErrorSchedule::new(config.error_rate),
            ready: AtomicBool::new(true),
            leaving: AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        let accept_loop = tokio::spawn(accept(listener, app.clone(), stopped));
        Ok(Server { addr, app, stop: Some(stop), accept_loop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn version(&self) -> &str {
        &self.app.version
    }

    /// Stops taking connections and waits up to `grace` for requests in flight; returns whether
    /// they all finished in time.
    pub async fn drain(mut self, grace: Duration) -> bool {
        self.app.ready.store(false, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Ok(connections) = (&mut self.accept_loop).await else { return false };
        tokio::time::timeout(grace, connections.shutdown()).await.is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept(listener: TcpListener, app: Arc<App>, mut stopped: oneshot::Receiver<()>) -> GracefulShutdown {
    let connections = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| app.clone().handle(request));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    connections
}

/// Serves until SIGTERM or Ctrl-C, then drains.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server =
        Server::start(&config).await.map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.listen))?;
    tracing::info!(addr = %server.local_addr(), version = server.version(), "serving");
    shutdown_signal().await;
    server.app.ready.store(false, Ordering::SeqCst);
    server.app.leaving.store(true, Ordering::SeqCst);
    tracing::info!(delay_ms = config.shutdown_delay_ms, "unready; closing the listener after the delay");
    tokio::time::sleep(Duration::from_millis(config.shutdown_delay_ms)).await;
    tracing::info!("draining");
    if !server.drain(Duration::from_secs(config.drain_seconds)).await {
        tracing::warn!(seconds = config.drain_seconds, "requests still in flight after the drain period were cut");
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}
