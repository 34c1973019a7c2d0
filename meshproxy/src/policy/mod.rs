//! TrafficPolicies, compiled: what happens to a Service's requests beyond routing (retries,
//! timeouts, circuit breaking, outlier ejection, faults, rate limits, load balancing).
//!
//! A compiled policy holds the limits of one config. The counters those limits act on (the
//! breaker's slots, the rate limiter's tokens, each endpoint's health and latency) live in
//! `RuntimeState` and outlive config swaps, so a reload neither refills a bucket nor forgets the
//! requests in flight.

mod breaker;
mod fault;
mod outlier;
mod rate_limit;
mod retry;
mod service_state;

use std::sync::Arc;
use std::time::Duration;

use serin_crds::traffic_policy::{LoadBalancerAlgorithm, TrafficPolicySpec};

pub use breaker::{Breaker, BreakerPermit};
pub use fault::Fault;
pub use outlier::{EndpointHealth, OutlierRule};
pub use rate_limit::{RateLimitRule, TokenBucket};
pub use retry::{AttemptOutcome, RetryRule};
pub use service_state::ServiceState;

/// One TrafficPolicy, ready to apply to requests.
#[derive(Debug)]
pub struct ServicePolicy {
    /// `TrafficPolicy ns/name`: named in errors the policy itself causes (429, injected faults).
    pub object: String,
    pub retry: Option<RetryRule>,
    /// Whole-request timeout, retries included.
    pub timeout: Option<Duration>,
    pub breaker: Option<Breaker>,
    pub outlier: Option<OutlierRule>,
    pub fault: Fault,
    pub rate_limit: Option<RateLimitRule>,
    pub balancer: LoadBalancerAlgorithm,
    pub state: Arc<ServiceState>,
}

/// A field of a policy and what is wrong with it.
pub type FieldError = (String, String);

impl ServicePolicy {
    pub fn compile(object: String, spec: &TrafficPolicySpec, state: Arc<ServiceState>) -> Result<Self, FieldError> {
        let retry = spec.retries.as_ref().map(RetryRule::compile).transpose()?;
        let timeout = optional_duration(spec.timeout.as_deref(), "spec.timeout")?;
        let breaker = match &spec.connection_pool {
            Some(pool) => Breaker::compile(pool, &state)?,
            None => None,
        };
        let outlier = spec.outlier_detection.as_ref().map(OutlierRule::compile).transpose()?;
        let fault = match &spec.fault {
            Some(fault) => Fault::compile(fault)?,
            None => Fault::default(),
        };
        let rate_limit = spec.rate_limit.as_ref().map(RateLimitRule::compile).transpose()?;
        let balancer = spec.load_balancer.as_ref().map(|lb| lb.algorithm).unwrap_or_default();
        Ok(ServicePolicy { object, retry, timeout, breaker, outlier, fault, rate_limit, balancer, state })
    }
}

/// A duration field that may be absent; zero means none, as in Gateway API timeouts.
pub(crate) fn optional_duration(text: Option<&str>, field: &str) -> Result<Option<Duration>, FieldError> {
    match text {
        None => Ok(None),
        Some(text) => {
            let duration = serin_crds::duration::parse(text).map_err(|e| (field.to_string(), e.to_string()))?;
            Ok((!duration.is_zero()).then_some(duration))
        }
    }
}

/// True for `percent` percent of calls.
pub(crate) fn roll(percent: f64) -> bool {
    percent > 0.0 && fastrand::f64() * 100.0 < percent
}
