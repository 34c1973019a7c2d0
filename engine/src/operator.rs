//! Operator requests: promote, abort, pause, resume and retry without editing the spec.

use serin_crds::CanaryPhase;

use super::conditions::StallReason;
use super::decision::EventKind;
use super::observations::OperatorAction;
use super::tick::{Flow, Outcome, Tick};

impl Tick<'_> {
    /// Operator requests act once per id, before anything else in the tick.
    pub(super) fn handle_operator_request(&mut self) -> Outcome {
        let Some(request) = &self.obs.operator else {
            return Ok(Flow::Continue);
        };
        if self.status.last_handled_request.as_deref() == Some(request.id.as_str()) {
            return Ok(Flow::Continue);
        }
        self.status.last_handled_request = Some(request.id.clone());
        let phase = self.status.phase;
        let ignored = |tick: &mut Tick<'_>, why: String| {
            tick.event(EventKind::Warning, "OperatorRequestIgnored", why);
            Ok(Flow::Continue)
        };
        match request.action {
            OperatorAction::Pause => {
                if !matches!(phase, CanaryPhase::Waiting | CanaryPhase::Progressing | CanaryPhase::WaitingPromotion) {
                    return ignored(self, format!("pause ignored: nothing to hold in {phase}"));
                }
                self.status.paused = true;
                self.event(EventKind::Normal, "Paused", "Paused by operator: the current step holds");
                Ok(Flow::Continue)
            }
            OperatorAction::Resume => {
                self.status.paused = false;
                self.event(EventKind::Normal, "Resumed", "Resumed by operator");
                Ok(Flow::Continue)
            }
            OperatorAction::Abort => match phase {
                CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Waiting => {
                    self.claim_current_revision();
                    self.rollback(StallReason::Aborted, "aborted by operator".to_string());
                    Ok(Flow::End)
                }
                CanaryPhase::Promoting | CanaryPhase::Finalising => ignored(
                    self,
                    format!(
                        "abort ignored: in {phase} the canary's spec is already on the primary; roll forward instead"
                    ),
                ),
                _ => ignored(self, format!("abort ignored: no run in progress ({phase})")),
            },
            OperatorAction::Promote => {
                // A failed run is never promoted, not even by hand: `retry` runs it again, and a
                // promote during that run skips what is left of it.
                let promotable =
                    matches!(phase, CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Waiting);
                if !promotable {
                    let hint = if phase == CanaryPhase::Failed { "; use retry to run it again" } else { "" };
                    return ignored(self, format!("promote ignored: nothing to promote in {phase}{hint}"));
                }
                if phase == CanaryPhase::Waiting {
                    // The counters still describe the previous run.
                    self.status.failed_checks = 0;
                    self.status.iterations = 0;
                    self.status.last_failure_reason = None;
                }
                self.claim_current_revision();
                self.status.paused = false;
                self.event(
                    EventKind::Normal,
                    "Promote",
                    "Promotion requested by operator; skipping the remaining analysis",
                );
                self.promote("promoted by operator".to_string());
                Ok(Flow::End)
            }
            OperatorAction::Retry => {
                if phase != CanaryPhase::Failed || self.status.last_promoted_spec.as_deref() == Some(self.revision_id())
                {
                    return ignored(self, format!("retry ignored: no failed revision to run again ({phase})"));
                }
                self.event(EventKind::Normal, "Retry", "Retry requested by operator");
                self.start_run();
                Ok(Flow::End)
            }
        }
    }
}
