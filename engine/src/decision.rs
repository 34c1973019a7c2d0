//! What the engine answers: a question it needs answered, or the tick's decision.

use std::time::Duration;

use serin_crds::{
    CanaryPhase, CanaryStatus,
    canary::{AlertSeverity, HookType},
};

use super::observations::Routes;

/// The outcome of one call to [`super::decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run this and call again with the answer in [`super::Answers`].
    Need(Question),
    Decided(Box<RolloutDecision>),
}

/// Something with side effects that the engine only asks for when it needs the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Run every webhook of this type in order and report the first failure.
    Hooks(HookType),
    /// Measure every metric of the analysis.
    Metrics,
}

/// The tick's result: the status to write (first) and the actions to carry out (after).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutDecision {
    pub status: CanaryStatus,
    pub actions: Vec<Action>,
    /// When the next tick is due.
    pub requeue_after: Duration,
}

/// Something the platform must do. Every action is idempotent.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create or refresh the primary workload from the target, the generated services, and the route
    /// (all traffic to the primary).
    InitializePrimary,
    /// Set the route weights.
    SetRoutes(Routes),
    /// Give the canary (the target) replicas.
    ScaleCanaryUp,
    /// Take the canary's replicas away.
    ScaleCanaryToZero,
    /// Copy the target's spec onto the primary and stamp it with `revision`.
    Promote { revision: String },
    /// Deletion with `revertOnDeletion`: give the target back its replicas and route to it.
    RestoreTarget,
    /// Let the Canary object go.
    RemoveFinalizer,
    /// Run webhooks whose result changes nothing (post-rollout).
    RunHooks { kind: HookType, phase: CanaryPhase },
    /// Record an event on the Canary. The platform also posts it to the Canary's `event` webhooks
    /// (fire and forget), which is all that webhook type does; the engine never waits on them.
    Event { kind: EventKind, reason: String, message: String },
    /// Send an alert through the Canary's `alerts` providers whose severity admits it.
    Alert { severity: AlertSeverity, message: String },
}

/// Kubernetes event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    /// As Kubernetes writes an event's type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}
