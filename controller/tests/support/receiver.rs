//! A local HTTP receiver for webhooks and alerts: records every request and answers by path.
//!
//! - `/ok` and anything else: 200
//! - `/fail`: 500 with a body
//! - `/flaky/N`: 503 for the first N calls, then 200
//! - `/slow`: answers after 5 s

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

impl Call {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} sent no JSON ({e}): {:?}", self.path, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver { addr: listener.local_addr().unwrap(), calls: Arc::default() };
        let calls = receiver.calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let calls = calls.clone();
                let service = service_fn(move |request| answer(calls.clone(), request));
                tokio::spawn(
                    auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
}

async fn answer(
    calls: Arc<Mutex<Vec<Call>>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_string();
    // A repeated header is kept as one comma-joined value, as HTTP allows.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_default();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert_with(|| value.to_string());
    }
    let body = request.into_body().collect().await?.to_bytes();
    let seen_before = {
        let mut calls = calls.lock().unwrap();
        let seen = calls.iter().filter(|c| c.path == path).count();
        calls.push(Call { path: path.clone(), headers, body });
        seen
    };
    let (status, text) = match path.as_str() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "load test failed: p99 2.1s"),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late")
        }
        flaky if flaky.starts_with("/flaky/") => {
            let failures: usize = flaky["/flaky/".len()..].parse().unwrap();
            if seen_before < failures { (StatusCode::SERVICE_UNAVAILABLE, "not yet") } else { (StatusCode::OK, "ok") }
        }
        _ => (StatusCode::OK, "ok"),
    };
    Ok(Response::builder().status(status).body(Full::new(Bytes::from(text))).unwrap())
}
