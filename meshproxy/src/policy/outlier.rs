//! Passive health checking: an endpoint that fails `consecutive5xxErrors` times in a row is
//! ejected (gets no requests) for `baseEjectionTime` times the number of its ejections, at most
//! 300 s. Ejection ends by itself; an endpoint that then stays healthy for `interval` after its
//! ejection ended starts again from one `baseEjectionTime`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serin_crds::traffic_policy::OutlierDetection;

use super::{FieldError, optional_duration};

const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct OutlierRule {
    pub consecutive_failures: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

impl OutlierRule {
    pub fn compile(spec: &OutlierDetection) -> Result<OutlierRule, FieldError> {
        let consecutive_failures = match spec.consecutive_5xx_errors {
            None => 5,
            Some(n) if n >= 1 => n as u32,
            Some(n) => {
                return Err(("spec.outlierDetection.consecutive5xxErrors".into(), format!("{n} is less than 1")));
            }
        };
        let interval = optional_duration(spec.interval.as_deref(), "spec.outlierDetection.interval")?
            .unwrap_or(Duration::from_secs(10));
        let base_ejection =
            optional_duration(spec.base_ejection_time.as_deref(), "spec.outlierDetection.baseEjectionTime")?
                .unwrap_or(Duration::from_secs(30));
        let max_ejection_percent = match spec.max_ejection_percent {
            None => 10,
            Some(n) if (0..=100).contains(&n) => n as u32,
            Some(n) => {
                return Err(("spec.outlierDetection.maxEjectionPercent".into(), format!("{n} is outside 0..=100")));
            }
        };
        Ok(OutlierRule { consecutive_failures, interval, base_ejection, max_ejection_percent })
    }

    /// How many of `endpoints` may be ejected at once. At least one, as in Envoy, or a
    /// two-endpoint service could never eject its broken half under the default 10 %.
    pub fn max_ejected(&self, endpoints: usize) -> usize {
        (endpoints * self.max_ejection_percent as usize / 100).max(1)
    }
}

/// The health of one endpoint, shared by every config that lists it.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    inner: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    ejections: u32,
}

impl EndpointHealth {
    pub fn is_ejected(&self, now: Instant) -> bool {
        let health = self.inner.lock().expect("the health lock is never poisoned");
        health.ejected_until.is_some_and(|until| now < until)
    }

    /// Records an attempt's result. Returns the ejection time when this failure ejected the
    /// endpoint. `may_eject` says whether the backend's ejection budget has room.
    pub fn record(&self, failed: bool, rule: &OutlierRule, may_eject: impl FnOnce() -> bool) -> Option<Duration> {
        let now = Instant::now();
        let mut health = self.inner.lock().expect("the health lock is never poisoned");
        if !failed {
            health.consecutive_failures = 0;
            if health.ejected_until.is_some_and(|until| now >= until + rule.interval) {
                health.ejected_until = None;
                health.ejections = 0;
            }
            return None;
        }
        health.consecutive_failures += 1;
        let ejected = health.ejected_until.is_some_and(|until| now < until);
        if ejected || health.consecutive_failures < rule.consecutive_failures {
            return None;
        }
        drop(health);
        if !may_eject() {
            return None;
        }
        let mut health = self.inner.lock().expect("the health lock is never poisoned");
        health.ejections += 1;
        health.consecutive_failures = 0;
        let time = (rule.base_ejection * health.ejections).min(MAX_EJECTION);
        health.ejected_until = Some(now + time);
        Some(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> OutlierRule {
        OutlierRule {
            consecutive_failures: 3,
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 10,
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_only() {
        let health = EndpointHealth::default();
        assert_eq!(health.record(true, &rule(), || true), None);
        assert_eq!(health.record(true, &rule(), || true), None);
        assert_eq!(health.record(false, &rule(), || true), None);
        assert_eq!(health.record(true, &rule(), || true), None);
        assert_eq!(health.record(true, &rule(), || true), None);
        assert_eq!(health.record(true, &rule(), || true), Some(Duration::from_secs(30)));
        assert!(health.is_ejected(Instant::now()));
    }

    #[test]
    fn respects_the_ejection_budget() {
        let health = EndpointHealth::default();
        for _ in 0..10 {
            assert_eq!(health.record(true, &rule(), || false), None);
        }
        assert!(!health.is_ejected(Instant::now()));
        assert_eq!(rule().max_ejected(2), 1);
        assert_eq!(OutlierRule { max_ejection_percent: 50, ..rule() }.max_ejected(10), 5);
    }
}
