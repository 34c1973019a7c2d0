use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One weighted destination of a rule: a service and its endpoints at compile time.
#[derive(Debug)]
pub struct Backend {
    pub namespace: String,
    pub name: String,
    pub weight: u32,
    pub endpoints: Vec<BackendEndpoint>,
    next: AtomicUsize,
}

#[derive(Debug, Clone)]
pub struct BackendEndpoint {
    pub address: SocketAddr,
    /// The endpoint's `version` label, reported in metrics.
    pub version: Arc<str>,
}

impl Backend {
    pub fn new(namespace: String, name: String, weight: u32, endpoints: Vec<BackendEndpoint>) -> Self {
        Backend { namespace, name, weight, endpoints, next: AtomicUsize::new(0) }
    }

    /// Round robin over the endpoints; None when the backend has none.
    pub fn pick_endpoint(&self) -> Option<&BackendEndpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(index)
    }
}

/// Picks a backend with probability weight / total, as HTTPRoute requires. Strict: a chosen
/// backend without endpoints is not skipped (the request fails with 503 and says why), so a
/// canary that lost its endpoints shows as errors, never as silence.
pub fn pick_weighted(backends: &[Arc<Backend>]) -> Option<&Arc<Backend>> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = fastrand::u64(0..total);
    for backend in backends {
        let weight = u64::from(backend.weight);
        if ticket < weight {
            return Some(backend);
        }
        ticket -= weight;
    }
    None
}
