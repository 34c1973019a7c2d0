//! Deliberate faults: delay or fail a share of requests before they are forwarded, to see how
//! clients and a rollout's analysis cope.

use std::time::Duration;

use http::StatusCode;
use serin_crds::traffic_policy::FaultInjection;

use super::{FieldError, roll};

#[derive(Debug, Clone, Default)]
pub struct Fault {
    delay: Option<(f64, Duration)>,
    abort: Option<(f64, StatusCode)>,
}

impl Fault {
    pub fn compile(spec: &FaultInjection) -> Result<Fault, FieldError> {
        let percent = |value: f64, field: &str| {
            if (0.0..=100.0).contains(&value) {
                Ok(value)
            } else {
                Err((field.to_string(), format!("{value} is outside 0..=100")))
            }
        };
        let delay = match &spec.delay {
            None => None,
            Some(delay) => {
                let share = percent(delay.percent, "spec.fault.delay.percent")?;
                let wait = serin_crds::duration::parse(&delay.fixed_delay)
                    .map_err(|e| ("spec.fault.delay.fixedDelay".to_string(), e.to_string()))?;
                Some((share, wait))
            }
        };
        let abort = match &spec.abort {
            None => None,
            Some(abort) => {
                let share = percent(abort.percent, "spec.fault.abort.percent")?;
                let status = u16::try_from(abort.http_status)
                    .ok()
                    .filter(|code| (200..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .ok_or_else(|| {
                        (
                            "spec.fault.abort.httpStatus".to_string(),
                            format!("{} is outside 200..=599", abort.http_status),
                        )
                    })?;
                Some((share, status))
            }
        };
        Ok(Fault { delay, abort })
    }

    /// The delay this request gets, if it is one of the unlucky ones.
    pub fn delay(&self) -> Option<Duration> {
        self.delay.filter(|(share, _)| roll(*share)).map(|(_, wait)| wait)
    }

    /// The status this request is failed with instead of being forwarded, if any.
    pub fn abort(&self) -> Option<StatusCode> {
        self.abort.filter(|(share, _)| roll(*share)).map(|(_, status)| status)
    }
}
