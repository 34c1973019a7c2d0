//! Operator requests in standalone mode: what the controller's API accepted and the Canary's next
//! tick has not acted on yet. The API adds them; the loop hands the newest to the engine and drops
//! it once `status.lastHandledRequest` names it. Each is kept in `requests/<namespace>/<name>.json`
//! under the state folder too, so a request accepted just before a restart is still acted on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serin_crds::operator_request::OperatorRequest;

use super::error::StateError;
use super::state::{keyed_files, keyed_path};
use crate::state_file;

pub struct RequestStore {
    dir: PathBuf,
    pending: Mutex<HashMap<String, OperatorRequest>>,
    /// The Canaries the manifests hold, by `namespace/name`: a request for any other is refused.
    known: Mutex<HashSet<String>>,
}

impl RequestStore {
    /// Reads the requests kept in `dir`; a file that is not a request is named in the error.
    pub fn open(dir: &Path) -> Result<RequestStore, StateError> {
        let mut pending = HashMap::new();
        for (key, path) in keyed_files(dir, "json")? {
            let bytes = std::fs::read(&path).map_err(|source| StateError::Read { path: path.clone(), source })?;
            let request: OperatorRequest =
                serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: path.clone(), source })?;
            pending.insert(key, request);
        }
        Ok(RequestStore { dir: dir.to_path_buf(), pending: Mutex::new(pending), known: Mutex::new(HashSet::new()) })
    }

    /// The Canaries requests may name.
    pub fn set_known(&self, keys: impl Iterator<Item = String>) {
        *self.known.lock().expect("requests lock") = keys.collect();
    }

    pub fn is_known(&self, key: &str) -> bool {
        self.known.lock().expect("requests lock").contains(key)
    }

    /// Keeps `request` as the newest for `key`, replacing one not acted on yet (as a newer value
    /// of the annotation would).
    pub fn submit(&self, key: &str, request: OperatorRequest) -> Result<(), StateError> {
        let path = self.path(key);
        let json = serde_json::to_vec_pretty(&request).expect("a request serializes");
        state_file::write_atomically(&path, &json).map_err(|source| StateError::Write { path, source })?;
        self.pending.lock().expect("requests lock").insert(key.to_string(), request);
        Ok(())
    }

    pub fn pending(&self, key: &str) -> Option<OperatorRequest> {
        self.pending.lock().expect("requests lock").get(key).cloned()
    }

    /// Drops the request `id` once acted on; a newer one that arrived meanwhile stays.
    pub fn handled(&self, key: &str, id: &str) {
        let mut pending = self.pending.lock().expect("requests lock");
        if pending.get(key).is_some_and(|r| r.id == id) {
            pending.remove(key);
            let _ = std::fs::remove_file(self.path(key));
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        keyed_path(&self.dir, key, "json")
    }
}
