//! The demo's steady traffic: a fixed rate of GETs through meshproxy, counted, until stopped (and
//! never longer than a few minutes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The longest the generator runs, whatever happens to the demo.
const MAX_RUN: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Counts {
    stop: AtomicBool,
    sent: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
}

pub struct Traffic(Arc<Counts>);

/// Totals when the traffic stopped.
pub struct Totals {
    pub sent: u64,
    pub server_errors: u64,
    pub transport_errors: u64,
}

impl Traffic {
    /// `rate` requests per second to `proxy` with `Host: host`; every other request carries
    /// `header` when given (the A/B audience).
    pub fn start(
        proxy: SocketAddr,
        host: &'static str,
        rate: u32,
        header: Option<(&'static str, &'static str)>,
    ) -> Traffic {
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            let deadline = Instant::now() + MAX_RUN;
            let mut n = 0u64;
            while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                ticker.tick().await;
                n += 1;
                let mut request = Request::get(format!("http://{proxy}/")).header("host", host);
                if let Some((name, value)) = header
                    && n.is_multiple_of(2)
                {
                    request = request.header(name, value);
                }
                let Ok(request) = request.body(Full::default()) else { continue };
                let (client, counts) = (client.clone(), shared.clone());
                tokio::spawn(async move {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                        Ok(Ok(response)) => {
                            if response.status().is_server_error() {
                                counts.server_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = response.into_body().collect().await;
                        }
                        _ => {
                            counts.transport_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Traffic(counts)
    }

    pub fn stop(&self) -> Totals {
        self.0.stop.store(true, Ordering::Relaxed);
        Totals {
            sent: self.0.sent.load(Ordering::Relaxed),
            server_errors: self.0.server_errors.load(Ordering::Relaxed),
            transport_errors: self.0.transport_errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}
