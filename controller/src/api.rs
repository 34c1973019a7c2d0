//! The controller's HTTP API: health, the built-in gates, and (in standalone mode) the status of
//! every Canary. Bodies are JSON; errors say what was wrong with the request.

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

use crate::hooks::gates::{GateRequest, GateStore};

/// Reports the status of every Canary, for `GET /status`.
pub type StatusReport = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

pub struct Api {
    pub gates: Arc<GateStore>,
    pub status: Option<StatusReport>,
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
                async move { Ok::<_, std::convert::Infallible>(api.handle(request)) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            tokio::spawn(connection);
        }
    });
    Ok(addr)
}

impl Api {
    fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        if path == "/healthz" {
            return reply(StatusCode::OK, json!({"status": "ok"}));
        }
        if path == "/status" {
            return match &self.status {
                Some(status) => reply(StatusCode::OK, status()),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "no status here"})),
            };
        }
        match GateRequest::parse(&method, &path) {
            Some(Ok(request)) => self.gate(request),
            Some(Err(problem)) => reply(StatusCode::BAD_REQUEST, json!({"error": problem.to_string()})),
            None => reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("{method} {path}: not found; the API serves /healthz, /status and /gates")}),
            ),
        }
    }

    fn gate(&self, request: GateRequest) -> Response<Full<Bytes>> {
        match request {
            GateRequest::List => reply(StatusCode::OK, json!(self.gates.snapshot())),
            GateRequest::Check { namespace, name, gate } => {
                let open = self.gates.is_open(&namespace, &name, gate);
                let status = if open { StatusCode::OK } else { StatusCode::FORBIDDEN };
                let state = if open { "open" } else { "closed" };
                reply(status, json!({"gate": gate.as_str(), "canary": format!("{namespace}/{name}"), "state": state}))
            }
            GateRequest::Set { namespace, name, gate, open } => match self.gates.set(&namespace, &name, gate, open) {
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

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec_pretty(&body).expect("JSON serializes");
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("a valid response")
}
