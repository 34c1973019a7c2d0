//! The proxy listener: accepts HTTP/1.1 and prior-knowledge HTTP/2 (h2c) on one port and hands
//! each request to `forward`.

mod client;
mod forward;
mod headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::Upstreams;
pub use forward::{Limits, Shared};

/// A running proxy listener.
pub struct ProxyServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    accept_loop: JoinHandle<GracefulShutdown>,
}

impl ProxyServer {
    pub async fn start(listen: SocketAddr, shared: Arc<Shared>) -> std::io::Result<ProxyServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let accept_loop = tokio::spawn(accept(listener, shared, stopped));
        Ok(ProxyServer { addr, stop: Some(stop), accept_loop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish within `grace`, closes idle connections.
    /// Returns whether everything finished in time.
    pub async fn drain(mut self, grace: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Ok(connections) = (&mut self.accept_loop).await else { return false };
        tokio::time::timeout(grace, connections.shutdown()).await.is_ok()
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) -> GracefulShutdown {
    let connections = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(shared.limits.header_read_timeout);
    builder.http1().max_buf_size(shared.limits.max_header_bytes.max(8192));
    builder.http2().max_header_list_size(shared.limits.max_header_bytes as u32);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |request| forward::forward(shared.clone(), peer, request));
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "client connection ended with an error");
            }
        });
    }
    connections
}
