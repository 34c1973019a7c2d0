use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `serin-testapp`. Every flag also reads an environment variable, so a pod spec can set
/// it either way.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "serin-testapp", version, about = "Serin's sample service (podinfo-like), for demos and tests")]
pub struct Config {
    /// Address to listen on (HTTP/1.1 and h2c).
    #[arg(long, env = "TESTAPP_LISTEN", default_value = "0.0.0.0:9898")]
    pub listen: SocketAddr,

    /// The version this instance reports. Defaults to the image tag when run from an image.
    #[arg(long = "app-version", env = "TESTAPP_VERSION")]
    pub app_version: Option<String>,

    /// A message included in the answer to `/`.
    #[arg(long, env = "TESTAPP_MESSAGE", default_value = "greetings from serin-testapp")]
    pub message: String,

    /// Fraction (0 to 1) of requests to `/` answered with 500. Failures are spread evenly, so over
    /// N requests exactly round(N * rate) fail.
    #[arg(long, env = "TESTAPP_ERROR_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,

    /// Latency added to every request to `/`, in milliseconds.
    #[arg(long, env = "TESTAPP_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// How long to keep taking new connections after SIGTERM, unready, so that clients and proxies
    /// learn the pod is going before its port closes (what a preStop sleep gives other apps).
    #[arg(long, env = "TESTAPP_SHUTDOWN_DELAY_MS", default_value_t = 1000)]
    pub shutdown_delay_ms: u64,

    /// How long to wait for requests in flight after SIGTERM before closing them.
    #[arg(long, env = "TESTAPP_DRAIN_SECONDS", default_value_t = 5)]
    pub drain_seconds: u64,
}

impl Config {
    /// The reported version: the flag, else the tag of the image the pod runner started us from.
    pub fn version(&self) -> String {
        self.app_version.clone().or_else(|| std::env::var("SERIN_IMAGE_TAG").ok()).unwrap_or_else(|| "dev".to_string())
    }

    pub fn added_latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// A config for tests: listen on an ephemeral loopback port.
    pub fn for_tests(version: &str) -> Self {
        Config {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            app_version: Some(version.to_string()),
            message: "test".to_string(),
            error_rate: 0.0,
            latency_ms: 0,
            shutdown_delay_ms: 0,
            drain_seconds: 5,
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{rate} is outside 0..=1")) }
}
