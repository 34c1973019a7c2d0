//! The proxy listener: accepts HTTP/1.1 and HTTP/2 on one port, in clear text (h2c by prior
//! knowledge) or over TLS (h2 or http/1.1 by ALPN), and hands each request to `forward`.

mod admit;
mod client;
mod client_body;
mod error;
mod forward;
mod head;
mod headers;
mod mirror;
mod mirror_task;
mod observe;
mod path;
mod preview;
mod protocol_probe;
mod replay;
mod request_checks;
mod route;
mod send;
pub mod tls;
mod trace;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use client::{Body, BoxError, Upstreams};
pub use error::{Blame, ProxyError};
pub use head::RequestHead;
pub use path::normalize as normalize_path;
pub use preview::{Preview, preview};
pub use route::Peer;

use crate::access_log::AccessLog;
use crate::metrics::ProxyMetrics;
use crate::store::ConfigStore;

/// What clients may send and hold, and how what they send is read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time allowed to send a request's headers (slowloris protection).
    pub header_read_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
    /// Most client connections open at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Route and forward request paths in their normal form (see `path`).
    pub normalize_paths: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            normalize_paths: true,
        }
    }
}

/// What every request shares.
pub struct Shared {
    pub store: Arc<ConfigStore>,
    pub upstreams: Upstreams,
    pub metrics: Arc<ProxyMetrics>,
    pub limits: Limits,
    pub access_log: AccessLog,
}

/// A running proxy listener.
pub struct ProxyServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    accept_loop: JoinHandle<GracefulShutdown>,
}

impl ProxyServer {
    /// Listens on `listen`; with `tls`, every connection must start with a TLS handshake.
    pub async fn start(
        listen: SocketAddr,
        shared: Arc<Shared>,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<ProxyServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let accept_loop = tokio::spawn(accept(listener, shared, tls, stopped));
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

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut stopped: oneshot::Receiver<()>,
) -> GracefulShutdown {
    let connections = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(shared.limits.header_read_timeout);
    builder.http1().max_buf_size(shared.limits.max_header_bytes.max(8192));
    // HTTP/2's known attacks, bounded (h2 and hyper do the work; the numbers are ours to own):
    // at most 200 streams at once, a connection whose peer resets more than 20 streams before
    // they are served (rapid reset) or makes 1024 stream errors is closed with GOAWAY, header
    // blocks (CONTINUATION included) stop at the head size, at most 400 KB is buffered per stream
    // for a peer that does not open its window, and a peer that stops answering PINGs is dropped.
    builder
        .http2()
        .max_header_list_size(shared.limits.max_header_bytes as u32)
        .max_concurrent_streams(200)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .max_send_buf_size(400 * 1024)
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(Builders { http2_only: builder.clone().http2_only(), either: builder });
    let open = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => break,
            permit = open.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
        };
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
        let (shared, builder, watcher, tls) = (shared.clone(), builder.clone(), connections.watcher(), tls.clone());
        tokio::spawn(async move {
            serve(stream, peer, shared, &builder, watcher, tls).await;
            drop(permit);
        });
    }
    connections
}

/// The connection builders: the clear-text port tells HTTP/2 from HTTP/1.1 by the preface; a TLS
/// connection whose ALPN agreed on h2 is HTTP/2 only.
struct Builders {
    either: auto::Builder<TokioExecutor>,
    http2_only: auto::Builder<TokioExecutor>,
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: &Builders,
    watcher: Watcher,
    tls: Option<TlsAcceptor>,
) {
    let header_read_timeout = shared.limits.header_read_timeout;
    let client = route::Peer { address: peer, tls: tls.is_some() };
    let service = service_fn(move |request| forward::forward(shared.clone(), client, request));
    let result = match tls {
        None => {
            // A client that never sends a byte holds a connection slot: it gets as long as one
            // sending its headers would, then is dropped.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await, Ok(Ok(1..))) {
                tracing::debug!(%peer, "client sent nothing within the header read timeout");
                return;
            }
            watcher.watch(builder.either.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
        }
        Some(acceptor) => {
            // The handshake counts against the header read time: a silent client is dropped.
            let stream = match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            // ALPN decided: a client that said h2 speaks HTTP/2 or nothing (an invalid preface
            // ends the connection, RFC 9113 §3.4; HTTP/2 has no upgrades to serve).
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                watcher.watch(builder.http2_only.serve_connection(TokioIo::new(stream), service)).await
            } else {
                watcher.watch(builder.either.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "client connection ended with an error");
    }
}
