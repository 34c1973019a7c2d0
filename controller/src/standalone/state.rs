//! Standalone mode's state: everything it knows that is not in the manifests, one file per Canary,
//! so writing one Canary's status never rewrites another's.
//!
//! ```text
//! .serin/canaries/<namespace>/<name>.json     status, applied weights, the primary group, events
//! .serin/history/<namespace>/<name>.jsonl     one line per change of phase, weight, checks or values
//! ```
//!
//! A record is written atomically, and only when it changed, after every decision and again after
//! its actions, so a controller killed at any moment resumes where it was, and an idle Canary costs
//! no writes. The history is for charts (the demo's report, `status`): appended without syncing,
//! kept to its last [`HISTORY_KEPT`] points, and never read back by the controller.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serin_crds::CanaryStatus;

use super::error::StateError;
use super::groups::EndpointGroup;
use crate::engine::Routes;
use crate::state_file;

/// Events kept per Canary.
const EVENTS_KEPT: usize = 200;
/// History points kept per Canary.
pub const HISTORY_KEPT: usize = 2000;

/// Every Canary's record, by `namespace/name`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneState {
    pub canaries: BTreeMap<String, CanaryRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CanaryStatus>,
    /// The weights last applied to meshproxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteWeights>,
    /// The primary endpoint group the controller owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<EndpointGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_revision: Option<String>,
    /// The engine scaled the canary down: its endpoints get no traffic and count as not running.
    #[serde(default)]
    pub canary_scaled_to_zero: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRecord>,
    /// Read from the history file; not part of the record file.
    #[serde(skip)]
    pub history: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteWeights {
    pub primary: u8,
    pub canary: u8,
    pub mirror: bool,
}

impl From<Routes> for RouteWeights {
    fn from(r: Routes) -> Self {
        RouteWeights { primary: r.primary, canary: r.canary, mirror: r.mirror }
    }
}

impl From<RouteWeights> for Routes {
    fn from(r: RouteWeights) -> Self {
        Routes { primary: r.primary, canary: r.canary, mirror: r.mirror }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub at: Timestamp,
    /// `Normal` or `Warning`.
    pub kind: String,
    pub reason: String,
    pub message: String,
}

/// One change, for the live view and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    pub at: Timestamp,
    pub phase: String,
    pub canary_weight: i32,
    pub failed_checks: i32,
    /// Metric name to (canary value, primary value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

impl HistoryPoint {
    /// The same phase, weight, checks and values: nothing a chart would show.
    pub fn same_as(&self, other: &HistoryPoint) -> bool {
        self.phase == other.phase
            && self.canary_weight == other.canary_weight
            && self.failed_checks == other.failed_checks
            && self.metrics == other.metrics
    }
}

impl CanaryRecord {
    pub fn push_event(&mut self, event: EventRecord) {
        self.events.push(event);
        if self.events.len() > EVENTS_KEPT {
            self.events.drain(..self.events.len() - EVENTS_KEPT);
        }
    }

    /// What the generated route and the meshproxy config are built from.
    pub fn routing(&self) -> (Option<&RouteWeights>, Option<&EndpointGroup>, [Option<&String>; 3]) {
        let cookies = self.status.as_ref().map_or([None, None, None], |s| {
            [
                s.session_affinity_cookie.as_ref(),
                s.primary_session_affinity_cookie.as_ref(),
                s.previous_session_affinity_cookie.as_ref(),
            ]
        });
        (self.routes.as_ref(), self.primary.as_ref(), cookies)
    }

    /// What the record file holds: everything but the in-memory schedule and the history.
    fn durable_eq(&self, other: &CanaryRecord) -> bool {
        self.status == other.status
            && self.routes == other.routes
            && self.primary == other.primary
            && self.primary_revision == other.primary_revision
            && self.canary_scaled_to_zero == other.canary_scaled_to_zero
            && self.events == other.events
    }
}

/// The state folder (`.serin` beside the manifests by default).
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: &Path) -> StateStore {
        StateStore { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record with its history. A state file of the earlier single-file layout
    /// (`state.json`) is taken over: its records are written in this layout and the file is renamed
    /// `state.json.imported`.
    pub fn load(&self) -> Result<StandaloneState, StateError> {
        self.import_single_file()?;
        let mut state = StandaloneState::default();
        for (key, file) in keyed_files(&self.dir.join("canaries"), "json")? {
            let mut record = read_record(&file)?;
            record.history = self.read_history(&key);
            state.canaries.insert(key, record);
        }
        Ok(state)
    }

    /// One Canary's record with its history, if it has one.
    pub fn load_one(&self, key: &str) -> Result<Option<CanaryRecord>, StateError> {
        let path = self.record_path(key);
        if !path.exists() {
            return Ok(None);
        }
        let mut record = read_record(&path)?;
        record.history = self.read_history(key);
        Ok(Some(record))
    }

    /// Writes `record` when its durable part differs from `previous`; says whether it wrote.
    pub fn save_if_changed(
        &self,
        key: &str,
        record: &CanaryRecord,
        previous: Option<&CanaryRecord>,
    ) -> Result<bool, StateError> {
        if previous.is_some_and(|p| p.durable_eq(record)) {
            return Ok(false);
        }
        let path = self.record_path(key);
        let json = serde_json::to_vec_pretty(record).expect("a record serializes");
        state_file::write_atomically(&path, &json).map_err(|source| StateError::Write { path, source })?;
        Ok(true)
    }

    /// Appends a history point; the file is cut back to the last [`HISTORY_KEPT`] points when it has
    /// twice as many, so appends stay cheap and the file bounded.
    pub fn append_history(&self, key: &str, point: &HistoryPoint, points_now: usize) -> Result<(), StateError> {
        let path = self.history_path(key);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)?;
            }
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let mut line = serde_json::to_vec(point).expect("a history point serializes");
            line.push(b'\n');
            file.write_all(&line)
        };
        write(&path).map_err(|source| StateError::Write { path: path.clone(), source })?;
        if points_now >= 2 * HISTORY_KEPT {
            let kept = self.read_history(key);
            let mut text = Vec::new();
            for point in &kept {
                text.extend(serde_json::to_vec(point).expect("a history point serializes"));
                text.push(b'\n');
            }
            state_file::write_atomically(&path, &text).map_err(|source| StateError::Write { path, source })?;
        }
        Ok(())
    }

    /// Forgets a Canary that left the manifests.
    pub fn remove(&self, key: &str) -> Result<(), StateError> {
        for path in [self.record_path(key), self.history_path(key)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StateError::Write { path, source }),
            }
        }
        Ok(())
    }

    /// The last [`HISTORY_KEPT`] points; a torn last line (a crash mid-append) is skipped.
    fn read_history(&self, key: &str) -> Vec<HistoryPoint> {
        let Ok(text) = std::fs::read_to_string(self.history_path(key)) else { return Vec::new() };
        let mut points: Vec<HistoryPoint> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        if points.len() > HISTORY_KEPT {
            points.drain(..points.len() - HISTORY_KEPT);
        }
        points
    }

    fn record_path(&self, key: &str) -> PathBuf {
        keyed_path(&self.dir.join("canaries"), key, "json")
    }

    fn history_path(&self, key: &str) -> PathBuf {
        keyed_path(&self.dir.join("history"), key, "jsonl")
    }

    fn import_single_file(&self) -> Result<(), StateError> {
        let old = self.dir.join("state.json");
        let bytes = match std::fs::read(&old) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Read { path: old, source }),
        };
        #[derive(Deserialize)]
        struct SingleFile {
            canaries: BTreeMap<String, SingleFileRecord>,
        }
        #[derive(Deserialize)]
        struct SingleFileRecord {
            #[serde(flatten)]
            record: CanaryRecord,
            #[serde(default)]
            history: Vec<HistoryPoint>,
        }
        let single: SingleFile =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: old.clone(), source })?;
        for (key, SingleFileRecord { record, history }) in single.canaries {
            self.save_if_changed(&key, &record, None)?;
            for (i, point) in history.iter().enumerate() {
                self.append_history(&key, point, i)?;
            }
        }
        let imported = self.dir.join("state.json.imported");
        std::fs::rename(&old, &imported).map_err(|source| StateError::Write { path: imported, source })
    }
}

fn read_record(path: &Path) -> Result<CanaryRecord, StateError> {
    let bytes = std::fs::read(path).map_err(|source| StateError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: path.to_path_buf(), source })
}

/// `dir/<namespace>/<name>.<extension>` for the key `namespace/name`, both names encoded.
pub(super) fn keyed_path(dir: &Path, key: &str, extension: &str) -> PathBuf {
    let (namespace, name) = split_key(key);
    dir.join(encode(namespace)).join(format!("{}.{extension}", encode(name)))
}

/// Every `<namespace>/<name>.<extension>` file under `dir`, as (`namespace/name`, path).
pub(super) fn keyed_files(dir: &Path, extension: &str) -> Result<Vec<(String, PathBuf)>, StateError> {
    let mut files = Vec::new();
    for namespace in read_dir_sorted(dir)? {
        for file in read_dir_sorted(&namespace)? {
            let suffix = format!(".{extension}");
            let Some(name) = file.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(&suffix)) else {
                continue;
            };
            let namespace_name = namespace.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            files.push((format!("{}/{}", decode(namespace_name), decode(name)), file.clone()));
        }
    }
    Ok(files)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            // Temporary files of an interrupted write are not records.
            paths.retain(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')));
            paths.sort();
            Ok(paths)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StateError::Read { path: dir.to_path_buf(), source }),
    }
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

/// A name as a file name: anything but lowercase letters, digits, `-` and inner `.` is written
/// `%XX`, so no name can reach outside its folder or hide as a dot file.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain = byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || (byte == b'.' && i > 0);
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = name.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("serin-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn names_become_file_names_that_stay_in_their_folder_and_come_back() {
        for name in ["podinfo", "a.b", "../etc", ".hidden", "Upper/slash", "ünï"] {
            let encoded = encode(name);
            assert!(!encoded.contains('/') && !encoded.starts_with('.'), "{name} -> {encoded}");
            assert_eq!(decode(&encoded), name);
        }
    }

    #[test]
    fn a_record_is_written_only_when_it_changes_and_reads_back_with_its_history() {
        let dir = temp_dir("records");
        let store = StateStore::new(&dir);
        let mut record = CanaryRecord { primary_revision: Some("abc".into()), ..Default::default() };
        assert!(store.save_if_changed("test/podinfo", &record, None).unwrap());
        let mut same = record.clone();
        same.history = vec![];
        assert!(!store.save_if_changed("test/podinfo", &same, Some(&record)).unwrap());
        let point = |weight| HistoryPoint {
            at: Timestamp::now(),
            phase: "Progressing".into(),
            canary_weight: weight,
            failed_checks: 0,
            metrics: BTreeMap::new(),
        };
        store.append_history("test/podinfo", &point(10), 0).unwrap();
        store.append_history("test/podinfo", &point(20), 1).unwrap();
        record.history = vec![point(10), point(20)];
        let loaded = store.load().unwrap();
        let back = &loaded.canaries["test/podinfo"];
        assert_eq!(back.primary_revision.as_deref(), Some("abc"));
        assert_eq!(back.history.iter().map(|p| p.canary_weight).collect::<Vec<_>>(), vec![10, 20]);
        store.remove("test/podinfo").unwrap();
        assert!(store.load().unwrap().canaries.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_record_is_named_with_what_to_do() {
        let dir = temp_dir("damaged");
        let store = StateStore::new(&dir);
        store.save_if_changed("test/podinfo", &CanaryRecord::default(), None).unwrap();
        let file = dir.join("canaries/test/podinfo.json");
        std::fs::write(&file, b"{\"status\": ").unwrap();
        let message = store.load().unwrap_err().to_string();
        assert!(message.starts_with(&format!("{}: not a Serin state file", file.display())), "{message}");
        assert!(message.ends_with("move it away to start from scratch"), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_single_file_layout_is_taken_over() {
        let dir = temp_dir("import");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("state.json"),
            r#"{"canaries": {"test/podinfo": {"primaryRevision": "abc", "canaryScaledToZero": true,
                "history": [{"at": "2026-01-01T00:00:00Z", "phase": "Initialized", "canaryWeight": 0, "failedChecks": 0}]}}}"#,
        )
        .unwrap();
        let state = StateStore::new(&dir).load().unwrap();
        let record = &state.canaries["test/podinfo"];
        assert!(record.canary_scaled_to_zero);
        assert_eq!(record.history.len(), 1);
        assert!(dir.join("state.json.imported").exists() && !dir.join("state.json").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
