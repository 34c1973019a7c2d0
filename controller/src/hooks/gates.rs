//! Built-in gates: open/closed switches per Canary that its `confirm-*` and `rollback` webhooks
//! can point at, so no separate load-tester pod is needed to approve a rollout. The state is a
//! JSON file written atomically, so it survives a controller restart.
//!
//! HTTP API (on the controller's API listener):
//! - `POST /gates/{namespace}/{name}/{gate}/open` and `.../close`
//! - `POST` or `GET /gates/{namespace}/{name}/{gate}`: 200 when open, 403 when closed. This is the
//!   URL a webhook uses, e.g. `http://127.0.0.1:9090/gates/test/podinfo/promotion`.
//! - `GET /gates`: every gate that was ever set, as JSON.
//!
//! `{gate}` is `rollout`, `traffic-increase`, `promotion` or `rollback`. Every gate starts closed:
//! a closed confirm gate holds the rollout, a closed rollback gate asks for nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::state_file;

/// The built-in gates, as the API names them.
pub use serin_crds::operator_request::Gate;

/// One gate's last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    pub open: bool,
    pub changed_at: Timestamp,
}

/// The gates of every Canary, keyed `namespace/name/gate`.
pub struct GateStore {
    path: Option<PathBuf>,
    gates: Mutex<BTreeMap<String, GateState>>,
}

fn key(namespace: &str, name: &str, gate: Gate) -> String {
    format!("{namespace}/{name}/{}", gate.as_str())
}

impl GateStore {
    /// Gates kept in memory only.
    pub fn in_memory() -> GateStore {
        GateStore { path: None, gates: Mutex::new(BTreeMap::new()) }
    }

    /// Gates kept in `path`, read now if it exists.
    pub fn open_file(path: &Path) -> Result<GateStore, GateError> {
        let gates = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| GateError::NotAGateFile { path: path.to_path_buf(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(GateError::Read { path: path.to_path_buf(), source }),
        };
        Ok(GateStore { path: Some(path.to_path_buf()), gates: Mutex::new(gates) })
    }

    pub fn is_open(&self, namespace: &str, name: &str, gate: Gate) -> bool {
        self.gates.lock().expect("gate lock").get(&key(namespace, name, gate)).is_some_and(|g| g.open)
    }

    /// Opens or closes a gate and writes the file before returning.
    pub fn set(&self, namespace: &str, name: &str, gate: Gate, open: bool) -> Result<(), GateError> {
        let mut gates = self.gates.lock().expect("gate lock");
        gates.insert(key(namespace, name, gate), GateState { open, changed_at: Timestamp::now() });
        if let Some(path) = &self.path {
            let json = serde_json::to_vec_pretty(&*gates).expect("gates serialize");
            state_file::write_atomically(path, &json)
                .map_err(|source| GateError::Write { path: path.clone(), source })?;
        }
        Ok(())
    }

    pub fn snapshot(&self) -> BTreeMap<String, GateState> {
        self.gates.lock().expect("gate lock").clone()
    }
}

/// What an API request asks of the gates.
#[derive(Debug, PartialEq, Eq)]
pub enum GateRequest {
    List,
    Check { namespace: String, name: String, gate: Gate },
    Set { namespace: String, name: String, gate: Gate, open: bool },
}

impl GateRequest {
    /// From a method and path; `None` when the path is not a gate path, `Err` when it is one but malformed.
    pub fn parse(method: &http::Method, path: &str) -> Option<Result<GateRequest, GateError>> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments.first() != Some(&"gates") {
            return None;
        }
        let gate = |text: &str| Gate::parse(text).ok_or_else(|| GateError::UnknownGate(text.to_string()));
        let (get, post) = (method == http::Method::GET, method == http::Method::POST);
        Some(match segments.as_slice() {
            ["gates"] if get => Ok(GateRequest::List),
            ["gates", namespace, name, which] if get || post => gate(which).map(|gate| GateRequest::Check {
                namespace: namespace.to_string(),
                name: name.to_string(),
                gate,
            }),
            ["gates", namespace, name, which, action @ ("open" | "close")] if post => {
                gate(which).map(|gate| GateRequest::Set {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    gate,
                    open: *action == "open",
                })
            }
            _ => Err(GateError::BadRequest { method: method.clone(), path: path.to_string() }),
        })
    }
}

/// What went wrong with a gate file or a gate request.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{}: not a gate file: {source}; move it away to start with every gate closed", path.display())]
    NotAGateFile { path: PathBuf, source: serde_json::Error },
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}; the gate changed in memory only: make the file writable so a restart keeps it", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("unknown gate {0:?}; gates are {gates}", gates = Gate::ALL.map(Gate::as_str).join(", "))]
    UnknownGate(String),
    #[error(
        "{method} {path}: expected POST /gates/{{namespace}}/{{name}}/{{gate}}/open|close, POST or GET /gates/{{namespace}}/{{name}}/{{gate}}, or GET /gates"
    )]
    BadRequest { method: http::Method, path: String },
}

impl GateError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GateError::NotAGateFile { .. } => "bad_file",
            GateError::Read { .. } | GateError::Write { .. } => "io",
            GateError::UnknownGate(_) => "unknown_gate",
            GateError::BadRequest { .. } => "bad_request",
        }
    }
}
