//! Pooled upstream connections. Pools are keyed by endpoint address, not by route, so a weight
//! change or a config swap re-dials nothing: the same endpoint keeps its connections. Every
//! connection is counted on its endpoint's state for the `meshproxy_upstream_connections` gauge.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::state::{EndpointState, RuntimeState};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// One client per upstream protocol: HTTP/1.1, and prior-knowledge HTTP/2 (h2c) for endpoints
/// whose `appProtocol` says they speak it (gRPC among them), so they keep streams and trailers.
pub struct Upstreams {
    pub http1: Client<CountingConnector, Body>,
    pub http2: Client<CountingConnector, Body>,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration, state: Arc<RuntimeState>) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(true);
        let connector = CountingConnector { inner: connector, state };
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new()).pool_idle_timeout(Duration::from_secs(90)).set_host(false);
        let http1 = builder.build(connector.clone());
        let http2 = builder.clone().http2_only(true).timer(TokioTimer::new()).build(connector);
        Upstreams { http1, http2 }
    }

    /// The client that speaks `version`.
    pub fn for_version(&self, version: http::Version) -> &Client<CountingConnector, Body> {
        if version == http::Version::HTTP_2 { &self.http2 } else { &self.http1 }
    }
}

/// Dials like `HttpConnector` and counts each connection on its endpoint while it is open.
#[derive(Clone)]
pub struct CountingConnector {
    inner: HttpConnector,
    state: Arc<RuntimeState>,
}

type Connecting = Pin<Box<dyn Future<Output = Result<CountedConnection, BoxError>> + Send>>;

impl tower_service::Service<Uri> for CountingConnector {
    type Response = CountedConnection;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let endpoint = uri
            .authority()
            .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
            .and_then(|address| self.state.known_endpoint(address));
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            if let Some(endpoint) = &endpoint {
                endpoint.connections.fetch_add(1, Ordering::Relaxed);
            }
            Ok(CountedConnection { io, endpoint })
        })
    }
}

pub struct CountedConnection {
    io: TokioIo<TcpStream>,
    endpoint: Option<Arc<EndpointState>>,
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        if let Some(endpoint) = &self.endpoint {
            endpoint.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Connection for CountedConnection {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for CountedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CountedConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
