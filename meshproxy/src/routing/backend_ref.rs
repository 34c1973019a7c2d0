//! A rule's weighted destination: a backend, its weight, and the filters its `backendRef` adds
//! (applied after the rule's).

use std::sync::Arc;

use super::backend::Backend;
use super::filters::RuleFilters;

#[derive(Debug)]
pub struct BackendRef {
    pub backend: Arc<Backend>,
    pub weight: u32,
    pub filters: RuleFilters,
}

/// Picks a backend with probability weight / total, as HTTPRoute requires. Strict: a chosen
/// backend without endpoints is not skipped (the request fails with 503 and says why), so a
/// canary that lost its endpoints shows as errors, never as silence.
pub fn pick_weighted(backends: &[BackendRef]) -> Option<&BackendRef> {
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
