//! What the proxy learns while it runs and must keep across config swaps: per endpoint its
//! health, latency, requests in flight and open connections; per Service its breaker slots and
//! rate-limit tokens (the counters a TrafficPolicy acts on, defined beside their rules in
//! `policy`). Compiled configs hold `Arc`s into here, so a request never looks anything up.

mod load;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

pub use load::{EndpointLoad, InFlight};

use crate::policy::{EndpointHealth, ServiceState};

#[derive(Debug, Default)]
pub struct EndpointState {
    pub health: EndpointHealth,
    pub load: EndpointLoad,
    /// Open upstream connections to this endpoint.
    pub connections: AtomicI64,
}

type ServiceKey = (String, String);

/// All endpoint and service state, by address and by `(namespace, name)`.
#[derive(Debug, Default)]
pub struct RuntimeState {
    endpoints: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
    services: Mutex<HashMap<ServiceKey, Arc<ServiceState>>>,
}

impl RuntimeState {
    pub fn endpoint(&self, address: SocketAddr) -> Arc<EndpointState> {
        let mut endpoints = self.endpoints.lock().expect("the state lock is never poisoned");
        endpoints.entry(address).or_default().clone()
    }

    /// The state of an endpoint already known, without adding it (connections to addresses no
    /// config lists are not tracked).
    pub fn known_endpoint(&self, address: SocketAddr) -> Option<Arc<EndpointState>> {
        self.endpoints.lock().expect("the state lock is never poisoned").get(&address).cloned()
    }

    pub fn service(&self, namespace: &str, name: &str) -> Arc<ServiceState> {
        let mut services = self.services.lock().expect("the state lock is never poisoned");
        services.entry((namespace.to_string(), name.to_string())).or_default().clone()
    }

    /// Forgets what no config refers to any more (only the map's `Arc` is left), so endpoint
    /// churn does not grow memory.
    pub fn prune(&self) {
        self.endpoints.lock().expect("the state lock is never poisoned").retain(|_, state| {
            Arc::strong_count(state) > 1 || state.connections.load(std::sync::atomic::Ordering::Relaxed) > 0
        });
        self.services.lock().expect("the state lock is never poisoned").retain(|_, state| Arc::strong_count(state) > 1);
    }

    /// Every tracked endpoint, for the gauges on `/metrics`.
    pub fn endpoints(&self) -> Vec<(SocketAddr, Arc<EndpointState>)> {
        let endpoints = self.endpoints.lock().expect("the state lock is never poisoned");
        endpoints.iter().map(|(address, state)| (*address, state.clone())).collect()
    }
}
