use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use super::Tally;

/// What to send, how often, and for how long.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    pub url: Uri,
    /// Requests per second.
    pub rate: f64,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Sending stops by itself after this long.
    pub max_duration: Duration,
    /// A request with no complete answer by then counts as unanswered.
    pub timeout: Duration,
    /// Requests in flight at most; a tick that finds them all busy is skipped and counted.
    pub max_in_flight: usize,
}

/// Sends `spec.rate` requests per second until `spec.max_duration` has passed, over pooled
/// keep-alive connections (the name is resolved for each new connection, as clients do), and
/// records every outcome in `tally`.
pub async fn run(spec: TrafficSpec, tally: Arc<Tally>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(spec.timeout));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let slots = Arc::new(Semaphore::new(spec.max_in_flight));
    let period = Duration::from_secs_f64(1.0 / spec.rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::Instant::now() + spec.max_duration;
    let spec = Arc::new(spec);
    tally.sending(true);
    while tokio::time::Instant::now() < deadline {
        ticks.tick().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tally.skipped();
            continue;
        };
        tally.sent();
        let (client, spec, tally) = (client.clone(), spec.clone(), tally.clone());
        tokio::spawn(async move {
            send_one(&client, &spec, &tally).await;
            drop(slot);
        });
    }
    // Let the last requests finish before saying sending is over.
    let _ = slots.acquire_many(spec.max_in_flight as u32).await;
    tally.sending(false);
}

async fn send_one(client: &Client<HttpConnector, Empty<Bytes>>, spec: &TrafficSpec, tally: &Tally) {
    let exchange = async {
        // As Go's net/http and browsers do for an idempotent request: when a kept-alive connection
        // turns out closed by the server before any answer (the race every HTTP/1.1 keep-alive
        // client meets when a server closes idle connections), send it once more on a new one.
        let response = match client.request(request(spec)).await {
            Err(error) if closed_before_answer(&error) => {
                tally.retried();
                client.request(request(spec)).await
            }
            other => other,
        }
        .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let version = response.headers().get("x-testapp-version").and_then(|v| v.to_str().ok()).map(String::from);
        // The whole body, so a response cut short counts as unanswered.
        response.into_body().collect().await.map_err(|e| format!("reading the body: {e}"))?;
        Ok::<_, String>((status, version))
    };
    match tokio::time::timeout(spec.timeout, exchange).await {
        Ok(Ok((status, version))) => tally.answered(status, version.as_deref()),
        Ok(Err(why)) => tally.unanswered(why),
        Err(_) => tally.unanswered(format!("no answer within {:?}", spec.timeout)),
    }
}

fn request(spec: &TrafficSpec) -> Request<Empty<Bytes>> {
    let mut request = Request::get(spec.url.clone()).body(Empty::new()).expect("a GET of a parsed URI is valid");
    for (name, value) in &spec.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    request
}

/// A connection that was open and then closed or reset by the server before any of the answer
/// came: not a connect failure (nothing listening), not a timeout.
fn closed_before_answer(error: &hyper_util::client::legacy::Error) -> bool {
    if error.is_connect() {
        return false;
    }
    let text = describe(error);
    text.contains("connection closed before message completed") || text.contains("Connection reset by peer")
}

/// The error with its causes, which say what actually went wrong (refused, reset, DNS).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
