//! Why the demo could not run its rollout to the end. Each says what to look at.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{missing} not found beside {}; build them with `cargo build --release -p serin-meshproxy -p serin-testapp`", beside.display())]
    MissingBinaries { missing: String, beside: PathBuf },
    #[error("building {0} failed; the output above says why")]
    BuildFailed(String),
    #[error("{what} did not start listening on {address}")]
    NotListening { what: String, address: std::net::SocketAddr },
    #[error("{exited}; see the logs in {}", folder.display())]
    ProcessExited { exited: String, folder: PathBuf },
    #[error("the controller did not reach {wanted} in {limit:?} (phase {phase}); see the logs in {}", folder.display())]
    PhaseNotReached { wanted: String, limit: Duration, phase: String, folder: PathBuf },
    #[error("interrupted; every process the demo started was stopped")]
    Interrupted,
}

impl DemoError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
        let context = context.into();
        move |source| DemoError::Io { context, source }
    }
}
