use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serin_crds::traffic_policy::LoadBalancerAlgorithm;

use super::balance;
use super::filters::RuleFilters;
use crate::metrics::Label;
use crate::policy::ServicePolicy;
use crate::state::EndpointState;

/// One weighted destination of a rule: a service, its endpoints and its TrafficPolicy at compile
/// time, and the filters its `backendRef` adds.
#[derive(Debug)]
pub struct Backend {
    pub namespace: Label,
    pub name: Label,
    pub weight: u32,
    pub endpoints: Vec<BackendEndpoint>,
    /// The TrafficPolicy attached to this backend's Service, if any.
    pub policy: Option<Arc<ServicePolicy>>,
    /// Filters of the `backendRef` itself, applied after the rule's.
    pub filters: RuleFilters,
    round_robin: AtomicUsize,
}

#[derive(Debug, Clone)]
pub struct BackendEndpoint {
    pub address: SocketAddr,
    /// `address` as a URI authority, made once rather than per request.
    pub authority: http::uri::Authority,
    /// The endpoint's `version` label, reported in metrics.
    pub version: Label,
    /// The service port it serves; None: every port.
    pub service_port: Option<u16>,
    pub state: Arc<EndpointState>,
}

impl Backend {
    pub fn new(
        namespace: Label,
        name: Label,
        weight: u32,
        endpoints: Vec<BackendEndpoint>,
        policy: Option<Arc<ServicePolicy>>,
        filters: RuleFilters,
    ) -> Self {
        Backend { namespace, name, weight, endpoints, policy, filters, round_robin: AtomicUsize::new(0) }
    }

    /// An endpoint by the load balancer of `algorithm`; None when the backend has none.
    pub fn pick_endpoint(&self, algorithm: LoadBalancerAlgorithm) -> Option<&BackendEndpoint> {
        balance::pick(&self.endpoints, algorithm, &self.round_robin)
    }

    /// Endpoints of this backend ejected right now.
    pub fn ejected(&self) -> usize {
        let now = std::time::Instant::now();
        self.endpoints.iter().filter(|e| e.state.health.is_ejected(now)).count()
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
