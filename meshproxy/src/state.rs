//! What the proxy learns while it runs and must keep across config swaps: per endpoint its
//! health, latency, requests in flight and open connections; per Service its breaker slots and
//! rate-limit tokens. Compiled configs hold `Arc`s into here, so a request never looks anything up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::policy::{EndpointHealth, TokenBucket};
use crate::routing::EndpointLoad;

#[derive(Debug, Default)]
pub struct EndpointState {
    pub health: EndpointHealth,
    pub load: EndpointLoad,
    /// Open upstream connections to this endpoint.
    pub connections: AtomicI64,
}

#[derive(Debug, Default)]
pub struct ServiceState {
    pub bucket: TokenBucket,
    breaker: Mutex<Option<BreakerSlots>>,
}

/// The breaker's slots and queue length, with the slot count they were made for.
type BreakerSlots = (usize, Arc<Semaphore>, Arc<AtomicUsize>);

impl ServiceState {
    /// The breaker's semaphore for `max_active` slots. Kept while the limit stays the same; a
    /// new limit starts a new semaphore (requests already in flight finish on the old one).
    pub fn breaker_slots(&self, max_active: usize) -> (Arc<Semaphore>, Arc<AtomicUsize>) {
        let mut breaker = self.breaker.lock().expect("the breaker lock is never poisoned");
        match &*breaker {
            Some((size, slots, pending)) if *size == max_active => (slots.clone(), pending.clone()),
            _ => {
                let slots = Arc::new(Semaphore::new(max_active));
                let pending = Arc::new(AtomicUsize::new(0));
                *breaker = Some((max_active, slots.clone(), pending.clone()));
                (slots, pending)
            }
        }
    }
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
