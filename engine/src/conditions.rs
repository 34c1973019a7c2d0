//! `status.conditions`: Flagger's `Promoted` plus kstatus `Ready`, `Reconciling` and `Stalled`, so
//! `kubectl wait`, Flux, Helm and Argo CD read a Canary without custom code.
//!
//! kstatus rules: `Reconciling` and `Stalled` are "abnormal-true" conditions, present only while true;
//! `Ready` is always present. Each condition carries the generation it was computed from.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serin_crds::{CanaryPhase, CanaryStatus, canary_status::condition};

/// Why a canary needs a person, as the `Stalled` condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallReason {
    AnalysisFailed,
    ProgressDeadlineExceeded,
    Aborted,
    RollbackRequested,
    PromotionFailed,
    PrimaryNotReady,
}

impl StallReason {
    fn as_str(self) -> &'static str {
        match self {
            StallReason::AnalysisFailed => "AnalysisFailed",
            StallReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            StallReason::Aborted => "Aborted",
            StallReason::RollbackRequested => "RollbackRequested",
            StallReason::PromotionFailed => "PromotionFailed",
            StallReason::PrimaryNotReady => "PrimaryNotReady",
        }
    }
}

/// Rewrites the conditions for the status' phase. `stalled` is the reason of a failure decided in
/// this tick; a Failed canary keeps the reason it failed with on later ticks.
pub fn update(status: &mut CanaryStatus, generation: i64, now: Timestamp, stalled: Option<StallReason>) {
    let phase = status.phase;
    let message = status.message.clone();
    let reason = phase.as_str();

    let promoted = match phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded => "True",
        CanaryPhase::Failed => "False",
        _ => "Unknown",
    };
    set(status, condition::PROMOTED, promoted, reason, &message, generation, now);

    let ready = if matches!(phase, CanaryPhase::Initialized | CanaryPhase::Succeeded) { "True" } else { "False" };
    set(status, condition::READY, ready, reason, &message, generation, now);

    let reconciling = !matches!(
        phase,
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed | CanaryPhase::Terminated
    ) && stalled.is_none();
    if reconciling {
        set(status, condition::RECONCILING, "True", reason, &message, generation, now);
    } else {
        remove(status, condition::RECONCILING);
    }

    match stalled {
        Some(stall) => set(status, condition::STALLED, "True", stall.as_str(), &message, generation, now),
        None if phase == CanaryPhase::Failed => {
            let kept = status.conditions.iter().find(|c| c.type_ == condition::STALLED).map(|c| c.reason.clone());
            let reason = kept.unwrap_or_else(|| "Failed".to_string());
            set(status, condition::STALLED, "True", &reason, &message, generation, now);
        }
        None => remove(status, condition::STALLED),
    }
}

/// A status for a Canary the platform cannot run at all (its target is missing, say): the phase
/// and counters stay, the message says what is wrong, `Stalled` is True with `reason` and `Ready`
/// is False, so `kubectl wait` and GitOps tools report it instead of waiting.
pub fn blocked(
    status: Option<&CanaryStatus>,
    generation: i64,
    now: Timestamp,
    reason: &str,
    message: &str,
) -> CanaryStatus {
    let mut status = status.cloned().unwrap_or_default();
    status.message = message.to_string();
    status.observed_generation = generation;
    set(&mut status, condition::READY, "False", reason, message, generation, now);
    remove(&mut status, condition::RECONCILING);
    set(&mut status, condition::STALLED, "True", reason, message, generation, now);
    status
}

fn set(
    status: &mut CanaryStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: Timestamp,
) {
    let fresh = Condition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(generation),
        last_transition_time: Time(now),
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            // The transition time moves only when the condition's value does.
            let since = if existing.status == value { existing.last_transition_time.clone() } else { Time(now) };
            *existing = Condition { last_transition_time: since, ..fresh };
        }
        None => status.conditions.push(fresh),
    }
}

fn remove(status: &mut CanaryStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}
