//! A backend: a Service as a destination, with its endpoints (on the port a backendRef chose) and
//! its TrafficPolicy at compile time.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use serin_crds::traffic_policy::LoadBalancerAlgorithm;

use super::balance;
use super::endpoint::BackendEndpoint;
use crate::metrics::Label;
use crate::policy::ServicePolicy;

#[derive(Debug)]
pub struct Backend {
    pub namespace: Label,
    pub name: Label,
    pub endpoints: Vec<BackendEndpoint>,
    /// The TrafficPolicy attached to this backend's Service, if any.
    pub policy: Option<Arc<ServicePolicy>>,
    round_robin: AtomicUsize,
}

impl Backend {
    pub fn new(
        namespace: Label,
        name: Label,
        endpoints: Vec<BackendEndpoint>,
        policy: Option<Arc<ServicePolicy>>,
    ) -> Self {
        Backend { namespace, name, endpoints, policy, round_robin: AtomicUsize::new(0) }
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
