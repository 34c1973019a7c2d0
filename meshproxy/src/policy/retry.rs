//! Which failed attempts are tried again, and how long to wait before the next try.

use std::time::Duration;

use serin_crds::traffic_policy::{RetryOn, RetryPolicy};

use super::{FieldError, optional_duration};

#[derive(Debug, Clone)]
pub struct RetryRule {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    retry_on: Vec<RetryOn>,
    codes: Vec<u16>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered with this status.
    Status(u16),
    /// No connection could be made.
    ConnectFailure,
    /// The connection broke before a response came.
    Reset,
    /// No response within the per-try timeout.
    PerTryTimeout,
}

impl AttemptOutcome {
    /// What outlier detection counts against an endpoint: 5xx answers and answers that never came.
    pub fn is_endpoint_failure(self) -> bool {
        match self {
            AttemptOutcome::Status(code) => code >= 500,
            _ => true,
        }
    }
}

impl RetryRule {
    pub fn compile(spec: &RetryPolicy) -> Result<RetryRule, FieldError> {
        if !(1..=10).contains(&spec.attempts) {
            return Err(("spec.retries.attempts".into(), format!("{} is outside 1..=10", spec.attempts)));
        }
        let per_try_timeout = optional_duration(spec.per_try_timeout.as_deref(), "spec.retries.perTryTimeout")?;
        let mut codes = Vec::new();
        for (i, code) in spec.retriable_status_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                return Err((
                    format!("spec.retries.retriableStatusCodes[{i}]"),
                    format!("{code} is not a status code"),
                ));
            }
            codes.push(*code as u16);
        }
        let retry_on = if spec.retry_on.is_empty() {
            vec![RetryOn::ConnectFailure, RetryOn::Reset]
        } else {
            spec.retry_on.clone()
        };
        if retry_on.contains(&RetryOn::RetriableStatusCodes) && codes.is_empty() {
            return Err((
                "spec.retries.retriableStatusCodes".into(),
                "retryOn names retriable-status-codes but no codes are listed".into(),
            ));
        }
        Ok(RetryRule { attempts: spec.attempts as u32, per_try_timeout, retry_on, codes })
    }

    /// Whether an attempt that ended so may be tried again (attempts left aside). The classes
    /// follow Envoy's: `5xx` covers resets and connect failures, and a per-try timeout counts as
    /// a 504.
    pub fn retries(&self, outcome: AttemptOutcome) -> bool {
        let status = match outcome {
            AttemptOutcome::Status(code) => Some(code),
            AttemptOutcome::PerTryTimeout => Some(504),
            AttemptOutcome::ConnectFailure | AttemptOutcome::Reset => None,
        };
        self.retry_on.iter().any(|class| match (class, outcome, status) {
            (RetryOn::ServerError, _, Some(code)) => code >= 500,
            (RetryOn::ServerError, _, None) => true,
            (RetryOn::GatewayError, AttemptOutcome::ConnectFailure, _) => true,
            (RetryOn::GatewayError, _, Some(code)) => matches!(code, 502..=504),
            (RetryOn::Reset, AttemptOutcome::Reset, _) => true,
            (RetryOn::ConnectFailure, AttemptOutcome::ConnectFailure, _) => true,
            (RetryOn::RetriableStatusCodes, _, Some(code)) => self.codes.contains(&code),
            _ => false,
        })
    }

    /// Wait before retry number `retry` (1 for the first): 25 ms doubling, capped at 250 ms, with
    /// full jitter so retries from many clients do not arrive together.
    pub fn backoff(retry: u32) -> Duration {
        let ceiling = (25u64 << retry.saturating_sub(1).min(4)).min(250);
        Duration::from_millis(fastrand::u64(ceiling / 2..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(on: &[RetryOn], codes: &[i32]) -> RetryRule {
        RetryRule::compile(&RetryPolicy {
            attempts: 3,
            per_try_timeout: None,
            retry_on: on.to_vec(),
            retriable_status_codes: codes.to_vec(),
        })
        .unwrap()
    }

    #[test]
    fn classes_follow_envoy() {
        use AttemptOutcome::*;
        let default = rule(&[], &[]);
        assert!(default.retries(ConnectFailure) && default.retries(Reset));
        assert!(!default.retries(Status(503)) && !default.retries(PerTryTimeout));

        let server = rule(&[RetryOn::ServerError], &[]);
        assert!(server.retries(Status(500)) && server.retries(Reset) && server.retries(PerTryTimeout));
        assert!(!server.retries(Status(429)));

        let gateway = rule(&[RetryOn::GatewayError], &[]);
        assert!(gateway.retries(Status(503)) && gateway.retries(PerTryTimeout) && gateway.retries(ConnectFailure));
        assert!(!gateway.retries(Status(500)) && !gateway.retries(Reset));

        let codes = rule(&[RetryOn::RetriableStatusCodes], &[429]);
        assert!(codes.retries(Status(429)) && !codes.retries(Status(500)));
    }

    #[test]
    fn refuses_codes_class_without_codes_and_bad_attempts() {
        let spec = RetryPolicy { attempts: 2, retry_on: vec![RetryOn::RetriableStatusCodes], ..Default::default() };
        assert_eq!(RetryRule::compile(&spec).unwrap_err().0, "spec.retries.retriableStatusCodes");
        let spec = RetryPolicy { attempts: 0, ..Default::default() };
        assert_eq!(RetryRule::compile(&spec).unwrap_err().0, "spec.retries.attempts");
    }

    #[test]
    fn backoff_is_bounded() {
        for retry in 1..20 {
            let wait = RetryRule::backoff(retry);
            assert!(wait <= Duration::from_millis(250), "{wait:?}");
        }
    }
}
