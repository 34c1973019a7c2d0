//! meshproxy: Serin's data plane. An HTTP/1.1 and HTTP/2 proxy that routes each request by its
//! host to the service's HTTPRoute, picks a backend by weight, and forwards it over pooled
//! connections, reporting every request in Prometheus metrics. Its config is swapped whole and
//! atomically: requests in flight finish on the config they started with.

pub mod access_log;
pub mod admin;
pub mod config;
pub mod config_error;
pub mod kubernetes;
pub mod launch;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod routing;
pub mod state;
pub mod store;
pub mod watch;

/// Logs to stderr; `RUST_LOG` picks the level (info by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).try_init();
}
