//! What a platform observed before a tick, and its answers to the engine's questions.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serin_crds::canary::HookType;

use super::revision::Revision;

/// The world as the platform saw it at the start of the tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// The target's current revision (pod template plus tracked configs).
    pub revision: Revision,
    /// The revision the primary runs, when the platform knows it (it stamps it on Promote).
    pub primary_revision: Option<String>,
    /// Readiness of the primary workload.
    pub primary: Readiness,
    /// Readiness of the canary, i.e. the target workload.
    pub canary: Readiness,
    /// Live weights of the route; `None` when the route does not exist yet.
    pub routes: Option<Routes>,
    /// The Canary has a deletion timestamp.
    pub deleting: bool,
    /// The newest operator request (promote, abort, pause, resume, retry), if any.
    pub operator: Option<OperatorRequest>,
}

/// How ready a workload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready yet, since `since`; becomes a failure once the progress deadline has passed.
    Pending {
        reason: String,
        since: Timestamp,
    },
    /// Will not become ready (the platform knows: a deadline condition, an image that cannot run).
    Failed {
        reason: String,
    },
    /// Has no replicas.
    ScaledToZero,
}

/// Route weights as percentages. `primary + canary == 100` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    pub primary: u8,
    pub canary: u8,
    /// Requests to the primary are also copied to the canary.
    pub mirror: bool,
}

impl Routes {
    /// Routes that send `canary` percent to the canary and the rest to the primary.
    pub fn with_canary(canary: u8, mirror: bool) -> Routes {
        let canary = canary.min(100);
        Routes { primary: 100 - canary, canary, mirror }
    }
}

/// A runtime request from an operator (plugin, gate API or annotation); acted upon once per `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    pub id: String,
    pub action: OperatorAction,
}

impl OperatorRequest {
    /// The engine's view of a request from the annotation or the API; gate requests never reach
    /// the engine (the platform opens or closes the gate).
    pub fn from_request(request: &serin_crds::operator_request::OperatorRequest) -> Option<OperatorRequest> {
        use serin_crds::operator_request::RequestAction;
        let action = match request.action {
            RequestAction::Promote => OperatorAction::Promote,
            RequestAction::Abort => OperatorAction::Abort,
            RequestAction::Pause => OperatorAction::Pause,
            RequestAction::Resume => OperatorAction::Resume,
            RequestAction::Retry => OperatorAction::Retry,
            RequestAction::OpenGate | RequestAction::CloseGate => return None,
        };
        Some(OperatorRequest { id: request.id.clone(), action })
    }
}

/// What an operator may ask for without editing the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Skip the remaining analysis and gates and promote now.
    Promote,
    /// Roll back now.
    Abort,
    /// Hold the current step until resumed.
    Pause,
    Resume,
    /// Run a failed revision again.
    Retry,
}

/// Answers to the questions asked during this tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    pub hooks: BTreeMap<HookType, HookOutcome>,
    pub metrics: Option<Vec<MetricObservation>>,
}

/// The result of running every webhook of one type, in order, stopping at the first failure.
///
/// For gates (`confirm-*`) success means open; for `rollback` success means a rollback is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Succeeded,
    Failed { hook: String, message: String },
}

/// One metric as measured for this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricObservation {
    pub name: String,
    pub value: MetricValue,
    /// The primary's value over the same window, measured for metrics with `compareToPrimary`.
    pub primary: Option<MetricValue>,
}

/// A measured value, no data (empty result or NaN, with why), not enough evidence yet, or an error
/// reaching the provider.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Value(f64),
    NoData(String),
    /// Fewer requests in the window than the builtin metrics' floor. Right after a traffic shift this
    /// is not yet evidence of anything: the step holds, and only traffic that stays this thin past
    /// `thinTrafficTimeout` counts as no data.
    TooFewRequests(String),
    /// The source has not yet covered the metric's window since it started (the embedded scraper
    /// after a controller restart): never counted, whatever the policy.
    Warming(String),
    Error(String),
}
