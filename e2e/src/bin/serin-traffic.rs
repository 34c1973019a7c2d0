//! `serin-traffic`: steady requests to one URL for a bounded time, with a tally of what answered
//! served on `GET /report`; see `serin_e2e::traffic`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serin_e2e::traffic::{Tally, TrafficSpec, run};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(name = "serin-traffic", about = "Steady requests to a URL, and a tally of who answered")]
struct Cli {
    /// Where to send requests, e.g. `http://podinfo.test:9898/`.
    #[arg(long, env = "TRAFFIC_URL")]
    url: Uri,
    /// Requests per second.
    #[arg(long, env = "TRAFFIC_RATE", default_value_t = 20.0)]
    rate: f64,
    /// A header sent with every request, `name: value`. Repeat for more.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Sending stops by itself after this many seconds.
    #[arg(long, env = "TRAFFIC_MAX_SECONDS", default_value_t = 1800)]
    max_seconds: u64,
    /// Milliseconds a request may take before it counts as unanswered.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Where the tally is served (`GET /report`, `GET /healthz`).
    #[arg(long, env = "TRAFFIC_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text.split_once(':').ok_or_else(|| format!("{text:?}: expected `name: value`"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("header name {name:?}: {e}"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("header value {value:?}: {e}"))?;
    Ok((name, value))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serin_e2e::init_logging();
    let cli = Cli::parse();
    anyhow::ensure!(cli.rate > 0.0 && cli.rate <= 10_000.0, "--rate {}: must be above 0 and at most 10000", cli.rate);
    let listener = TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let tally = Arc::new(Tally::default());
    let spec = TrafficSpec {
        url: cli.url.clone(),
        rate: cli.rate,
        headers: cli.headers,
        max_duration: Duration::from_secs(cli.max_seconds),
        timeout: Duration::from_millis(cli.timeout_ms),
        max_in_flight: cli.max_in_flight.max(1),
    };
    tracing::info!(url = %cli.url, rate = cli.rate, max_seconds = cli.max_seconds, "sending");
    tokio::spawn(run(spec, tally.clone()));

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = terminate.recv() => return Ok(()),
        };
        let tally = tally.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let tally = tally.clone();
                async move { Ok::<_, Infallible>(answer(request.uri().path(), &tally)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(path: &str, tally: &Tally) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/report" => (StatusCode::OK, serde_json::to_vec(&tally.snapshot()).unwrap_or_default()),
        "/healthz" => (StatusCode::OK, b"ok\n".to_vec()),
        _ => (StatusCode::NOT_FOUND, b"GET /report or /healthz\n".to_vec()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
