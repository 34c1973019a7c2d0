//! The config in use, and the only way to change it: compile the new one first, then swap.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::config::{ConfigError, ProxyConfig, check_services};
use crate::routing::RouteTable;
use crate::state::RuntimeState;

/// One accepted config with its compiled route table.
#[derive(Debug)]
pub struct Loaded {
    /// Counts accepted configs from 1; reported on `/config` and in metrics.
    pub generation: u64,
    pub config: ProxyConfig,
    pub table: RouteTable,
}

#[derive(Debug)]
pub struct ConfigStore {
    current: RwLock<Arc<Loaded>>,
    /// False while a config source has not delivered its first complete config (`/ready` says so).
    ready: std::sync::atomic::AtomicBool,
    /// Set when the process is told to stop: `/ready` fails and clients are asked to go elsewhere.
    leaving: std::sync::atomic::AtomicBool,
    /// Endpoint and service state every compiled config points into.
    pub state: Arc<RuntimeState>,
}

impl ConfigStore {
    pub fn new(config: ProxyConfig) -> Result<ConfigStore, ConfigError> {
        check_services(&config)?;
        let state = Arc::new(RuntimeState::default());
        let table = RouteTable::compile(&config, &state)?;
        Ok(ConfigStore {
            current: RwLock::new(Arc::new(Loaded { generation: 1, config, table })),
            ready: std::sync::atomic::AtomicBool::new(true),
            leaving: std::sync::atomic::AtomicBool::new(false),
            state,
        })
    }

    /// A store that is not ready until `mark_ready`: for a source that starts empty and fills
    /// the config in (the cluster's objects).
    pub fn waiting() -> ConfigStore {
        let store = ConfigStore::new(ProxyConfig::default()).expect("the empty config is valid");
        store.ready.store(false, std::sync::atomic::Ordering::SeqCst);
        store
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst) && !self.is_leaving()
    }

    /// The process is stopping: readiness fails, and HTTP/1.1 answers say `Connection: close`.
    pub fn mark_leaving(&self) {
        self.leaving.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The config a new request runs on. A request keeps this Arc to its end, so a swap never
    /// changes the routing of a request already started.
    pub fn load(&self) -> Arc<Loaded> {
        self.current.read().expect("the config lock is never poisoned").clone()
    }

    /// Replaces the whole config if it is valid; returns the new generation.
    pub fn replace(&self, config: ProxyConfig) -> Result<u64, ConfigError> {
        check_services(&config)?;
        let table = RouteTable::compile(&config, &self.state)?;
        let mut current = self.current.write().expect("the config lock is never poisoned");
        let generation = current.generation + 1;
        let previous = std::mem::replace(&mut *current, Arc::new(Loaded { generation, config, table }));
        drop(current);
        drop(previous);
        self.state.prune();
        Ok(generation)
    }

    /// Sets the weights of named backends in every rule of one HTTPRoute: what a controller does
    /// at each rollout step. Backends not named keep their weight.
    pub fn set_weights(
        &self,
        namespace: &str,
        route: &str,
        weights: &BTreeMap<String, i32>,
    ) -> Result<u64, ConfigError> {
        let object = format!("HTTPRoute {namespace}/{route}");
        let mut config = self.load().config.clone();
        let Some(target) = config.routes.iter_mut().find(|r| {
            r.metadata.name.as_deref() == Some(route)
                && r.metadata.namespace.as_deref().unwrap_or("default") == namespace
        }) else {
            return Err(ConfigError::new(object, "metadata.name", "no such route"));
        };
        let mut named: BTreeMap<&str, bool> = weights.keys().map(|k| (k.as_str(), false)).collect();
        for rule in target.spec.rules.iter_mut().flatten() {
            for backend in rule.backend_refs.iter_mut().flatten() {
                if let Some(weight) = weights.get(&backend.name) {
                    backend.weight = Some(*weight);
                    named.insert(backend.name.as_str(), true);
                }
            }
        }
        if let Some((missing, _)) = named.iter().find(|(_, found)| !**found) {
            return Err(ConfigError::new(object, "spec.rules[*].backendRefs", format!("no backend named {missing:?}")));
        }
        self.replace(config)
    }
}
