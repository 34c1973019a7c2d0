//! What the standalone API serves about the Canaries it runs, shaped as the Kubernetes API serves
//! them (a `Canary` with its spec and status, its events, its target), so `kubectl serin
//! --standalone URL` reads the same objects whichever way Serin runs.
//!
//! The target is read from the manifests on disk at each request, as the plugin reads a Deployment
//! in a cluster: the revision a CI job just wrote is the one `wait` waits for, even in the second
//! before the controller's own reload notices the change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serin_crds::Canary;

use super::error::ManifestProblem;
use super::groups::{EndpointGroup, revision_source};
use super::manifests::{LoadedCanary, ManifestSource};
use super::state::{EventRecord, StandaloneState};
use crate::engine::revision::Revision;
use crate::hooks::gates::{Gate, GateStore};

/// The read side of the standalone controller, for its API.
pub struct CanaryView {
    pub(super) running: Arc<RwLock<HashMap<String, Arc<LoadedCanary>>>>,
    pub(super) state: Arc<Mutex<StandaloneState>>,
    pub(super) source: ManifestSource,
    pub(super) gates: Arc<GateStore>,
}

/// A Canary's target as the manifests on disk have it now.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetNow {
    /// The revision the controller rolls out for the canary group as it is now; compare it with
    /// `status.lastAppliedSpec` and `status.lastPromotedSpec`.
    pub revision: String,
    pub canary: EndpointGroup,
    /// The group the controller owns for the primary, once it made one.
    pub primary: Option<EndpointGroup>,
    pub primary_revision: Option<String>,
}

/// Why the target cannot be told now.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no Canary {0} in the manifests the controller runs")]
    NoCanary(String),
    #[error("the manifests on disk do not load, so the revision to roll out is not known: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Manifests(Vec<ManifestProblem>),
    #[error("Canary {canary}: the manifests on disk have no endpoint group {group} (its canary)")]
    NoGroup { canary: String, group: String },
}

impl CanaryView {
    /// The Canaries of `namespace`, or of every namespace, sorted by namespace and name.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Canary> {
        let mut chosen: Vec<Arc<LoadedCanary>> = self
            .running
            .read()
            .expect("canaries lock")
            .values()
            .filter(|c| namespace.is_none_or(|ns| c.namespace == ns))
            .cloned()
            .collect();
        chosen.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        chosen.iter().map(|c| self.object(c)).collect()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Canary> {
        let loaded = self.loaded(namespace, name)?;
        Some(self.object(&loaded))
    }

    /// The running Canary; the lock is let go before the state's is taken (the controller takes
    /// them the other way round).
    fn loaded(&self, namespace: &str, name: &str) -> Option<Arc<LoadedCanary>> {
        self.running.read().expect("canaries lock").get(&format!("{namespace}/{name}")).cloned()
    }

    /// The Canary's recent events, oldest first.
    pub fn events(&self, namespace: &str, name: &str) -> Option<Vec<EventRecord>> {
        let key = self.loaded(namespace, name)?.key();
        let state = self.state.lock().expect("state lock");
        Some(state.canaries.get(&key).map(|r| r.events.clone()).unwrap_or_default())
    }

    /// Reads the manifests from disk (blocking: call it off the async threads).
    pub fn target(&self, namespace: &str, name: &str) -> Result<TargetNow, TargetError> {
        let key = format!("{namespace}/{name}");
        if self.loaded(namespace, name).is_none() {
            return Err(TargetError::NoCanary(key));
        }
        let manifests = self.source.load().map_err(TargetError::Manifests)?;
        let canary = manifests.canaries.iter().find(|c| c.key() == key).ok_or(TargetError::NoCanary(key.clone()))?;
        let group_name = canary.spec.canary_service_name();
        let group = manifests
            .group(namespace, &group_name)
            .cloned()
            .ok_or(TargetError::NoGroup { canary: key.clone(), group: group_name })?;
        let revision = Revision::of(&revision_source(&group), BTreeMap::new()).id;
        let state = self.state.lock().expect("state lock");
        let record = state.canaries.get(&key);
        Ok(TargetNow {
            revision,
            canary: group,
            primary: record.and_then(|r| r.primary.clone()),
            primary_revision: record.and_then(|r| r.primary_revision.clone()),
        })
    }

    /// The Canary as the Kubernetes API would serve it; its open gates are those of the gate store.
    fn object(&self, loaded: &LoadedCanary) -> Canary {
        let mut canary = Canary::new(&loaded.name, loaded.spec.clone());
        canary.metadata.namespace = Some(loaded.namespace.clone());
        canary.metadata.generation = Some(loaded.generation);
        // None until the first tick, as a Canary the controller has not reconciled yet.
        canary.status =
            self.state.lock().expect("state lock").canaries.get(&loaded.key()).and_then(|r| r.status.clone());
        let open: Vec<Gate> =
            Gate::ALL.into_iter().filter(|g| self.gates.is_open(&loaded.namespace, &loaded.name, *g)).collect();
        if !open.is_empty() {
            let status = canary.status.get_or_insert_default();
            status.open_gates.extend(open.iter().map(|g| g.as_str().to_string()));
        }
        canary
    }
}
