//! The state file: everything standalone mode knows that is not in the manifests, per Canary —
//! its status, the route weights it applied, the primary endpoint group it owns, recent events and
//! a history of steps. Written atomically after every decision and again after its actions, so a
//! controller killed at any moment resumes where it was.

use std::collections::BTreeMap;
use std::path::Path;

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
const HISTORY_KEPT: usize = 2000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneState {
    /// By `namespace/name`.
    pub canaries: BTreeMap<String, CanaryRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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

/// One tick, for the live view and the report.
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

impl CanaryRecord {
    pub fn push_event(&mut self, event: EventRecord) {
        self.events.push(event);
        if self.events.len() > EVENTS_KEPT {
            self.events.drain(..self.events.len() - EVENTS_KEPT);
        }
    }

    pub fn push_history(&mut self, point: HistoryPoint) {
        self.history.push(point);
        if self.history.len() > HISTORY_KEPT {
            self.history.drain(..self.history.len() - HISTORY_KEPT);
        }
    }
}

impl StandaloneState {
    pub fn load(path: &Path) -> Result<StandaloneState, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path: path.to_path_buf(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StandaloneState::default()),
            Err(source) => Err(StateError::Read { path: path.to_path_buf(), source }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let json = serde_json::to_vec_pretty(self).expect("the state serializes");
        state_file::write_atomically(path, &json)
            .map_err(|source| StateError::Write { path: path.to_path_buf(), source })
    }
}
