use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::json;

use super::faults::ErrorSchedule;
use super::metrics::AppMetrics;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// The longest `/delay/{seconds}` honours, so a typo cannot hold a connection for hours.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// What every request handler shares.
pub struct App {
    pub version: String,
    pub message: String,
    pub hostname: String,
    pub added_latency: Duration,
    pub errors: ErrorSchedule,
    pub metrics: AppMetrics,
    /// False after `/readyz/disable` or once draining has begun.
    pub ready: AtomicBool,
    /// Set on SIGTERM: every HTTP/1.1 answer then says `Connection: close`, so keep-alive clients
    /// and proxies leave for another endpoint after their next request instead of racing the close.
    pub leaving: AtomicBool,
}

impl App {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Result<Response<Body>, hyper::Error> {
        let started = Instant::now();
        let method = request.method().clone();
        let http1 = request.version() == http::Version::HTTP_11;
        let (route, mut response) = self.route(request).await;
        if method == Method::HEAD {
            response = without_body(response);
        }
        if http1 && self.leaving.load(Ordering::SeqCst) {
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        // Every answer says which version gave it, so tests through a proxy can tell.
        if let Ok(version) = header::HeaderValue::from_str(&self.version) {
            response.headers_mut().insert("x-testapp-version", version);
        }
        self.metrics.observe(&method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
        Ok(response)
    }

    /// Returns the route pattern (for metric labels) and the response.
    async fn route(&self, request: Request<Incoming>) -> (&'static str, Response<Body>) {
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (_, [""]) => ("/", self.root().await),
            (&Method::GET, ["version"]) => {
                ("/version", json_response(StatusCode::OK, &json!({ "version": self.version })))
            }
            (_, ["status", code]) => ("/status/{code}", status(code)),
            (_, ["delay", seconds]) => ("/delay/{seconds}", delay(seconds).await),
            (&Method::GET, ["healthz"]) => ("/healthz", json_response(StatusCode::OK, &json!({ "status": "OK" }))),
            (&Method::GET, ["readyz"]) => ("/readyz", self.readyz()),
            (&Method::POST, ["readyz", switch @ ("enable" | "disable")]) => {
                self.ready.store(*switch == "enable", Ordering::SeqCst);
                ("/readyz/{switch}", self.readyz())
            }
            (&Method::GET, ["headers"]) => ("/headers", headers(&request)),
            (&Method::GET, ["env"]) => ("/env", env()),
            (_, ["echo"]) => ("/echo", echo(request)),
            (&Method::GET, ["bytes", count]) => ("/bytes/{count}", bytes(count)),
            (&Method::GET, ["metrics"]) => ("/metrics", self.metrics_page()),
            _ => ("other", json_response(StatusCode::NOT_FOUND, &json!({ "error": format!("no route for {path}") }))),
        }
    }

    async fn root(&self) -> Response<Body> {
        if !self.added_latency.is_zero() {
            tokio::time::sleep(self.added_latency).await;
        }
        let code = if self.errors.next_fails() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
        let mut response = json_response(
            code,
            &json!({ "hostname": self.hostname, "version": self.version, "message": self.message }),
        );
        response
            .headers_mut()
            .insert("x-testapp-version", self.version.parse().unwrap_or(header::HeaderValue::from_static("invalid")));
        response
    }

    fn readyz(&self) -> Response<Body> {
        if self.ready.load(Ordering::SeqCst) {
            json_response(StatusCode::OK, &json!({ "status": "OK" }))
        } else {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not ready" }))
        }
    }

    fn metrics_page(&self) -> Response<Body> {
        let mut response = Response::new(full(self.metrics.render()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

fn status(code: &str) -> Response<Body> {
    match code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).filter(|c| c.as_u16() >= 200) {
        Some(code) => json_response(code, &json!({ "status": code.as_u16() })),
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("{code:?} is not a status code from 200 to 999") }),
        ),
    }
}

async fn delay(seconds: &str) -> Response<Body> {
    let Some(wait) = seconds.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("{seconds:?} is not a number of seconds") }),
        );
    };
    let wait = Duration::from_secs_f64(wait).min(MAX_DELAY);
    tokio::time::sleep(wait).await;
    json_response(StatusCode::OK, &json!({ "delay": wait.as_secs_f64() }))
}

/// The request as the app saw it: what a proxy in front changed or added shows here.
fn headers(request: &Request<Incoming>) -> Response<Body> {
    let mut headers = serde_json::Map::new();
    for name in request.headers().keys() {
        let values: Vec<String> = request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_string(), json!(values));
    }
    json_response(
        StatusCode::OK,
        &json!({
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "version": format!("{:?}", request.version()),
            "headers": headers,
        }),
    )
}

fn env() -> Response<Body> {
    let vars: serde_json::Map<String, serde_json::Value> = std::env::vars().map(|(k, v)| (k, json!(v))).collect();
    json_response(StatusCode::OK, &serde_json::Value::Object(vars))
}

/// The largest `/bytes/{count}` answer.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// `count` bytes of `x`: a response of a known size, for benchmarks.
fn bytes(count: &str) -> Response<Body> {
    match count.parse::<usize>().ok().filter(|n| *n <= MAX_BYTES) {
        Some(n) => {
            let mut response =
                Response::new(Full::new(Bytes::from(vec![b'x'; n])).map_err(|never| match never {}).boxed());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
            response
        }
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("{count:?} is not a byte count up to {MAX_BYTES}") }),
        ),
    }
}

/// Streams the request body straight back, chunk by chunk, without holding it.
fn echo(request: Request<Incoming>) -> Response<Body> {
    let mut response = Response::new(request.into_body().boxed());
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    response
}

/// A HEAD answer: the headers a GET gets, its length among them, and no body. hyper leaves the
/// body out of a HEAD answer over HTTP/1.1 but sends it over HTTP/2, where the client rightly
/// resets the stream.
fn without_body(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if let Some(length) = hyper::body::Body::size_hint(&body).exact() {
        parts.headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    }
    Response::from_parts(parts, full(String::new()))
}

fn json_response(code: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed()
}
