//! Pooled upstream connections. Pools are keyed by endpoint address, not by route, so a weight
//! change or a config swap re-dials nothing: the same endpoint keeps its connections.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// One client per upstream protocol: HTTP/1.1, and prior-knowledge HTTP/2 for requests that came
/// in over HTTP/2 (gRPC among them), so they keep their streams and trailers.
pub struct Upstreams {
    pub http1: Client<HttpConnector, Body>,
    pub http2: Client<HttpConnector, Body>,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new()).pool_idle_timeout(Duration::from_secs(90)).set_host(false);
        let http1 = builder.build(connector.clone());
        let http2 = builder.clone().http2_only(true).timer(TokioTimer::new()).build(connector);
        Upstreams { http1, http2 }
    }
}
