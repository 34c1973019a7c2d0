//! Table tests of webhooks (every type and its effect) and of the runtime operator actions.

mod common;

use common::*;
use serin_controller::engine::{Action, HookOutcome, OperatorAction, Question};
use serin_crds::{CanaryPhase::*, canary::HookType, canary_status::condition};

fn with_hook(kind: &str, extra_analysis: &str) -> serin_crds::CanarySpec {
    spec(&format!(
        "  stepWeight: 50\n  threshold: 2\n{extra_analysis}  webhooks:\n  - {{name: {kind}-hook, type: {kind}, url: http://gate.test/}}\n"
    ))
}

fn closed(kind: HookType) -> (HookType, HookOutcome) {
    (kind, HookOutcome::Failed { hook: format!("{kind}-hook"), message: "closed".into() })
}

/// Whether the tick refused an operator request with an event saying so.
fn was_ignored(decision: &serin_controller::engine::RolloutDecision) -> bool {
    decision.actions.iter().any(|a| matches!(a, Action::Event { reason, .. } if reason == "OperatorRequestIgnored"))
}

#[test]
fn confirm_rollout_closed_waits_then_opens() {
    let mut world = initialized(with_hook("confirm-rollout", ""));
    world.hook_outcomes.extend([closed(HookType::ConfirmRollout)]);
    let decision = world.tick();
    assert_eq!(world.phase(), Waiting);
    assert!(!decision.actions.contains(&Action::ScaleCanaryUp));
    assert!(decision.actions.iter().any(|a| matches!(a, Action::Alert { .. })), "alerts once on entering Waiting");
    let again = world.tick();
    assert_eq!(world.asked, [Question::Hooks(HookType::ConfirmRollout)], "re-asked every interval");
    assert!(!again.actions.iter().any(|a| matches!(a, Action::Alert { .. })), "no alert storm");
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(finish(&mut world, 10), Succeeded);
}

#[test]
fn confirm_rollout_is_asked_before_scaling_up_only() {
    let mut world = initialized(with_hook("confirm-rollout", ""));
    world.tick();
    assert_eq!(world.asked, [Question::Hooks(HookType::ConfirmRollout)]);
    world.tick();
    assert!(!world.asked.contains(&Question::Hooks(HookType::ConfirmRollout)));
}

#[test]
fn pre_rollout_runs_once_on_the_first_step_and_failures_count() {
    let mut world = initialized(with_hook("pre-rollout", ""));
    world.tick();
    world.hook_outcomes.extend([closed(HookType::PreRollout)]);
    world.tick();
    assert_eq!(world.asked, [Question::Hooks(HookType::PreRollout)]);
    assert_eq!((world.status().failed_checks, world.weights()), (1, (100, 0)));
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.weights(), (50, 50), "passes on retry and shifts in the same tick");
    world.tick();
    assert!(!world.asked.contains(&Question::Hooks(HookType::PreRollout)), "only on the first step");
}

#[test]
fn pre_rollout_failing_to_the_threshold_rolls_back() {
    let mut world = initialized(with_hook("pre-rollout", ""));
    world.hook_outcomes.extend([closed(HookType::PreRollout)]);
    assert_eq!(finish(&mut world, 10), Failed);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("pre-rollout hook pre-rollout-hook failed"));
}

#[test]
fn rollout_hooks_run_every_step_before_metrics_and_failures_count() {
    let mut world = initialized(with_hook("rollout", SUCCESS_RATE));
    world.tick();
    world.tick();
    world.tick();
    assert_eq!(world.asked, [Question::Hooks(HookType::Rollout), Question::Metrics]);
    world.hook_outcomes.extend([closed(HookType::Rollout)]);
    world.tick();
    assert_eq!(world.asked, [Question::Hooks(HookType::Rollout)], "a failed rollout hook stops the step");
    assert_eq!(world.status().failed_checks, 1);
}

#[test]
fn confirm_traffic_increase_closed_holds_the_weight_without_failing() {
    let mut world = initialized(spec(
        "  stepWeight: 25\n  threshold: 1\n  webhooks:\n  - {name: step-gate, type: confirm-traffic-increase, url: http://gate.test/}\n",
    ));
    world.tick();
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (50, 50));
    world.hook_outcomes.extend([closed(HookType::ConfirmTrafficIncrease)]);
    for _ in 0..5 {
        world.tick();
    }
    assert_eq!((world.phase(), world.weights(), world.status().failed_checks), (Progressing, (50, 50), 0));
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.weights(), (25, 75));
}

#[test]
fn confirm_promotion_closed_waits_for_promotion_while_analysis_goes_on() {
    let mut world = initialized(with_hook("confirm-promotion", SUCCESS_RATE));
    world.hook_outcomes.extend([closed(HookType::ConfirmPromotion)]);
    assert!(world.run_until(&[WaitingPromotion], 10));
    assert_eq!(world.status().canary_weight, 100, "the weight stays visible, unlike Flagger's 0");
    world.tick();
    assert_eq!(world.phase(), WaitingPromotion);
    assert!(world.asked.contains(&Question::Metrics), "analysis keeps running");
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.phase(), Promoting);
}

#[test]
fn a_failing_metric_while_waiting_for_promotion_rolls_back() {
    let mut world = initialized(with_hook("confirm-promotion", SUCCESS_RATE));
    world.hook_outcomes.extend([closed(HookType::ConfirmPromotion)]);
    assert!(world.run_until(&[WaitingPromotion], 10));
    world.canary.error_rate = 0.5;
    assert_eq!(finish(&mut world, 5), Failed);
}

#[test]
fn rollback_hook_success_rolls_back_a_run() {
    let mut world = initialized(with_hook("rollback", ""));
    world
        .hook_outcomes
        .insert(HookType::Rollback, HookOutcome::Failed { hook: "rollback-hook".into(), message: "no".into() });
    world.tick();
    world.tick();
    assert_eq!(world.phase(), Progressing, "a failing rollback hook means: no rollback wanted");
    world.hook_outcomes.insert(HookType::Rollback, HookOutcome::Succeeded);
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "RollbackRequested");
}

#[test]
fn rollback_hook_is_honoured_while_waiting_unlike_flagger() {
    let analysis = "  stepWeight: 50\n  webhooks:\n  - {name: approve, type: confirm-rollout, url: http://gate.test/}\n  - {name: stop, type: rollback, url: http://gate.test/}\n";
    let mut world = initialized(spec(analysis));
    world.hook_outcomes.extend([closed(HookType::ConfirmRollout), closed(HookType::Rollback)]);
    world.tick();
    world.tick();
    assert_eq!(world.phase(), Waiting);
    world.hook_outcomes.insert(HookType::Rollback, HookOutcome::Succeeded);
    world.tick();
    assert_eq!(world.phase(), Failed);
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.phase(), Failed, "the rolled-back revision does not start again by itself");
}

#[test]
fn post_rollout_hooks_run_after_success_and_failure() {
    let mut world = initialized(with_hook("post-rollout", ""));
    assert_eq!(finish(&mut world, 10), Succeeded);
    let runs = actions(&world, |a| matches!(a, Action::RunHooks { kind: HookType::PostRollout, .. }));
    assert_eq!(runs, [Action::RunHooks { kind: HookType::PostRollout, phase: Succeeded }]);
}

#[test]
fn operator_promote_skips_the_remaining_analysis() {
    let mut world = initialized(spec(&format!("  stepWeight: 10\n{SUCCESS_RATE}")));
    world.tick();
    world.tick();
    world.request(OperatorAction::Promote);
    world.tick();
    assert_eq!(world.phase(), Promoting);
    assert!(world.asked.is_empty(), "no gates or metrics are asked");
    assert_eq!(finish(&mut world, 5), Succeeded);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v2"));
}

#[test]
fn operator_promote_while_waiting_promotes_the_new_revision() {
    let mut world = initialized(with_hook("confirm-rollout", ""));
    world.hook_outcomes.extend([closed(HookType::ConfirmRollout)]);
    world.tick();
    world.request(OperatorAction::Promote);
    world.tick();
    assert_eq!(world.phase(), Promoting);
    assert_eq!(finish(&mut world, 5), Succeeded);
    assert_eq!(world.status().last_promoted_spec.as_deref(), Some("v2"));
}

#[test]
fn operator_abort_rolls_back_now() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.tick();
    world.request(OperatorAction::Abort);
    world.tick();
    assert_eq!((world.phase(), world.weights()), (Failed, (100, 0)));
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "Aborted");
}

#[test]
fn operator_abort_is_refused_once_promotion_started() {
    let mut world = initialized(spec("  stepWeight: 100\n"));
    world.rollout_ticks = 2;
    assert!(world.run_until(&[Promoting], 10));
    world.request(OperatorAction::Abort);
    let decision = world.tick();
    assert_eq!(world.phase(), Promoting);
    assert!(was_ignored(&decision), "{:?}", decision.actions);
}

#[test]
fn operator_pause_holds_and_resume_continues() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.tick();
    world.request(OperatorAction::Pause);
    for _ in 0..4 {
        world.tick();
    }
    assert_eq!(world.weights(), (90, 10));
    assert!(world.status().paused);
    world.request(OperatorAction::Resume);
    world.tick();
    assert_eq!(world.weights(), (80, 20));
}

#[test]
fn operator_retry_runs_a_failed_revision_again() {
    let mut world = initialized(spec(&format!("  stepWeight: 50\n  threshold: 1\n{SUCCESS_RATE}")));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    world.canary.error_rate = 0.0;
    world.request(OperatorAction::Retry);
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(finish(&mut world, 10), Succeeded);
}

#[test]
fn an_operator_request_is_acted_upon_once() {
    let mut world = initialized(spec(&format!("  stepWeight: 50\n  threshold: 1\n{SUCCESS_RATE}")));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    world.request(OperatorAction::Retry);
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(finish(&mut world, 10), Failed, "the retried run fails again");
    // The same request is still what the platform observes: it must not start a third run.
    for _ in 0..3 {
        world.tick();
        assert_eq!(world.phase(), Failed);
    }
    world.request(OperatorAction::Retry);
    world.tick();
    assert_eq!(world.phase(), Progressing, "a new request (new id) is acted upon");
}

#[test]
fn rollback_hook_is_honoured_while_waiting_for_promotion_and_while_paused() {
    let analysis = "  stepWeight: 50\n  webhooks:\n  - {name: promotion, type: confirm-promotion, url: http://gate.test/}\n  - {name: stop, type: rollback, url: http://gate.test/}\n";
    let mut world = initialized(spec(analysis));
    world.hook_outcomes.extend([closed(HookType::ConfirmPromotion), closed(HookType::Rollback)]);
    assert!(world.run_until(&[WaitingPromotion], 10));
    world.request(OperatorAction::Pause);
    world.tick();
    assert!(world.status().paused);
    world.hook_outcomes.insert(HookType::Rollback, HookOutcome::Succeeded);
    world.tick();
    assert_eq!(world.phase(), Failed, "a pause holds the steps, not a requested rollback");
}

#[test]
fn post_rollout_hooks_run_after_a_rollback_too() {
    let mut world = initialized(spec(&format!("  stepWeight: 50\n  threshold: 1\n{SUCCESS_RATE}")));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    let runs = actions(&world, |a| matches!(a, Action::RunHooks { kind: HookType::PostRollout, .. }));
    assert_eq!(runs, [Action::RunHooks { kind: HookType::PostRollout, phase: Failed }]);
}

#[test]
fn pause_outside_a_run_is_refused_not_stored() {
    let mut world = initialized(spec("  stepWeight: 50\n"));
    world.deploy("v1");
    world.request(OperatorAction::Pause);
    let decision = world.tick();
    assert!(!world.status().paused);
    assert!(was_ignored(&decision), "{:?}", decision.actions);
}

#[test]
fn confirm_traffic_increase_is_asked_after_the_mirror_step() {
    let analysis = "  stepWeight: 50\n  mirror: true\n  webhooks:\n  - {name: step-gate, type: confirm-traffic-increase, url: http://gate.test/}\n";
    let mut world = initialized(spec(analysis));
    world.hook_outcomes.extend([closed(HookType::ConfirmTrafficIncrease)]);
    world.tick();
    world.tick();
    assert!(world.mirrored(), "the mirror step needs no gate");
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (100, 0), "no live traffic shifts while the gate is closed");
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.weights(), (50, 50));
}

#[test]
fn blue_green_asks_confirm_promotion_again_after_the_full_canary_tick() {
    let analysis =
        "  iterations: 1\n  webhooks:\n  - {name: promotion, type: confirm-promotion, url: http://gate.test/}\n";
    let mut world = initialized(spec(analysis));
    world.tick();
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (0, 100));
    world.hook_outcomes.extend([closed(HookType::ConfirmPromotion)]);
    world.tick();
    assert_eq!(world.phase(), WaitingPromotion);
    world.hook_outcomes.clear();
    world.tick();
    assert_eq!(world.phase(), Promoting);
}

#[test]
fn waiting_goes_back_to_failed_when_the_target_returns_to_the_failed_revision() {
    let analysis = format!(
        "  stepWeight: 50\n  threshold: 1\n{SUCCESS_RATE}  webhooks:\n  - {{name: approve, type: confirm-rollout, url: http://gate.test/}}\n"
    );
    let mut world = initialized(spec(&analysis));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    world.deploy("v3");
    world.hook_outcomes.extend([closed(HookType::ConfirmRollout)]);
    world.tick();
    assert_eq!(world.phase(), Waiting);
    world.deploy("v2");
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert_eq!(condition(&world, condition::PROMOTED).unwrap().status, "False");
}
