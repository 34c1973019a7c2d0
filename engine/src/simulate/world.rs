//! A simulated world for the engine: workloads that become ready when scaled, a route that takes
//! the weights it is given, webhooks and metrics with fixed answers, and a clock that moves by the
//! requeue delay. It drives `serin-controller simulate` and the engine's scenario tests, so both
//! exercise exactly the code a platform runs, minus the I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serin_crds::{
    CanaryPhase, CanarySpec, CanaryStatus,
    canary::{CanaryMetric, HookType},
};

use crate::reconcile::{CanaryRef, Observed, Platform, reconcile, run_to_completion};
use crate::{
    Action, HookOutcome, MetricObservation, MetricValue, Observations, OperatorAction, OperatorRequest, Question,
    Readiness, RolloutDecision, Routes, revision::Revision,
};

/// How the new version behaves, as seen by the builtin metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Share of the canary's requests that fail with a 5xx, 0.0..=1.0.
    pub error_rate: f64,
    /// The canary's p99 latency in milliseconds.
    pub latency_ms: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { error_rate: 0.0, latency_ms: 50.0 }
    }
}

/// Everything outside the engine, simulated.
#[derive(Debug, Clone)]
pub struct World {
    pub name: String,
    pub spec: CanarySpec,
    pub generation: i64,
    pub status: Option<CanaryStatus>,
    pub observations: Observations,
    pub now: Timestamp,
    pub canary: Behaviour,
    /// Fixed metric values by name; they win over the builtin simulation.
    pub metric_overrides: BTreeMap<String, MetricValue>,
    /// Webhook outcomes by type; a type not listed answers as a quiet hook does (see `quiet_outcome`).
    pub hook_outcomes: BTreeMap<HookType, HookOutcome>,
    /// Ticks a workload stays Pending after being scaled up or promoted.
    pub rollout_ticks: u32,
    pending_canary: u32,
    pending_primary: u32,
    /// Questions asked during the last tick, in order.
    pub asked: Vec<Question>,
    /// Every action carried out so far, with the tick it came from.
    pub history: Vec<(usize, Action)>,
    pub ticks: usize,
    next_request: u32,
}

/// The start of simulated time; fixed so timelines are reproducible.
pub fn epoch() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("a valid timestamp")
}

impl World {
    /// A world where the target runs `initial_revision` and nothing has been initialized yet.
    pub fn new(name: &str, spec: CanarySpec, initial_revision: &str) -> World {
        World {
            name: name.to_string(),
            spec,
            generation: 1,
            status: None,
            observations: Observations {
                revision: Revision::named(initial_revision),
                primary_revision: None,
                primary: Readiness::Pending { reason: "creating".into(), since: epoch() },
                canary: Readiness::Ready,
                routes: None,
                deleting: false,
                operator: None,
            },
            now: epoch(),
            canary: Behaviour::default(),
            metric_overrides: BTreeMap::new(),
            hook_outcomes: BTreeMap::new(),
            rollout_ticks: 0,
            pending_canary: 0,
            pending_primary: 0,
            asked: Vec::new(),
            history: Vec::new(),
            ticks: 0,
            next_request: 0,
        }
    }

    pub fn phase(&self) -> CanaryPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }

    pub fn status(&self) -> &CanaryStatus {
        self.status.as_ref().expect("the world has ticked at least once")
    }

    /// Live route weights as (primary, canary).
    pub fn weights(&self) -> (u8, u8) {
        self.observations.routes.map_or((100, 0), |r| (r.primary, r.canary))
    }

    pub fn mirrored(&self) -> bool {
        self.observations.routes.is_some_and(|r| r.mirror)
    }

    /// The target now runs `revision` (a `kubectl set image`).
    pub fn deploy(&mut self, revision: &str) {
        self.observations.revision = Revision::named(revision);
        if self.observations.canary != Readiness::ScaledToZero {
            // A running target rolls out the new template.
            self.roll_out_canary();
        }
    }

    /// Queues an operator request with a fresh id.
    pub fn request(&mut self, action: OperatorAction) {
        self.next_request += 1;
        self.observations.operator = Some(OperatorRequest { id: format!("req-{}", self.next_request), action });
    }

    /// Runs one tick through the platforms' reconcile routine, then moves the clock.
    pub fn tick(&mut self) -> RolloutDecision {
        self.asked.clear();
        let (name, spec, generation) = (self.name.clone(), self.spec.clone(), self.generation);
        let canary = CanaryRef { namespace: "default", name: &name, spec: &spec, generation };
        let reconciled = match run_to_completion(reconcile(self, canary)) {
            Ok(reconciled) => reconciled,
            Err(never) => match never {},
        };
        let decision = reconciled.decision;
        self.now += jiff::SignedDuration::try_from(decision.requeue_after).expect("a small duration");
        decision
    }

    /// Ticks until the phase is one of `phases` or `limit` ticks pass; returns whether it got there.
    pub fn run_until(&mut self, phases: &[CanaryPhase], limit: usize) -> bool {
        for _ in 0..limit {
            self.tick();
            if phases.contains(&self.phase()) {
                return true;
            }
        }
        false
    }

    /// Whether any requests reach the canary: live weight, mirroring, or a load test (a rollout or
    /// pre-rollout webhook, as Flagger's load tester is used for blue/green).
    fn canary_gets_traffic(&self) -> bool {
        let load_test =
            self.spec.analysis.webhooks.iter().any(|h| matches!(h.type_, HookType::Rollout | HookType::PreRollout));
        self.weights().1 > 0 || self.mirrored() || load_test
    }

    /// The builtin metrics from the canary's behaviour; other metrics pass unless overridden. With no
    /// requests reaching the canary there is no data, as a real provider would report.
    fn measure_now(&self) -> Vec<MetricObservation> {
        let traffic = self.canary_gets_traffic();
        self.spec
            .analysis
            .metrics
            .iter()
            .map(|metric| {
                let value =
                    self.metric_overrides.get(&metric.name).cloned().unwrap_or_else(|| match metric.name.as_str() {
                        _ if !traffic => MetricValue::NoData("no requests reached the canary".into()),
                        "request-success-rate" => MetricValue::Value(100.0 * (1.0 - self.canary.error_rate)),
                        "request-duration" => MetricValue::Value(self.canary.latency_ms),
                        _ => MetricValue::Value(passing_value(metric)),
                    });
                MetricObservation { name: metric.name.clone(), value, primary: None }
            })
            .collect()
    }

    fn asked_once(&mut self, question: Question) {
        assert!(!self.asked.contains(&question), "the engine asked {question:?} twice in one tick");
        self.asked.push(question);
    }

    fn roll_out_canary(&mut self) {
        (self.observations.canary, self.pending_canary) = rollout(self.rollout_ticks, self.now);
    }

    fn roll_out_primary(&mut self) {
        (self.observations.primary, self.pending_primary) = rollout(self.rollout_ticks, self.now);
    }
}

impl Platform for World {
    type Held = ();
    type Error = std::convert::Infallible;

    fn now(&self) -> Timestamp {
        self.now
    }

    async fn observe(&mut self, _canary: CanaryRef<'_>) -> Result<Observed<()>, Self::Error> {
        Ok(Observed { status: self.status.clone(), observations: self.observations.clone(), held: () })
    }

    async fn run_hooks(&mut self, _canary: CanaryRef<'_>, kind: HookType, _observed: &Observed<()>) -> HookOutcome {
        self.asked_once(Question::Hooks(kind));
        self.hook_outcomes.get(&kind).cloned().unwrap_or_else(|| quiet_outcome(kind))
    }

    async fn measure(&mut self, _canary: CanaryRef<'_>, _observed: &Observed<()>) -> Vec<MetricObservation> {
        self.asked_once(Question::Metrics);
        self.measure_now()
    }

    async fn write_status(
        &mut self,
        _canary: CanaryRef<'_>,
        _held: &mut (),
        decision: &RolloutDecision,
    ) -> Result<(), Self::Error> {
        self.ticks += 1;
        // Workloads that were rolling out finish one tick later.
        if self.pending_canary > 0 {
            self.pending_canary -= 1;
            if self.pending_canary == 0 {
                self.observations.canary = Readiness::Ready;
            }
        }
        if self.pending_primary > 0 {
            self.pending_primary -= 1;
            if self.pending_primary == 0 {
                self.observations.primary = Readiness::Ready;
            }
        }
        self.status = Some(decision.status.clone());
        Ok(())
    }

    async fn carry_out(
        &mut self,
        _canary: CanaryRef<'_>,
        _held: &mut (),
        _decision: &RolloutDecision,
        action: &Action,
    ) -> Result<(), Self::Error> {
        self.history.push((self.ticks, action.clone()));
        match action {
            Action::InitializePrimary => {
                if self.observations.primary_revision.is_none() {
                    self.observations.primary_revision = Some(self.observations.revision.id.clone());
                    self.roll_out_primary();
                }
                self.observations.routes.get_or_insert(Routes::with_canary(0, false));
            }
            Action::SetRoutes(routes) => self.observations.routes = Some(*routes),
            Action::ScaleCanaryUp | Action::RestoreTarget => {
                if self.observations.canary == Readiness::ScaledToZero {
                    self.roll_out_canary();
                }
            }
            Action::ScaleCanaryToZero => self.observations.canary = Readiness::ScaledToZero,
            Action::Promote { revision } => {
                if self.observations.primary_revision.as_ref() != Some(revision) {
                    self.observations.primary_revision = Some(revision.clone());
                    self.roll_out_primary();
                }
            }
            Action::RemoveFinalizer | Action::RunHooks { .. } | Action::Event { .. } | Action::Alert { .. } => {}
        }
        Ok(())
    }

    async fn finish(&mut self, _canary: CanaryRef<'_>, _held: ()) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A workload that starts rolling out now: ready at once, or pending for `ticks` ticks.
fn rollout(ticks: u32, now: Timestamp) -> (Readiness, u32) {
    if ticks == 0 {
        (Readiness::Ready, 0)
    } else {
        (Readiness::Pending { reason: "rolling out".into(), since: now }, ticks)
    }
}

/// What a webhook answers when nobody intervenes: gates are open and checks pass, while a rollback
/// hook answers non-2xx, which means "no rollback wanted".
fn quiet_outcome(kind: HookType) -> HookOutcome {
    match kind {
        HookType::Rollback => HookOutcome::Failed { hook: "rollback".into(), message: "not signalled".into() },
        _ => HookOutcome::Succeeded,
    }
}

/// A value inside a metric's range, for metrics the simulation cannot compute.
fn passing_value(metric: &CanaryMetric) -> f64 {
    let (min, max) = match &metric.threshold_range {
        Some(range) => (range.min, range.max),
        None => (None, metric.threshold),
    };
    match (min, max) {
        (Some(min), Some(max)) => (min + max) / 2.0,
        (Some(min), None) => min,
        (None, Some(max)) => max / 2.0,
        (None, None) => 0.0,
    }
}

/// Simulated time since the epoch, for timelines.
pub fn elapsed(now: Timestamp) -> Duration {
    now.duration_since(epoch()).unsigned_abs()
}
