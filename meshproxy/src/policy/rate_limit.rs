//! A token bucket per Service and proxy: `requestsPerSecond` tokens a second, at most `burst`
//! saved up. A request without a token is answered 429 at once and never reaches an endpoint.

use std::sync::Mutex;
use std::time::Instant;

use serin_crds::traffic_policy::RateLimit;

use super::FieldError;

#[derive(Debug, Clone, Copy)]
pub struct RateLimitRule {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimitRule {
    pub fn compile(spec: &RateLimit) -> Result<RateLimitRule, FieldError> {
        if !(spec.requests_per_second.is_finite() && spec.requests_per_second >= 0.001) {
            return Err((
                "spec.rateLimit.requestsPerSecond".into(),
                format!("{} is not a rate of at least 0.001", spec.requests_per_second),
            ));
        }
        let burst = match spec.burst {
            Some(burst) if burst < 1 => {
                return Err(("spec.rateLimit.burst".into(), format!("{burst} is less than 1")));
            }
            Some(burst) => f64::from(burst),
            None => spec.requests_per_second.ceil().max(1.0),
        };
        Ok(RateLimitRule { per_second: spec.requests_per_second, burst })
    }
}

/// The tokens of one Service. Kept across config swaps; a new rule applies from the next request.
#[derive(Debug, Default)]
pub struct TokenBucket {
    /// Tokens left and when they were counted; None until first used (a full bucket).
    level: Mutex<Option<(f64, Instant)>>,
}

impl TokenBucket {
    pub fn try_take(&self, rule: RateLimitRule) -> bool {
        let now = Instant::now();
        let mut level = self.level.lock().expect("the bucket lock is never poisoned");
        let (tokens, counted) = level.unwrap_or((rule.burst, now));
        let refilled = (tokens + now.duration_since(counted).as_secs_f64() * rule.per_second).min(rule.burst);
        let (left, taken) = if refilled >= 1.0 { (refilled - 1.0, true) } else { (refilled, false) };
        *level = Some((left, now));
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_its_burst_then_refuses() {
        let rule = RateLimitRule { per_second: 0.001, burst: 3.0 };
        let bucket = TokenBucket::default();
        let taken = (0..10).filter(|_| bucket.try_take(rule)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn refuses_bad_rates() {
        let spec = RateLimit { requests_per_second: 0.0, burst: None };
        assert_eq!(RateLimitRule::compile(&spec).unwrap_err().0, "spec.rateLimit.requestsPerSecond");
        let spec = RateLimit { requests_per_second: 2.5, burst: None };
        assert_eq!(RateLimitRule::compile(&spec).unwrap().burst, 3.0);
    }
}
