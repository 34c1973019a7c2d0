//! Choosing an endpoint of a backend. The default is linkerd2-proxy's: power of two choices over
//! peak-EWMA latency, weighted by requests in flight. Ejected endpoints are skipped unless all
//! are ejected, when everything is tried again (Envoy's panic mode): some traffic beats none.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serin_crds::traffic_policy::LoadBalancerAlgorithm;

use super::endpoint::BackendEndpoint;

/// Picks one of `endpoints` by `algorithm`, skipping ejected ones while any are healthy.
pub fn pick<'a>(
    endpoints: &'a [BackendEndpoint],
    algorithm: LoadBalancerAlgorithm,
    round_robin: &AtomicUsize,
) -> Option<&'a BackendEndpoint> {
    let now = Instant::now();
    let healthy: Vec<&BackendEndpoint> = endpoints.iter().filter(|e| !e.state.health.is_ejected(now)).collect();
    let candidates: Vec<&BackendEndpoint> = if healthy.is_empty() { endpoints.iter().collect() } else { healthy };
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        n => match algorithm {
            LoadBalancerAlgorithm::RoundRobin => Some(candidates[round_robin.fetch_add(1, Ordering::Relaxed) % n]),
            LoadBalancerAlgorithm::P2cEwma => {
                let (a, b) = two_distinct(n);
                let (a, b) = (candidates[a], candidates[b]);
                Some(if b.state.load.cost() < a.state.load.cost() { b } else { a })
            }
            LoadBalancerAlgorithm::LeastRequest => {
                let (a, b) = two_distinct(n);
                let (a, b) = (candidates[a], candidates[b]);
                Some(if b.state.load.in_flight() < a.state.load.in_flight() { b } else { a })
            }
        },
    }
}

fn two_distinct(n: usize) -> (usize, usize) {
    let a = fastrand::usize(0..n);
    let b = (a + fastrand::usize(1..n)) % n;
    (a, b)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::state::EndpointState;

    fn endpoint(port: u16) -> BackendEndpoint {
        BackendEndpoint {
            address: ([127, 0, 0, 1], port).into(),
            authority: format!("127.0.0.1:{port}").parse().unwrap(),
            version: Arc::default(),
            service_port: None,
            protocol: Default::default(),
            state: Arc::new(EndpointState::default()),
        }
    }

    #[test]
    fn p2c_prefers_the_faster_endpoint() {
        let endpoints = vec![endpoint(1), endpoint(2)];
        endpoints[0].state.load.observe(Duration::from_millis(50));
        endpoints[1].state.load.observe(Duration::from_millis(1));
        let counter = AtomicUsize::new(0);
        let fast = (0..1000)
            .filter(|_| pick(&endpoints, LoadBalancerAlgorithm::P2cEwma, &counter).unwrap().address.port() == 2)
            .count();
        assert_eq!(fast, 1000, "with two endpoints both are always compared");
    }

    #[test]
    fn round_robin_covers_all() {
        let endpoints = vec![endpoint(1), endpoint(2), endpoint(3)];
        let counter = AtomicUsize::new(0);
        let mut seen: Vec<u16> = (0..3)
            .map(|_| pick(&endpoints, LoadBalancerAlgorithm::RoundRobin, &counter).unwrap().address.port())
            .collect();
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3]);
    }
}
