//! The `Canary` status: the integration surface read by `kubectl`, the plugin, Argo CD, Flux and Helm.
//!
//! Flagger's fields plus an integer `observedGeneration`, per-metric results, the last failure reason,
//! the operator controls (pause, handled requests) and kstatus conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a canary is in its life, with Flagger's phase names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CanaryPhase {
    /// Creating the primary and waiting for it to be ready.
    #[default]
    Initializing,
    /// The primary serves all traffic; the target is scaled to zero.
    Initialized,
    /// A new revision waits for its confirm-rollout gate.
    Waiting,
    /// The analysis runs and the canary weight steps up.
    Progressing,
    /// The analysis passed; the confirm-promotion gate is closed.
    WaitingPromotion,
    /// The canary's spec was copied to the primary; waiting for it and shifting traffic back.
    Promoting,
    /// All traffic is on the primary; the canary drains for one interval.
    Finalising,
    /// The revision was promoted.
    Succeeded,
    /// The revision was rolled back (or its promotion failed).
    Failed,
    /// The Canary is being deleted and the target is being restored.
    Terminating,
    /// The target was restored; the Canary can go.
    Terminated,
}

impl CanaryPhase {
    /// True while a run is under way (a revision between detection and its end).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Promoting | CanaryPhase::Finalising
        )
    }

    /// True in phases where no run is under way and a new revision may start one.
    pub fn is_idle(self) -> bool {
        matches!(self, CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed)
    }

    /// The phase name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPhase::Initializing => "Initializing",
            CanaryPhase::Initialized => "Initialized",
            CanaryPhase::Waiting => "Waiting",
            CanaryPhase::Progressing => "Progressing",
            CanaryPhase::WaitingPromotion => "WaitingPromotion",
            CanaryPhase::Promoting => "Promoting",
            CanaryPhase::Finalising => "Finalising",
            CanaryPhase::Succeeded => "Succeeded",
            CanaryPhase::Failed => "Failed",
            CanaryPhase::Terminating => "Terminating",
            CanaryPhase::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a Canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default)]
    pub phase: CanaryPhase,
    /// What is happening now, for people.
    #[serde(default)]
    pub message: String,
    /// The canary's share of traffic, in percent, as last written to the route. Always present; unlike
    /// Flagger it is not zeroed while WaitingPromotion.
    #[serde(default)]
    pub canary_weight: i32,
    /// Completed A/B or blue/green iterations of this run.
    #[serde(default)]
    pub iterations: i32,
    /// Failed checks counted in this run.
    #[serde(default)]
    pub failed_checks: i32,
    /// Revision (hash of the target's pod template and tracked configs) of the current or last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Revision the primary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// Checksums of the ConfigMaps and Secrets the target uses, keyed `configmap/<name>`, `secret/<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the last analysis step ran; the next one is due one interval later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_time: Option<Time>,
    /// When the route last changed (weight or mirroring): the metrics gather evidence from here, and
    /// thin traffic counts as no data only `thinTrafficTimeout` after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_traffic_shift_time: Option<Time>,
    /// The latest result of every metric, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    /// Why the last run failed, or the last check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    /// Set by the `pause` operator action, cleared by `resume`: the run holds its step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The id of the last operator request acted upon, so a request is acted upon once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_request: Option<String>,
    /// The built-in gates opened by an `open-gate` request (`rollout`, `traffic-increase`,
    /// `promotion`, `rollback`) and not closed since. In a cluster this is where gates live; the
    /// controller's `GET /gates/{namespace}/{name}/{gate}` answers from it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub open_gates: std::collections::BTreeSet<String>,
    /// `name=value` cookie that pins clients to the canary during a run with session affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// `name=value` cookie that pins clients to the primary during a run with session affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// The cookie of the previous run, expired on clients after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// `Promoted` (Flagger), and kstatus `Ready`, `Reconciling`, `Stalled`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The latest result of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    /// The value measured, absent when there was no data or the query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The primary's value over the same window, for metrics with `compareToPrimary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_value: Option<f64>,
    pub outcome: MetricOutcome,
    /// Why the metric failed or had no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a metric fared on its last check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MetricOutcome {
    #[default]
    Passed,
    Failed,
    NoData,
    Error,
    /// Not enough evidence yet: too few requests since the last traffic shift, or a metrics source
    /// that has not yet covered its window since it started. The step holds without counting.
    Pending,
}

/// Condition types written to `status.conditions`.
pub mod condition {
    /// Flagger's condition: True once a revision is promoted, False after a failed run.
    pub const PROMOTED: &str = "Promoted";
    /// kstatus: the canary is settled on a promoted revision.
    pub const READY: &str = "Ready";
    /// kstatus: a run (or initialization) is under way. Present only while True.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the run failed and needs a person. Present only while True.
    pub const STALLED: &str = "Stalled";
}
