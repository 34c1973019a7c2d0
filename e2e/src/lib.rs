//! Serin's end-to-end parts: the load generator that drives the sample app (`serin-testapp`), and
//! the pod runner that lets a real Kubernetes control plane run pods on this machine (see
//! `e2e/README.md`).

pub mod loadgen;
pub mod podrunner;
pub mod traffic;

/// Logs to stderr; `RUST_LOG` picks the level (info by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).try_init();
}
