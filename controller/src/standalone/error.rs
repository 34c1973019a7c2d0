//! What can go wrong in standalone mode, by boundary: the manifests' endpoint groups, the state file,
//! and meshproxy's admin API. Each names the object or file and what to do.

use std::path::PathBuf;

use crate::outbound::OutboundError;

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(
        "Canary {canary}: the services file has no endpoint group {group}; add it and point it at the version to roll out"
    )]
    MissingGroup { canary: String, group: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Meshproxy(#[from] MeshproxyError),
}

impl crate::reconcile::Labelled for StandaloneError {
    fn label(&self) -> &'static str {
        StandaloneError::label(self)
    }
}

impl StandaloneError {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StandaloneError::MissingGroup { .. } => "manifest",
            StandaloneError::State(error) => error.label(),
            StandaloneError::Meshproxy(error) => error.label(),
        }
    }
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: not a Serin state file: {source}; move it away to start from scratch", path.display())]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing {}: {source}; check the folder's permissions and free space", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl StateError {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StateError::Corrupt { .. } => "state_corrupt",
            StateError::Read { .. } => "state_read",
            StateError::Write { .. } => "state_write",
        }
    }
}

/// meshproxy's admin API did not take the config.
#[derive(Debug, thiserror::Error)]
pub enum MeshproxyError {
    #[error("meshproxy admin API: {0}; is meshproxy running with --admin at that address?")]
    Unreachable(#[source] OutboundError),
    #[error("meshproxy refused the config ({status}): {message}")]
    Refused { status: http::StatusCode, message: String },
    #[error("meshproxy admin API answered {status} with something that is not its JSON: {excerpt}")]
    BadReply { status: http::StatusCode, excerpt: String },
}

impl MeshproxyError {
    pub fn label(&self) -> &'static str {
        match self {
            MeshproxyError::Unreachable(_) => "meshproxy_unreachable",
            MeshproxyError::Refused { .. } => "meshproxy_refused",
            MeshproxyError::BadReply { .. } => "meshproxy_bad_reply",
        }
    }
}

/// A problem with the manifests folder, naming the file, then the object and field within it.
#[derive(Debug, thiserror::Error)]
pub enum ManifestProblem {
    #[error(transparent)]
    Parse(#[from] serin_crds::manifest::ManifestError),
    /// `message` starts with the object and field, e.g. `Canary test/podinfo: spec.targetRef.name: ...`.
    #[error("{file}: {message}")]
    InFile { file: String, message: String },
}

impl ManifestProblem {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "manifest"
    }

    pub fn in_file(file: impl std::fmt::Display, message: impl Into<String>) -> ManifestProblem {
        ManifestProblem::InFile { file: file.to_string(), message: message.into() }
    }
}

/// Why standalone mode cannot start: every manifest problem, or an unreadable state file.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the manifests have {} problem(s):\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Manifests(Vec<ManifestProblem>),
    #[error(transparent)]
    State(#[from] StateError),
}
