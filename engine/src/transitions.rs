//! The transitions that start, end or hand over a run. Each sets the phase, the routes and the
//! scaling together, so no caller can do half of one.

use serin_crds::{CanaryPhase, canary::AlertSeverity, canary::HookType};

use super::conditions::StallReason;
use super::decision::{Action, EventKind};
use super::tick::Tick;

impl Tick<'_> {
    /// A new revision passed confirm-rollout: scale the canary up and start at weight 0.
    pub(super) fn start_run(&mut self) {
        let target = self.input.spec.target_ref.name.clone();
        self.actions.push(Action::ScaleCanaryUp);
        self.route(0, false);
        self.begin_progressing();
        self.status.last_step_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(self.input.now));
        let revision = self.obs.revision.id.clone();
        self.say(format!("new revision {revision}: scaling up {target}"));
        self.event(EventKind::Normal, "Synced", format!("New revision detected! Scaling up {target}"));
        self.alert(AlertSeverity::Info, format!("New revision {revision} detected, starting canary analysis."));
        if let Some(affinity) = &self.analysis.session_affinity {
            // Deterministic cookie values: the revision ids. A new run gets a new canary cookie, so
            // clients pinned to an earlier canary are not pinned to this one.
            self.status.previous_session_affinity_cookie = self.status.session_affinity_cookie.take();
            self.status.session_affinity_cookie = Some(format!("{}={revision}", affinity.cookie_name));
            self.status.primary_session_affinity_cookie = affinity
                .primary_cookie_name
                .as_ref()
                .map(|name| format!("{name}={}", self.status.last_promoted_spec.as_deref().unwrap_or("primary")));
        }
    }

    /// Progressing from the start: weight, iterations and counters back to zero.
    pub(super) fn begin_progressing(&mut self) {
        self.claim_current_revision();
        self.status.failed_checks = 0;
        self.status.iterations = 0;
        self.status.metrics.clear();
        self.status.last_failure_reason = None;
        self.status.paused = false;
        let revision = self.obs.revision.id.clone();
        self.enter(CanaryPhase::Progressing, format!("revision {revision} under analysis"));
    }

    /// Roll back: all traffic to the primary, the canary to zero, Failed. The primary is never
    /// touched, so it keeps serving the promoted revision.
    pub(super) fn rollback(&mut self, stall: StallReason, reason: String) {
        let target = self.input.spec.target_ref.name.clone();
        self.route(0, false);
        self.actions.push(Action::ScaleCanaryToZero);
        self.status.last_failure_reason = Some(reason.clone());
        self.status.paused = false;
        self.stalled = Some(stall);
        self.end_session_affinity();
        self.enter(CanaryPhase::Failed, format!("canary failed: {reason}"));
        self.event(EventKind::Warning, "Synced", format!("Canary failed! Scaling down {target}: {reason}"));
        self.alert(AlertSeverity::Error, format!("Canary analysis failed, rollback finished: {reason}"));
        self.actions.push(Action::RunHooks { kind: HookType::PostRollout, phase: CanaryPhase::Failed });
    }

    /// Copy the canary to the primary; traffic moves back once the primary has rolled out.
    pub(super) fn promote(&mut self, why: String) {
        let target = self.input.spec.target_ref.name.clone();
        let revision = self.status.last_applied_spec.clone().unwrap_or_else(|| self.obs.revision.id.clone());
        self.actions.push(Action::Promote { revision: revision.clone() });
        self.status.paused = false;
        self.enter(
            CanaryPhase::Promoting,
            format!("{why}: copying revision {revision} to {}", self.input.spec.primary_workload_name()),
        );
        self.event(
            EventKind::Normal,
            "Synced",
            format!("Copying {target} template spec to {}", self.input.spec.primary_workload_name()),
        );
    }

    /// The primary did not become ready with the promoted spec: send traffic to the canary, which
    /// still runs the same revision, keep it up and fail (Flagger 1.44's `handleFailedPromotion`).
    pub(super) fn failed_promotion(&mut self, reason: String) {
        self.route(100, false);
        self.status.last_failure_reason = Some(reason.clone());
        self.stalled = Some(StallReason::PromotionFailed);
        self.enter(CanaryPhase::Failed, format!("promotion failed, all traffic on the canary: {reason}"));
        self.event(EventKind::Warning, "Synced", format!("Promotion failed: {reason}"));
        self.alert(AlertSeverity::Error, format!("Promotion failed, traffic routed to the canary: {reason}"));
        self.actions.push(Action::RunHooks { kind: HookType::PostRollout, phase: CanaryPhase::Failed });
    }

    /// After one interval of draining: scale the canary down and record the promotion.
    pub(super) fn finalise(&mut self) {
        let target = self.input.spec.target_ref.name.clone();
        self.actions.push(Action::ScaleCanaryToZero);
        self.status.last_promoted_spec = self.status.last_applied_spec.clone();
        self.status.canary_weight = 0;
        self.end_session_affinity();
        let revision = self.status.last_promoted_spec.clone().unwrap_or_default();
        self.enter(CanaryPhase::Succeeded, format!("revision {revision} promoted"));
        self.event(EventKind::Normal, "Synced", format!("Promotion completed! Scaling down {target}"));
        self.alert(
            AlertSeverity::Info,
            format!("Canary analysis completed successfully, promotion finished ({revision})."),
        );
        self.actions.push(Action::RunHooks { kind: HookType::PostRollout, phase: CanaryPhase::Succeeded });
    }

    pub(super) fn end_session_affinity(&mut self) {
        if let Some(cookie) = self.status.session_affinity_cookie.take() {
            self.status.previous_session_affinity_cookie = Some(cookie);
            self.status.primary_session_affinity_cookie = None;
        }
    }
}
