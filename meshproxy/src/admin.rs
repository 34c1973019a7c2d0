//! The admin API, on loopback: liveness, readiness, metrics, and the config (read it, replace it
//! whole, or set one route's weights). Every change is checked first; a refused one answers 400
//! with the error and leaves the config in use untouched. Paths and bodies are the contract in
//! `serin_meshproxy_api::admin`.
//!
//! When the config comes from the cluster, the admin API only reads: a change there would be
//! undone by the next one from the cluster, and writing is for the HTTPRoutes' owners. The metrics
//! listener, which Prometheus and probes reach from other pods, serves only `/live`, `/ready` and
//! `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serin_meshproxy_api::admin::{AdminError, ConfigReply, GenerationReply, RouteWeights};
use tokio::net::TcpListener;

use crate::config::parse_config;
use crate::metrics::ProxyMetrics;
use crate::store::ConfigStore;

/// Largest config accepted through the API: room for ten thousand Canaries with their routes.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct Admin {
    pub store: Arc<ConfigStore>,
    pub metrics: Arc<ProxyMetrics>,
    pub writes: Writes,
}

/// Whether the config may be changed through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Allowed,
    /// The config comes from the Kubernetes API.
    FromCluster,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Everything: the admin API, on loopback.
    Admin,
    /// Liveness, readiness and metrics only: safe to reach from other pods.
    Observe,
}

/// Binds the admin listener and serves it in the background; returns its address.
pub async fn start(listen: SocketAddr, admin: Arc<Admin>) -> std::io::Result<SocketAddr> {
    serve(listen, admin, Exposure::Admin).await
}

/// Binds a listener serving `exposure` and serves it in the background; returns its address.
pub async fn serve(listen: SocketAddr, admin: Arc<Admin>, exposure: Exposure) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let admin = admin.clone();
            let service = service_fn(move |request| admin.clone().handle(request, exposure));
            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            tokio::spawn(connection);
        }
    });
    Ok(addr)
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

impl Admin {
    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        exposure: Exposure,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method().clone();
        let observing = matches!((&method, segments.as_slice()), (&Method::GET, ["live" | "ready" | "metrics"]));
        if exposure == Exposure::Observe && !observing {
            return Ok(text(StatusCode::NOT_FOUND, "this listener serves GET /live, /ready and /metrics only\n"));
        }
        if self.writes == Writes::FromCluster && method != Method::GET {
            return Ok(json_response(
                StatusCode::CONFLICT,
                &AdminError {
                    error: "the config comes from the Kubernetes API (meshproxy run --kubernetes): change the \
                            HTTPRoutes, Services and TrafficPolicies instead"
                        .to_string(),
                },
            ));
        }
        let response = match (method, segments.as_slice()) {
            (Method::GET, ["live"]) => text(StatusCode::OK, "live\n"),
            (Method::GET, ["ready"]) if self.store.is_ready() => text(StatusCode::OK, "ready\n"),
            (Method::GET, ["ready"]) if self.store.is_leaving() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            }
            (Method::GET, ["ready"]) => {
                text(StatusCode::SERVICE_UNAVAILABLE, "waiting for the first complete config from the cluster\n")
            }
            (Method::GET, ["metrics"]) => {
                self.metrics.config_generation.set(self.store.load().generation as i64);
                let mut response = text(StatusCode::OK, &self.metrics.render());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                response
            }
            (Method::GET, ["config"]) => {
                let loaded = self.store.load();
                json_response(
                    StatusCode::OK,
                    &ConfigReply { generation: loaded.generation, config: loaded.config.clone() },
                )
            }
            (Method::GET, ["config", "generation"]) => {
                json_response(StatusCode::OK, &GenerationReply { generation: self.store.load().generation })
            }
            (Method::PUT, ["config"]) => match read_body(request).await {
                Err(response) => response,
                Ok(text) => written(self.replace_config(&text)),
            },
            (Method::PUT, ["routes", namespace, name, "weights"]) => {
                let (namespace, name) = (namespace.to_string(), name.to_string());
                match read_body(request).await {
                    Err(response) => response,
                    Ok(text) => written(self.set_route_weights(&namespace, &name, &text)),
                }
            }
            _ => text(StatusCode::NOT_FOUND, &format!("no admin endpoint {} {path}\n", request.method())),
        };
        Ok(response)
    }
}

impl Admin {
    /// `PUT /config`, its body read: the new config's generation, or why it was refused (the
    /// config in use is then untouched).
    pub fn replace_config(&self, text: &str) -> Result<u64, String> {
        let generation =
            parse_config("admin API", text).and_then(|config| self.store.replace(config)).map_err(|e| e.to_string())?;
        tracing::info!(generation, "config replaced through the admin API");
        Ok(generation)
    }

    /// `PUT /routes/{namespace}/{name}/weights`, its body read: as `replace_config`.
    pub fn set_route_weights(&self, namespace: &str, name: &str, text: &str) -> Result<u64, String> {
        let weights = serde_json::from_str::<RouteWeights>(text)
            .map_err(|error| format!("admin API: the body must map backend names to weights: {error}"))?;
        self.store.set_weights(namespace, name, &weights).map_err(|error| error.from_source("admin API").to_string())
    }
}

/// The answer to a config change.
fn written(outcome: Result<u64, String>) -> Response<Body> {
    match outcome {
        Ok(generation) => json_response(StatusCode::OK, &GenerationReply { generation }),
        Err(why) => refused(&why),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<String, Response<Body>> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => {
            String::from_utf8(collected.to_bytes().to_vec()).map_err(|_| refused("the body is not UTF-8 text"))
        }
        Err(error) => Err(refused(&format!("cannot read the body (at most {MAX_BODY} bytes): {error}"))),
    }
}

fn refused(why: &str) -> Response<Body> {
    tracing::warn!(why, "config change refused");
    json_response(StatusCode::BAD_REQUEST, &AdminError { error: why.to_string() })
}

fn text(code: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = code;
    response
}

fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let mut response = text(code, &serde_json::to_string(body).expect("admin replies serialize"));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}
