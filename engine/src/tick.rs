//! One tick: which checks are due in the current phase and what follows from them.
//!
//! The order of a tick follows Flagger's `advanceCanary`, with the fixes Serin makes said where they
//! are made. Helpers that change the phase live in `transitions.rs`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serin_crds::{
    CanaryPhase, CanarySpec, CanaryStatus,
    canary::{CanaryAnalysis, HookType},
};

use super::conditions::{self, StallReason};
use super::decision::{Action, EventKind, Question, RolloutDecision, Step};
use super::judge::{Evidence, Verdict, judge};
use super::observations::{Answers, HookOutcome, Observations, Readiness, Routes};
use super::strategy::{self, Strategy};

/// Everything one tick decides from.
#[derive(Debug, Clone)]
pub struct TickInput<'a> {
    /// The Canary's name, used in messages.
    pub name: &'a str,
    pub spec: &'a CanarySpec,
    /// `metadata.generation`.
    pub generation: i64,
    /// The current status; `None` for a Canary never seen before.
    pub status: Option<&'a CanaryStatus>,
    pub observed: &'a Observations,
    /// Answers to the questions this tick asked so far.
    pub answers: &'a Answers,
    pub now: Timestamp,
}

/// Decides one tick, or asks for something it needs first.
pub fn decide(input: &TickInput<'_>) -> Step {
    let mut tick = Tick::new(input);
    match tick.run() {
        Err(question) => Step::Need(question),
        Ok(_) => Step::Decided(Box::new(tick.finish())),
    }
}

/// Whether the tick goes on to the next check or is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    End,
}

/// Short-circuits a tick: `Ok(End)` or a question ends it, `Ok(Continue)` goes on.
macro_rules! step {
    ($e:expr) => {
        if let Flow::End = $e? {
            return Ok(Flow::End);
        }
    };
}

pub(super) type Outcome = Result<Flow, Question>;

/// The status being built and the actions decided so far.
pub(super) struct Tick<'a> {
    pub input: &'a TickInput<'a>,
    pub analysis: &'a CanaryAnalysis,
    pub obs: &'a Observations,
    pub status: CanaryStatus,
    pub actions: Vec<Action>,
    pub requeue_after: Duration,
    pub stalled: Option<StallReason>,
}

impl<'a> Tick<'a> {
    fn new(input: &'a TickInput<'a>) -> Tick<'a> {
        let analysis = &input.spec.analysis;
        Tick {
            input,
            analysis,
            obs: input.observed,
            status: input.status.cloned().unwrap_or_default(),
            actions: Vec::new(),
            requeue_after: strategy::interval(analysis),
            stalled: None,
        }
    }

    fn finish(mut self) -> RolloutDecision {
        self.status.observed_generation = self.input.generation;
        conditions::update(&mut self.status, self.input.generation, self.input.now, self.stalled);
        RolloutDecision { status: self.status, actions: self.actions, requeue_after: self.requeue_after }
    }

    fn run(&mut self) -> Outcome {
        if self.obs.deleting {
            return Ok(self.terminate());
        }
        if matches!(self.status.phase, CanaryPhase::Terminating | CanaryPhase::Terminated) {
            // Deletion was cancelled (the finalizer was removed by hand, say): start over.
            self.enter(CanaryPhase::Initializing, "deletion no longer pending; initializing again");
        }
        if self.input.spec.suspend == Some(true) {
            // Operator requests stay queued (unhandled) until the Canary is resumed.
            self.say("suspended: no detection, analysis or weight change until spec.suspend is false");
            return Ok(Flow::End);
        }
        step!(self.handle_operator_request());
        match self.status.phase {
            CanaryPhase::Initializing => Ok(self.initialize()),
            CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed => self.idle(),
            CanaryPhase::Waiting => self.waiting(),
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion => self.running(),
            CanaryPhase::Promoting | CanaryPhase::Finalising => Ok(self.promoting()),
            CanaryPhase::Terminating | CanaryPhase::Terminated => Ok(Flow::End),
        }
    }

    // ---- asking ----

    /// The outcome of the webhooks of `kind`; succeeds at once when there are none.
    pub fn hooks(&self, kind: HookType) -> Result<HookOutcome, Question> {
        if !self.analysis.webhooks.iter().any(|h| h.type_ == kind) {
            return Ok(HookOutcome::Succeeded);
        }
        self.input.answers.hooks.get(&kind).cloned().ok_or(Question::Hooks(kind))
    }

    fn has_hooks(&self, kind: HookType) -> bool {
        self.analysis.webhooks.iter().any(|h| h.type_ == kind)
    }

    /// Whether gate hooks of `kind` asked not to alert when closed.
    fn muted(&self, kind: HookType) -> bool {
        self.analysis.webhooks.iter().filter(|h| h.type_ == kind).all(|h| h.mute_alert == Some(true))
    }

    // ---- status helpers ----

    /// Moves to `phase` with a message; the transition time moves only when the phase changes.
    pub fn enter(&mut self, phase: CanaryPhase, message: impl Into<String>) {
        if self.status.phase != phase || self.status.last_transition_time.is_none() {
            self.status.last_transition_time = Some(Time(self.input.now));
        }
        self.status.phase = phase;
        self.status.message = message.into();
    }

    pub fn say(&mut self, message: impl Into<String>) {
        self.status.message = message.into();
    }

    pub fn event(&mut self, kind: EventKind, reason: &str, message: impl Into<String>) {
        self.actions.push(Action::Event { kind, reason: reason.to_string(), message: message.into() });
    }

    pub fn alert(&mut self, severity: serin_crds::canary::AlertSeverity, message: impl Into<String>) {
        self.actions.push(Action::Alert { severity, message: message.into() });
    }

    /// Sets the routes and records the canary weight.
    pub fn route(&mut self, canary: i32, mirror: bool) {
        let canary = canary.clamp(0, 100);
        self.status.canary_weight = canary;
        self.status.last_traffic_shift_time = Some(Time(self.input.now));
        self.actions.push(Action::SetRoutes(Routes::with_canary(canary as u8, mirror)));
    }

    fn target(&self) -> &str {
        &self.input.spec.target_ref.name
    }

    pub(super) fn revision_id(&self) -> &str {
        &self.obs.revision.id
    }

    /// A new revision that has not run yet: neither the one running or last run, nor the promoted one.
    fn has_new_revision(&self) -> bool {
        let id = Some(self.revision_id());
        self.status.last_applied_spec.as_deref() != id && self.status.last_promoted_spec.as_deref() != id
    }

    /// Whether a workload is past the progress deadline, or failed outright: the reason if so.
    fn stuck(&self, readiness: &Readiness, what: &str) -> Option<String> {
        let deadline = self.input.spec.progress_deadline_seconds();
        match readiness {
            Readiness::Failed { reason } => Some(format!("{what} failed: {reason}")),
            Readiness::Pending { reason, since } => {
                let waited = self.input.now.duration_since(*since).as_secs();
                (waited > deadline)
                    .then(|| format!("{what} not ready after {waited}s (progressDeadlineSeconds {deadline}): {reason}"))
            }
            Readiness::ScaledToZero if what == self.input.spec.primary_workload_name() => {
                // Flagger's rule: a primary without replicas cannot serve a rollback or a promotion.
                Some(format!("{what} is scaled to zero"))
            }
            Readiness::ScaledToZero => {
                // The canary (or target) was scaled down under us: allow the deadline from the phase start.
                let since = self.status.last_transition_time.as_ref().map_or(self.input.now, |t| t.0);
                let waited = self.input.now.duration_since(since).as_secs();
                (waited > deadline).then(|| format!("{what} stayed scaled to zero for {waited}s"))
            }
            Readiness::Ready => None,
        }
    }

    /// Whether the next analysis step is due; records it as taken when it is.
    fn step_is_due(&mut self) -> bool {
        let interval = strategy::interval(self.analysis);
        if let Some(Time(last)) = &self.status.last_step_time {
            let elapsed = self.input.now.duration_since(*last);
            if elapsed.is_positive() || elapsed.is_zero() {
                let elapsed = elapsed.unsigned_abs();
                if elapsed < interval {
                    self.requeue_after = interval - elapsed;
                    return false;
                }
            }
        }
        self.status.last_step_time = Some(Time(self.input.now));
        true
    }

    // ---- phases ----

    /// Deletion: with `revertOnDeletion`, restore the target first; without, let go at once.
    fn terminate(&mut self) -> Flow {
        if self.input.spec.revert_on_deletion != Some(true) {
            self.enter(CanaryPhase::Terminated, "deleted; the generated objects go with the Canary");
            self.actions.push(Action::RemoveFinalizer);
            return Flow::End;
        }
        if self.status.phase == CanaryPhase::Terminated {
            self.actions.push(Action::RemoveFinalizer);
            return Flow::End;
        }
        if self.status.phase != CanaryPhase::Terminating {
            self.enter(CanaryPhase::Terminating, format!("restoring {} before deletion", self.target()));
            self.event(EventKind::Normal, "Terminating", format!("Restoring {} before the Canary goes", self.target()));
        }
        self.actions.push(Action::RestoreTarget);
        let target = self.target().to_string();
        match &self.obs.canary {
            Readiness::Ready => {
                self.enter(CanaryPhase::Terminated, format!("{target} restored"));
                self.event(EventKind::Normal, "Terminated", format!("Restored {target}; Canary removed"));
                self.actions.push(Action::RemoveFinalizer);
            }
            other => {
                if let Some(reason) = self.stuck(other, &target) {
                    // Never hold a deletion forever (Flagger can): give up waiting, say so, let go.
                    self.enter(CanaryPhase::Terminated, format!("released without a ready target: {reason}"));
                    self.event(EventKind::Warning, "Terminated", format!("Released the Canary although {reason}"));
                    self.actions.push(Action::RemoveFinalizer);
                } else {
                    self.say(format!("restoring {target}: waiting for it to be ready"));
                }
            }
        }
        Flow::End
    }

    /// Makes the target's current revision the one this run is about (Waiting has not claimed it).
    pub(super) fn claim_current_revision(&mut self) {
        self.status.last_applied_spec = Some(self.obs.revision.id.clone());
        self.status.tracked_configs = self.obs.revision.tracked_configs.clone();
    }

    /// Initializing: create the primary and wait for it, then hand it all traffic.
    fn initialize(&mut self) -> Flow {
        self.actions.push(Action::InitializePrimary);
        match &self.obs.primary {
            Readiness::Ready => {
                self.route(0, false);
                self.actions.push(Action::ScaleCanaryToZero);
                // The primary runs what it was created from, which may be older than the target by
                // now: record that, so a revision that arrived meanwhile is still a new revision.
                let running = self.obs.primary_revision.clone().unwrap_or_else(|| self.obs.revision.id.clone());
                self.status.last_applied_spec = Some(running.clone());
                self.status.last_promoted_spec = Some(running);
                self.status.tracked_configs = self.obs.revision.tracked_configs.clone();
                self.enter(
                    CanaryPhase::Initialized,
                    format!("{} serves all traffic", self.input.spec.primary_workload_name()),
                );
                self.event(EventKind::Normal, "Synced", format!("Initialization done! {}", self.input.name));
                self.alert(
                    serin_crds::canary::AlertSeverity::Info,
                    "New deployment detected, initialization completed.".to_string(),
                );
            }
            readiness => {
                if let Some(reason) = self.stuck(readiness, &self.input.spec.primary_workload_name()) {
                    // Stay in Initializing (there is nothing to roll back to) but say it needs a person.
                    self.stalled = Some(StallReason::PrimaryNotReady);
                    self.say(reason);
                } else {
                    self.say(format!("waiting for {} to be ready", self.input.spec.primary_workload_name()));
                }
            }
        }
        Flow::End
    }

    /// Initialized, Succeeded, Failed: keep the routes as the status says; start a run on a new revision.
    fn idle(&mut self) -> Outcome {
        self.reconcile_routes();
        // The status says the canary is down (except after a failed promotion, where it serves all
        // traffic); a scale-down lost to a restart is issued again.
        if self.status.canary_weight == 0 && self.obs.canary != Readiness::ScaledToZero {
            self.actions.push(Action::ScaleCanaryToZero);
        }
        if self.status.phase == CanaryPhase::Failed
            && self.status.last_promoted_spec.as_deref() == Some(self.revision_id())
            && self.status.last_applied_spec.as_deref() != Some(self.revision_id())
        {
            // The target was reverted to the promoted revision: forget the failed one, so that
            // re-applying it later starts a new run (Flagger needs a template edit for that).
            self.claim_current_revision();
            self.say("the target is back on the promoted revision");
        }
        if !self.has_new_revision() {
            return Ok(Flow::End);
        }
        self.confirm_rollout()
    }

    /// Waiting: the confirm-rollout gate was closed. Re-ask it each interval; honour rollback hooks.
    fn waiting(&mut self) -> Outcome {
        self.reconcile_routes();
        if !self.has_new_revision() {
            // The target went back to a revision that already ran: back to how that run ended.
            if self.status.last_promoted_spec.as_deref() == Some(self.revision_id()) {
                self.enter(
                    CanaryPhase::Succeeded,
                    "the target went back to the promoted revision; nothing to roll out",
                );
            } else {
                self.enter(
                    CanaryPhase::Failed,
                    "the target went back to the revision that failed; nothing to roll out",
                );
            }
            return Ok(Flow::End);
        }
        if !self.step_is_due() {
            return Ok(Flow::End);
        }
        // Flagger never reaches its rollback check while Waiting (its issue #1432); Serin does, even
        // while paused.
        if self.has_hooks(HookType::Rollback) && self.hooks(HookType::Rollback)? == HookOutcome::Succeeded {
            self.claim_current_revision();
            self.rollback(StallReason::RollbackRequested, "rollback webhook signalled while waiting".to_string());
            return Ok(Flow::End);
        }
        if self.status.paused {
            self.say("paused by operator while waiting for approval");
            return Ok(Flow::End);
        }
        self.confirm_rollout()
    }

    fn confirm_rollout(&mut self) -> Outcome {
        match self.hooks(HookType::ConfirmRollout)? {
            HookOutcome::Succeeded => {
                self.start_run();
                Ok(Flow::End)
            }
            HookOutcome::Failed { hook, message } => {
                if self.status.phase != CanaryPhase::Waiting {
                    self.event(
                        EventKind::Warning,
                        "Waiting",
                        format!("Halt {} advancement waiting for approval {hook}", self.input.name),
                    );
                    if !self.muted(HookType::ConfirmRollout) {
                        self.alert(serin_crds::canary::AlertSeverity::Warn, format!("Waiting for approval: {hook}"));
                    }
                    self.status.last_step_time = Some(Time(self.input.now));
                }
                self.enter(
                    CanaryPhase::Waiting,
                    format!("revision {} waits for confirm-rollout gate {hook}: {message}", self.revision_id()),
                );
                Ok(Flow::End)
            }
        }
    }

    /// Progressing and WaitingPromotion.
    fn running(&mut self) -> Outcome {
        step!(self.check_revision_mid_run());
        step!(self.check_workloads());
        if self.input.spec.skip_analysis == Some(true) {
            self.route(0, false);
            self.promote("analysis skipped (spec.skipAnalysis)".to_string());
            return Ok(Flow::End);
        }
        if self.reconcile_routes() {
            // The live route was not at the recorded weight (a lost update, or another writer): the
            // metrics so far describe the old weight, so this weight gets a full interval first.
            self.status.last_step_time = Some(Time(self.input.now));
            self.say(format!("restored the route to canary weight {}", self.status.canary_weight));
            return Ok(Flow::End);
        }
        if !self.step_is_due() {
            return Ok(Flow::End);
        }
        if self.has_hooks(HookType::Rollback) && self.hooks(HookType::Rollback)? == HookOutcome::Succeeded {
            self.rollback(StallReason::RollbackRequested, "rollback webhook signalled".to_string());
            return Ok(Flow::End);
        }
        if self.status.paused {
            self.say(format!("paused by operator at weight {}", self.status.canary_weight));
            return Ok(Flow::End);
        }
        if self.status.failed_checks >= strategy::threshold(self.analysis) {
            let n = self.status.failed_checks;
            self.rollback(StallReason::AnalysisFailed, format!("failed checks threshold reached {n}"));
            return Ok(Flow::End);
        }
        if self.is_first_step() {
            step!(self.pre_rollout());
        } else {
            step!(self.analyse());
        }
        self.advance()
    }

    fn is_first_step(&self) -> bool {
        let mirrored = self.obs.routes.is_some_and(|r| r.mirror);
        self.status.canary_weight == 0
            && self.status.iterations == 0
            && !(self.analysis.mirror == Some(true) && mirrored)
    }

    /// A revision change during a run restarts it from weight 0 (confirm-rollout is not asked again,
    /// as in Flagger). A change back to the promoted revision cancels the run instead.
    fn check_revision_mid_run(&mut self) -> Outcome {
        if self.status.last_applied_spec.as_deref() == Some(self.revision_id()) {
            return Ok(Flow::Continue);
        }
        if self.status.last_promoted_spec.as_deref() == Some(self.revision_id()) {
            self.claim_current_revision();
            self.route(0, false);
            self.actions.push(Action::ScaleCanaryToZero);
            self.status.failed_checks = 0;
            self.status.iterations = 0;
            self.end_session_affinity();
            self.enter(CanaryPhase::Succeeded, "run cancelled: the target went back to the promoted revision");
            self.event(EventKind::Normal, "Cancelled", "Target reverted to the promoted revision; run cancelled");
            return Ok(Flow::End);
        }
        self.event(
            EventKind::Normal,
            "Synced",
            format!("New revision detected! Restarting analysis for {}", self.input.name),
        );
        self.route(0, false);
        self.begin_progressing();
        self.say(format!("revision {} replaced the one under analysis; restarting from weight 0", self.revision_id()));
        Ok(Flow::End)
    }

    /// Canary and primary readiness: wait while pending, roll back once past the deadline.
    fn check_workloads(&mut self) -> Outcome {
        let target = self.target().to_string();
        if let Some(reason) = self.stuck(&self.obs.canary, &target) {
            self.rollback(StallReason::ProgressDeadlineExceeded, reason);
            return Ok(Flow::End);
        }
        if self.obs.canary == Readiness::ScaledToZero {
            // The scale-up was decided but not carried out (a restart in between): do it again.
            self.actions.push(Action::ScaleCanaryUp);
            self.say(format!("scaling up {target}"));
            return Ok(Flow::End);
        }
        if let Readiness::Pending { reason, .. } = &self.obs.canary {
            let message = format!("waiting for {target} to be ready: {reason}");
            self.say(message);
            return Ok(Flow::End);
        }
        if self.input.spec.skip_analysis != Some(true) {
            let primary = self.input.spec.primary_workload_name();
            if let Some(reason) = self.stuck(&self.obs.primary, &primary) {
                self.rollback(StallReason::ProgressDeadlineExceeded, reason);
                return Ok(Flow::End);
            }
            if !matches!(self.obs.primary, Readiness::Ready) {
                self.say(format!("waiting for {primary} to be ready"));
                return Ok(Flow::End);
            }
        }
        Ok(Flow::Continue)
    }

    /// Puts the live route back at the weight the status records, if it differs; says whether it did.
    fn reconcile_routes(&mut self) -> bool {
        let weight = self.status.canary_weight.clamp(0, 100);
        let keep_mirror = self.status.phase.is_running() && self.obs.routes.is_some_and(|r| r.mirror);
        let wanted = Routes::with_canary(weight as u8, keep_mirror);
        if self.obs.routes == Some(wanted) {
            return false;
        }
        self.actions.push(Action::SetRoutes(wanted));
        self.status.last_traffic_shift_time = Some(Time(self.input.now));
        true
    }

    /// The first analysis step runs the pre-rollout hooks instead of the metrics, as in Flagger.
    fn pre_rollout(&mut self) -> Outcome {
        self.event(EventKind::Normal, "Synced", format!("Starting canary analysis for {}", self.input.name));
        match self.hooks(HookType::PreRollout)? {
            HookOutcome::Succeeded => Ok(Flow::Continue),
            HookOutcome::Failed { hook, message } => {
                Ok(self.count_failure(format!("pre-rollout hook {hook} failed: {message}")))
            }
        }
    }

    /// Rollout hooks, then every metric against its range.
    fn analyse(&mut self) -> Outcome {
        if let HookOutcome::Failed { hook, message } = self.hooks(HookType::Rollout)? {
            return Ok(self.count_failure(format!("rollout hook {hook} failed: {message}")));
        }
        if self.analysis.metrics.is_empty() {
            return Ok(Flow::Continue);
        }
        let observed = self.input.answers.metrics.as_ref().ok_or(Question::Metrics)?;
        let shifted = self.status.last_traffic_shift_time.as_ref().or(self.status.last_transition_time.as_ref());
        let evidence = Evidence {
            waited: shifted.map_or(Duration::ZERO, |t| self.input.now.duration_since(t.0).unsigned_abs()),
            limit: strategy::thin_traffic_timeout(self.analysis),
        };
        let mut results = Vec::new();
        let mut failure: Option<String> = None;
        let mut holds: Vec<String> = Vec::new();
        for metric in &self.analysis.metrics {
            let observation = observed.iter().find(|m| m.name == metric.name);
            let (result, verdict) = judge(metric, observation, evidence);
            match verdict {
                Verdict::Pass => {}
                Verdict::Hold(why) => holds.push(why),
                Verdict::Fail(why) => {
                    failure.get_or_insert(why);
                }
            }
            results.push(result);
        }
        self.status.metrics = results;
        if let Some(why) = failure {
            return Ok(self.count_failure(why));
        }
        if !holds.is_empty() {
            self.say(format!(
                "holding at weight {} without counting a failure: {}",
                self.status.canary_weight,
                holds.join("; ")
            ));
            return Ok(Flow::End);
        }
        Ok(Flow::Continue)
    }

    /// Counts a failed check; at the threshold the run rolls back in the same tick (Flagger waits for
    /// the next tick, which only delays the rollback by an interval).
    fn count_failure(&mut self, why: String) -> Flow {
        self.status.failed_checks += 1;
        self.status.last_failure_reason = Some(why.clone());
        let threshold = strategy::threshold(self.analysis);
        let n = self.status.failed_checks;
        self.event(EventKind::Warning, "Synced", format!("Halt advancement: {why}"));
        if n >= threshold {
            self.rollback(StallReason::AnalysisFailed, format!("failed checks threshold reached {n}: {why}"));
        } else {
            self.say(format!("check failed ({n}/{threshold}): {why}"));
        }
        Flow::End
    }

    /// Moves the run one step on, by strategy.
    fn advance(&mut self) -> Outcome {
        let name = self.input.name.to_string();
        match Strategy::of(self.analysis) {
            Strategy::Canary(steps) => {
                let weight = self.status.canary_weight;
                if weight < steps.max_weight {
                    let mirrored = self.obs.routes.is_some_and(|r| r.mirror);
                    if steps.mirror && weight == 0 && !mirrored {
                        self.route(0, true);
                        self.say("mirroring traffic to the canary before the first shift");
                        self.event(EventKind::Normal, "Synced", format!("Start traffic mirroring for {name}"));
                        return Ok(Flow::End);
                    }
                    // Flagger skips this gate right after the mirror step; Serin asks it before every
                    // shift of live traffic (the mirror step itself sends no canary responses to users).
                    if let HookOutcome::Failed { hook, message } = self.hooks(HookType::ConfirmTrafficIncrease)? {
                        self.say(format!("weight {weight} held by confirm-traffic-increase gate {hook}: {message}"));
                        if !self.muted(HookType::ConfirmTrafficIncrease) {
                            self.alert(
                                serin_crds::canary::AlertSeverity::Warn,
                                format!("Traffic increase waits for {hook}"),
                            );
                        }
                        return Ok(Flow::End);
                    }
                    let next = steps.advance(weight);
                    self.route(next, false);
                    self.say(format!("canary weight {next}% (max {}%)", steps.max_weight));
                    self.event(EventKind::Normal, "Synced", format!("Advance {name} canary weight {next}"));
                    return Ok(Flow::End);
                }
                self.confirm_promotion()
            }
            Strategy::AbTesting { iterations } => {
                if self.status.iterations < iterations {
                    self.route(100, false);
                    self.status.iterations += 1;
                    let i = self.status.iterations;
                    self.say(format!(
                        "iteration {i}/{iterations}: requests that match the A/B conditions go to the canary"
                    ));
                    self.event(
                        EventKind::Normal,
                        "Synced",
                        format!("Advance {name} canary iteration {i}/{iterations}"),
                    );
                    return Ok(Flow::End);
                }
                self.confirm_promotion()
            }
            Strategy::BlueGreen { iterations, mirror } => {
                let done = self.status.iterations;
                if done < iterations {
                    let mirrored = self.obs.routes.is_some_and(|r| r.mirror);
                    if mirror && !mirrored {
                        self.route(0, true);
                        self.event(EventKind::Normal, "Synced", format!("Start traffic mirroring for {name}"));
                    }
                    self.status.iterations += 1;
                    let i = self.status.iterations;
                    self.say(format!("iteration {i}/{iterations}{}", if mirror { ", mirroring" } else { "" }));
                    self.event(
                        EventKind::Normal,
                        "Synced",
                        format!("Advance {name} canary iteration {i}/{iterations}"),
                    );
                    return Ok(Flow::End);
                }
                if done == iterations {
                    // Confirm, then route everything to the canary for one more analysed tick.
                    step!(self.promotion_gate());
                    self.route(100, false);
                    self.status.iterations += 1;
                    self.say("all traffic on the canary for a last analysis before promotion");
                    self.event(EventKind::Normal, "Synced", "Routing all traffic to canary");
                    return Ok(Flow::End);
                }
                // As in Flagger: the gate is asked again after the tick at full canary.
                self.confirm_promotion()
            }
        }
    }

    fn confirm_promotion(&mut self) -> Outcome {
        step!(self.promotion_gate());
        self.promote("analysis passed".to_string());
        Ok(Flow::End)
    }

    /// The confirm-promotion gate: closed means WaitingPromotion, where the analysis keeps running.
    fn promotion_gate(&mut self) -> Outcome {
        match self.hooks(HookType::ConfirmPromotion)? {
            HookOutcome::Succeeded => Ok(Flow::Continue),
            HookOutcome::Failed { hook, message } => {
                if self.status.phase != CanaryPhase::WaitingPromotion && !self.muted(HookType::ConfirmPromotion) {
                    self.alert(
                        serin_crds::canary::AlertSeverity::Warn,
                        format!("Promotion waits for approval: {hook}"),
                    );
                }
                self.enter(
                    CanaryPhase::WaitingPromotion,
                    format!("analysis passed; promotion waits for {hook}: {message}"),
                );
                Ok(Flow::End)
            }
        }
    }

    /// Promoting and Finalising.
    fn promoting(&mut self) -> Flow {
        let primary = self.input.spec.primary_workload_name();
        if let Some(reason) = self.stuck(&self.obs.primary, &primary) {
            self.failed_promotion(reason);
            return Flow::End;
        }
        let applied = self.status.last_applied_spec.clone().unwrap_or_default();
        if self.status.phase == CanaryPhase::Promoting && self.obs.primary_revision.as_deref() != Some(applied.as_str())
        {
            if self.revision_id() != applied {
                // The promotion was lost (a restart) and the target has moved on: the analysed
                // revision can no longer be copied. The primary keeps what it runs; the new
                // revision gets its own run.
                let reason =
                    format!("the target changed to {} before revision {applied} reached {primary}", self.revision_id());
                self.rollback(StallReason::PromotionFailed, reason);
                return Flow::End;
            }
            // The promotion was decided but not carried out (a restart in between): do it again.
            self.actions.push(Action::Promote { revision: applied.clone() });
            self.say(format!("copying revision {applied} to {primary}"));
            return Flow::End;
        }
        if !matches!(self.obs.primary, Readiness::Ready) {
            self.say(format!("waiting for {primary} to roll out revision {applied}"));
            return Flow::End;
        }
        self.reconcile_routes();
        if !self.step_is_due() {
            return Flow::End;
        }
        if self.status.phase == CanaryPhase::Finalising {
            self.finalise();
            return Flow::End;
        }
        let step = self.analysis.step_weight_promotion.unwrap_or(0);
        let next = if step <= 0 { 0 } else { (self.status.canary_weight - step).max(0) };
        self.route(next, false);
        if next == 0 {
            self.enter(CanaryPhase::Finalising, format!("all traffic back on {primary}; draining the canary"));
        } else {
            self.say(format!("shifting traffic to {primary}: canary weight {next}"));
            self.event(
                EventKind::Normal,
                "Synced",
                format!("Advance {} primary weight {}", self.input.name, 100 - next),
            );
        }
        Flow::End
    }
}
