//! The controller's HTTP API: health, the built-in gates, and in standalone mode the status of
//! every Canary and operator requests. Bodies are JSON; errors say what was wrong with the request.
//!
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (the controller's own), `GET /status`
//! - `GET /gates`, `GET|POST /gates/{ns}/{name}/{gate}` (200 open, 403 closed),
//!   `POST /gates/{ns}/{name}/{gate}/open|close`
//! - `POST /canaries/{ns}/{name}/{promote|abort|pause|resume|retry}[?id=ID]`: accepted (202) and acted
//!   on at the Canary's next tick; the outcome is in its status (`lastHandledRequest`) and events
//! - `POST /canaries/{ns}/{name}/{open-gate|close-gate}/{gate}`
//! - standalone only, the Canaries as the Kubernetes API serves them: `GET /canaries[/{ns}]` (a
//!   List), `GET /canaries/{ns}/{name}` (the Canary with its status), `.../events` (oldest first)
//!   and `.../target` (the revision to roll out, read from the manifests on disk now)
//!
//! In a cluster, gate checks read the Canary's status and stay open to the cluster; everything
//! that changes a rollout (opening or closing a gate, every operator request) needs a bearer token
//! whose owner may patch the Canary, and becomes the Canary's request annotation (see
//! [`crate::kube::requests`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;

use serin_crds::operator_request::{OperatorRequest, RequestAction};

use crate::hooks::gates::{Gate, GateRequest, GateStore};
use crate::kube::requests::ClusterRequests;
use crate::standalone::requests::RequestStore;
use crate::standalone::view::{CanaryView, TargetError};

/// Reports the status of every Canary, for `GET /status`.
pub type StatusReport = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Whether a gate is open, for gate checks against state kept elsewhere (in a cluster, the Canary's
/// status); `None` for an unknown Canary.
pub type GateCheck = Arc<dyn Fn(&str, &str, &str) -> Option<bool> + Send + Sync>;

/// Renders the controller's metrics, for `GET /metrics`.
pub type MetricsReport = Arc<dyn Fn() -> String + Send + Sync>;

pub struct Api {
    /// The built-in gates; `None` where they must not be changed without authentication (in a
    /// cluster, gates go through the Kubernetes API).
    pub gates: Option<Arc<GateStore>>,
    /// Where gate checks read from when `gates` is `None`.
    pub gate_check: Option<GateCheck>,
    pub status: Option<StatusReport>,
    pub metrics: Option<MetricsReport>,
    /// Where operator requests go.
    pub requests: Option<RequestSink>,
    /// Standalone: the Canaries it runs, for `GET /canaries`. In a cluster they are read from the
    /// Kubernetes API.
    pub canaries: Option<Arc<CanaryView>>,
}

/// Where the API sends the operator requests it accepts.
pub enum RequestSink {
    /// Standalone: the local request store, acted on at the Canary's next tick.
    Local(Arc<RequestStore>),
    /// In a cluster: checked with the Kubernetes API, then written as the Canary's annotation.
    Cluster(Arc<ClusterRequests>),
}

/// Binds `listen` and serves the API in the background; returns the bound address.
pub async fn start(listen: SocketAddr, api: Arc<Api>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let api = api.clone();
            let service = service_fn(move |request| {
                let api = api.clone();
                async move { Ok::<_, std::convert::Infallible>(api.handle(request).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            tokio::spawn(connection);
        }
    });
    Ok(addr)
}

impl Api {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        if path == "/healthz" || path == "/readyz" {
            return reply(StatusCode::OK, json!({"status": "ok"}));
        }
        if path == "/metrics" {
            return match &self.metrics {
                Some(metrics) => Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")
                    .body(Full::new(Bytes::from(metrics())))
                    .expect("a valid response"),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "no metrics here"})),
            };
        }
        if path == "/status" {
            return match &self.status {
                Some(status) => reply(StatusCode::OK, status()),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "no status here"})),
            };
        }
        if method == http::Method::GET && (path == "/canaries" || path.starts_with("/canaries/")) {
            return self.read_canaries(path.trim_start_matches("/canaries").trim_matches('/')).await;
        }
        let token = bearer_token(&request);
        if let Some(rest) = path.strip_prefix("/canaries/") {
            return self.operator_request(&method, rest, request.uri().query(), token).await;
        }
        match GateRequest::parse(&method, &path) {
            Some(Ok(GateRequest::Set { namespace, name, gate, open })) if self.gates.is_none() => {
                let action = if open { RequestAction::OpenGate } else { RequestAction::CloseGate };
                let request = OperatorRequest::new(&new_request_id(), action, Some(gate.as_str()))
                    .expect("a known gate makes a valid request");
                self.submit_to_cluster(&namespace, &name, request, token).await
            }
            Some(Ok(request)) => self.gate(request),
            Some(Err(problem)) => reply(StatusCode::BAD_REQUEST, json!({"error": problem.to_string()})),
            None => reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("{method} {path}: not found; the API serves /healthz, /status, /gates and /canaries")}),
            ),
        }
    }

    /// `GET /canaries/[{ns}[/{name}[/events|/target]]]`; `rest` is the path after `/canaries/`.
    async fn read_canaries(&self, rest: &str) -> Response<Full<Bytes>> {
        let Some(view) = &self.canaries else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"error": "this controller serves no Canaries: in a cluster, read them from the Kubernetes API"}),
            );
        };
        let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        let list = |items: Vec<serin_crds::Canary>| json!({"apiVersion": "v1", "kind": "List", "items": items});
        let no_canary =
            |ns: &str, name: &str| reply(StatusCode::NOT_FOUND, json!({"error": format!("no Canary {ns}/{name}")}));
        match segments.as_slice() {
            [] => reply(StatusCode::OK, list(view.list(None))),
            [namespace] => reply(StatusCode::OK, list(view.list(Some(namespace)))),
            [namespace, name] => match view.get(namespace, name) {
                Some(canary) => reply(StatusCode::OK, json!(canary)),
                None => no_canary(namespace, name),
            },
            [namespace, name, "events"] => match view.events(namespace, name) {
                Some(events) => reply(StatusCode::OK, json!({"items": events})),
                None => no_canary(namespace, name),
            },
            [namespace, name, "target"] => {
                // Reads the manifests folder: off the async threads.
                let (view, namespace, name) = (view.clone(), namespace.to_string(), name.to_string());
                let target = tokio::task::spawn_blocking(move || view.target(&namespace, &name)).await;
                match target.expect("reading the target does not panic") {
                    Ok(target) => reply(StatusCode::OK, json!(target)),
                    Err(missing @ TargetError::NoCanary(_)) => {
                        reply(StatusCode::NOT_FOUND, json!({"error": missing.to_string()}))
                    }
                    // Likely mid-edit: asking again may help.
                    Err(problem) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": problem.to_string()})),
                }
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({"error": "Canaries are read at GET /canaries[/{namespace}[/{name}[/events|/target]]]"}),
            ),
        }
    }

    /// `{ns}/{name}/{action}[/{gate}]`.
    async fn operator_request(
        &self,
        method: &http::Method,
        rest: &str,
        query: Option<&str>,
        token: Option<String>,
    ) -> Response<Full<Bytes>> {
        if self.requests.is_none() {
            return reply(StatusCode::NOT_FOUND, json!({"error": "this controller takes no operator requests"}));
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let (namespace, name, action, gate) = match segments.as_slice() {
            [namespace, name, action] => (*namespace, *name, *action, None),
            [namespace, name, action, gate] => (*namespace, *name, *action, Some(*gate)),
            _ => {
                return reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": "operator requests are POST /canaries/{namespace}/{name}/{action}[/{gate}]"}),
                );
            }
        };
        if method != http::Method::POST {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": format!("{method}: operator requests are POST")}),
            );
        }
        let Some(action) = RequestAction::parse(action) else {
            let actions = RequestAction::ALL.map(RequestAction::as_str).join(", ");
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("action {action:?} is not one of {actions}")}),
            );
        };
        let id = query
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("id=")))
            .map(str::to_string)
            .unwrap_or_else(new_request_id);
        let request = match OperatorRequest::new(&id, action, gate) {
            Ok(request) => request,
            Err(problem) => return reply(StatusCode::BAD_REQUEST, json!({"error": problem.to_string()})),
        };
        let requests = match &self.requests {
            Some(RequestSink::Local(requests)) => requests,
            Some(RequestSink::Cluster(_)) => return self.submit_to_cluster(namespace, name, request, token).await,
            None => unreachable!("checked above"),
        };
        let key = format!("{namespace}/{name}");
        if !requests.is_known(&key) {
            return reply(StatusCode::NOT_FOUND, json!({"error": format!("no Canary {key} in the manifests")}));
        }
        if action.is_gate() {
            let gate = Gate::parse(gate.unwrap_or_default()).expect("the request checked the gate");
            return self.gate(GateRequest::Set {
                namespace: namespace.to_string(),
                name: name.to_string(),
                gate,
                open: action == RequestAction::OpenGate,
            });
        }
        match requests.submit(&key, request) {
            Ok(()) => {
                tracing::info!(canary = %key, %action, %id, "operator request accepted");
                reply(
                    StatusCode::ACCEPTED,
                    json!({"canary": key, "action": action.as_str(), "id": id, "state": "accepted; acted on at the next tick, see status.lastHandledRequest and the events"}),
                )
            }
            Err(problem) => reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": problem.to_string()})),
        }
    }

    /// A request that changes a rollout in a cluster: authenticated, authorized, then written.
    async fn submit_to_cluster(
        &self,
        namespace: &str,
        name: &str,
        request: OperatorRequest,
        token: Option<String>,
    ) -> Response<Full<Bytes>> {
        let Some(RequestSink::Cluster(cluster)) = &self.requests else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"error": "gates are changed here only through the Kubernetes API: the serin.dev/request annotation (open-gate, close-gate)"}),
            );
        };
        let key = format!("{namespace}/{name}");
        match cluster.submit(token.as_deref(), namespace, name, &request).await {
            Ok(submitted) => {
                tracing::info!(canary = %key, action = %request.action, id = %request.id, user = %submitted.user, "operator request written to the Canary");
                reply(
                    StatusCode::ACCEPTED,
                    json!({"canary": key, "action": request.action.as_str(), "gate": request.gate, "id": request.id, "user": submitted.user,
                        "state": "accepted; acted on at the Canary's next reconcile, see status.lastHandledRequest and the events"}),
                )
            }
            Err(refused) => {
                tracing::warn!(canary = %key, action = %request.action, %refused, "operator request refused");
                let mut response = reply(refused.status(), json!({"error": refused.to_string()}));
                if refused.status() == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                }
                response
            }
        }
    }

    fn gate(&self, request: GateRequest) -> Response<Full<Bytes>> {
        let Some(gates) = &self.gates else {
            if let (Some(check), GateRequest::Check { namespace, name, gate }) = (&self.gate_check, &request) {
                return match check(namespace, name, gate.as_str()) {
                    Some(open) => {
                        let status = if open { StatusCode::OK } else { StatusCode::FORBIDDEN };
                        let state = if open { "open" } else { "closed" };
                        reply(
                            status,
                            json!({"gate": gate.as_str(), "canary": format!("{namespace}/{name}"), "state": state}),
                        )
                    }
                    None => reply(StatusCode::NOT_FOUND, json!({"error": format!("no Canary {namespace}/{name}")})),
                };
            }
            return reply(
                StatusCode::NOT_FOUND,
                json!({"error": "gates are changed here only through the Kubernetes API: the serin.dev/request annotation (open-gate, close-gate)"}),
            );
        };
        match request {
            GateRequest::List => reply(StatusCode::OK, json!(gates.snapshot())),
            GateRequest::Check { namespace, name, gate } => {
                let open = gates.is_open(&namespace, &name, gate);
                let status = if open { StatusCode::OK } else { StatusCode::FORBIDDEN };
                let state = if open { "open" } else { "closed" };
                reply(status, json!({"gate": gate.as_str(), "canary": format!("{namespace}/{name}"), "state": state}))
            }
            GateRequest::Set { namespace, name, gate, open } => match gates.set(&namespace, &name, gate, open) {
                Ok(()) => {
                    let state = if open { "open" } else { "closed" };
                    tracing::info!(canary = %format!("{namespace}/{name}"), gate = gate.as_str(), state, "gate changed");
                    reply(
                        StatusCode::OK,
                        json!({"gate": gate.as_str(), "canary": format!("{namespace}/{name}"), "state": state}),
                    )
                }
                Err(problem) => reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": problem.to_string()})),
            },
        }
    }
}

/// The token of `Authorization: Bearer TOKEN`, if any.
fn bearer_token<B>(request: &Request<B>) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// A request id nobody else will have: the time in microseconds and a counter.
fn new_request_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("api-{}-{n}", jiff::Timestamp::now().as_microsecond())
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec_pretty(&body).expect("JSON serializes");
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("a valid response")
}
