//! A TrafficPolicy's gates before anything is sent: the rate limit and injected faults, then a slot
//! of the circuit breaker. A request turned away here reaches no endpoint and is not mirrored; its
//! error is the policy's (a fault's is counted as the upstream's, which it simulates).

use http::StatusCode;

use super::error::ProxyError;
use crate::policy::{BreakerPermit, ServicePolicy};

/// The rate limit, then an injected delay or abort.
pub async fn rate_and_faults(policy: Option<&ServicePolicy>) -> Result<(), ProxyError> {
    let Some(policy) = policy else { return Ok(()) };
    if let Some(limit) = policy.rate_limit
        && !policy.state.bucket.try_take(limit)
    {
        return Err(ProxyError::policy(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit of {} ({} requests/s) exceeded", policy.object, limit.per_second),
        ));
    }
    if let Some(wait) = policy.fault.delay() {
        tokio::time::sleep(wait).await;
    }
    if let Some(status) = policy.fault.abort() {
        return Err(ProxyError::fault(status, format!("fault injected by {}", policy.object)));
    }
    Ok(())
}

/// A slot of the circuit breaker, held until the response headers arrive; None without a breaker.
pub async fn breaker_slot(policy: Option<&ServicePolicy>) -> Result<Option<BreakerPermit>, ProxyError> {
    let Some((policy, breaker)) = policy.and_then(|p| p.breaker.as_ref().map(|b| (p, b))) else { return Ok(None) };
    breaker.enter().await.map(Some).map_err(|shed| {
        ProxyError::policy(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "circuit breaker of {} is open: {} requests at the endpoints, {} waiting",
                policy.object, shed.active, shed.pending
            ),
        )
    })
}
