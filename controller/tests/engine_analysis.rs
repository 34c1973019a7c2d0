//! Table tests of the analysis (metrics, thresholds, no data) and of revision handling.

mod common;

use common::*;
use serin_controller::engine::{Action, MetricValue, Readiness};
use serin_crds::{CanaryPhase::*, canary_status::MetricOutcome, canary_status::condition};

fn with_success_rate(threshold: u32) -> serin_crds::CanarySpec {
    spec(&format!("  stepWeight: 10\n  threshold: {threshold}\n{SUCCESS_RATE}"))
}

#[test]
fn failing_checks_roll_back_at_the_threshold() {
    let mut world = initialized(with_success_rate(3));
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (90, 10));
    world.canary.error_rate = 0.10;
    world.tick();
    world.tick();
    assert_eq!(world.status().failed_checks, 2);
    assert_eq!(world.weights(), (90, 10), "a failed check holds the weight");
    assert_eq!(world.phase(), Progressing);
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert_eq!(world.weights(), (100, 0));
    assert_eq!(world.observations.canary, Readiness::ScaledToZero);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v1"), "the primary is never touched");
    let status = world.status();
    assert_eq!(status.failed_checks, 3);
    assert!(status.last_failure_reason.as_ref().unwrap().contains("request-success-rate 90 is below the minimum 99"));
    assert_eq!(status.metrics[0].outcome, MetricOutcome::Failed);
    assert_eq!(status.metrics[0].value, Some(90.0));
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "AnalysisFailed");
    assert_eq!(condition(&world, condition::PROMOTED).unwrap().status, "False");
    assert!(condition(&world, condition::RECONCILING).is_none());
    assert!(!actions(&world, |a| matches!(a, Action::RunHooks { phase: Failed, .. })).is_empty());
}

#[test]
fn latency_above_its_maximum_fails_the_check() {
    let analysis = "  stepWeight: 10\n  metrics:\n  - name: request-duration\n    thresholdRange: {max: 500}\n";
    let mut world = initialized(spec(analysis));
    world.canary.latency_ms = 800.0;
    assert_eq!(finish(&mut world, 10), Failed);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("800 is above the maximum 500"));
}

#[test]
fn deprecated_threshold_is_a_minimum_for_success_rate_and_a_maximum_otherwise() {
    let analysis = "  stepWeight: 50\n  metrics:\n  - {name: request-success-rate, threshold: 99}\n  - {name: request-duration, threshold: 500}\n";
    let mut world = initialized(spec(analysis));
    world.canary = serin_controller::simulate::Behaviour { error_rate: 0.0, latency_ms: 400.0 };
    assert_eq!(finish(&mut world, 10), Succeeded);
    let mut world = initialized(spec(analysis));
    world.canary = serin_controller::simulate::Behaviour { error_rate: 0.0, latency_ms: 600.0 };
    assert_eq!(finish(&mut world, 10), Failed);
}

#[test]
fn metrics_are_not_evaluated_on_the_first_step() {
    let mut world = initialized(with_success_rate(1));
    world.canary.error_rate = 1.0;
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (90, 10), "the first step only runs pre-rollout hooks");
    world.tick();
    assert_eq!(world.phase(), Failed);
}

#[test]
fn no_data_fails_by_default_and_says_so() {
    let mut world = initialized(with_success_rate(2));
    world.metric_overrides.insert("request-success-rate".into(), MetricValue::NoData("empty result".into()));
    world.tick();
    world.tick();
    world.tick();
    assert_eq!(world.status().failed_checks, 1);
    assert!(world.status().message.contains("onNoData: Fail"), "{}", world.status().message);
    assert_eq!(world.status().metrics[0].outcome, MetricOutcome::NoData);
    world.tick();
    assert_eq!(world.phase(), Failed);
}

#[test]
fn no_data_with_hold_keeps_the_weight_without_counting() {
    let analysis = "  stepWeight: 10\n  threshold: 1\n  metrics:\n  - name: request-success-rate\n    thresholdRange: {min: 99}\n    onNoData: Hold\n";
    let mut world = initialized(spec(analysis));
    world.tick();
    world.tick();
    world.metric_overrides.insert("request-success-rate".into(), MetricValue::Value(f64::NAN));
    for _ in 0..5 {
        world.tick();
    }
    assert_eq!(world.phase(), Progressing);
    assert_eq!(world.status().failed_checks, 0);
    assert_eq!(world.weights(), (90, 10));
    assert!(world.status().message.contains("holding (onNoData: Hold)"), "{}", world.status().message);
    world.metric_overrides.clear();
    world.tick();
    assert_eq!(world.weights(), (80, 20), "traffic came back: the run goes on");
}

#[test]
fn an_unreachable_provider_counts_as_a_failed_check() {
    let mut world = initialized(with_success_rate(5));
    world.tick();
    world.tick();
    world.metric_overrides.insert("request-success-rate".into(), MetricValue::Error("connection refused".into()));
    world.tick();
    assert_eq!(world.status().failed_checks, 1);
    assert_eq!(world.status().metrics[0].outcome, MetricOutcome::Error);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("connection refused"));
}

#[test]
fn a_new_revision_mid_analysis_restarts_from_weight_zero() {
    // Flagger's TestScheduler_DeploymentNewRevisionReset: 90/10, then a new revision gives 100/0.
    let mut world = initialized(with_success_rate(5));
    world.tick();
    world.tick();
    world.canary.error_rate = 0.5;
    world.tick();
    assert_eq!((world.weights(), world.status().failed_checks), ((90, 10), 1));
    world.canary.error_rate = 0.0;
    world.deploy("v3");
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(world.weights(), (100, 0));
    assert_eq!(world.status().failed_checks, 0);
    assert_eq!(world.status().last_applied_spec.as_deref(), Some("v3"));
    assert_eq!(finish(&mut world, 20), Succeeded);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v3"));
}

#[test]
fn reverting_to_the_promoted_revision_starts_nothing_and_cancels_a_run() {
    let mut world = initialized(with_success_rate(5));
    world.deploy("v1");
    for _ in 0..3 {
        world.tick();
        assert_eq!(world.phase(), Initialized, "v1 is the promoted revision: no run");
    }
    world.deploy("v2");
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (90, 10));
    world.deploy("v1");
    world.tick();
    assert_eq!(world.phase(), Succeeded);
    assert_eq!(world.weights(), (100, 0));
    assert!(world.status().message.contains("cancelled"));
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v1"));
}

#[test]
fn a_revision_that_arrives_while_failed_is_never_lost() {
    let mut world = initialized(with_success_rate(1));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    // The failed revision stays put: nothing runs.
    world.tick();
    assert_eq!(world.phase(), Failed);
    world.canary.error_rate = 0.0;
    world.deploy("v3");
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(world.status().last_applied_spec.as_deref(), Some("v3"));
    assert_eq!(finish(&mut world, 20), Succeeded);
}

#[test]
fn a_failed_revision_reapplied_after_a_revert_runs_again() {
    let mut world = initialized(with_success_rate(1));
    world.canary.error_rate = 1.0;
    assert_eq!(finish(&mut world, 10), Failed);
    world.deploy("v1");
    world.tick();
    assert_eq!(world.phase(), Failed);
    world.canary.error_rate = 0.0;
    world.deploy("v2");
    world.tick();
    assert_eq!(world.phase(), Progressing, "v2 counts as new again once the target went back to v1");
}

#[test]
fn a_canary_that_never_becomes_ready_rolls_back_at_the_deadline() {
    let mut world = initialized(spec_with("  stepWeight: 10\n", "progressDeadlineSeconds: 90"));
    world.rollout_ticks = 1000;
    world.tick();
    assert_eq!(world.phase(), Progressing);
    world.tick();
    assert_eq!(world.phase(), Progressing, "pending within the deadline: wait");
    assert!(world.status().message.contains("waiting for podinfo"));
    assert_eq!(world.status().failed_checks, 0, "waiting is not a failed check");
    assert!(world.run_until(&[Failed], 10));
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "ProgressDeadlineExceeded");
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("progressDeadlineSeconds 90"));
}

#[test]
fn a_primary_that_fails_during_the_analysis_rolls_back() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.tick();
    world.observations.primary = Readiness::ScaledToZero;
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("podinfo-primary is scaled to zero"));
}

#[test]
fn a_canary_that_cannot_run_rolls_back_at_once() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.observations.canary = Readiness::Failed { reason: "ErrImagePull".into() };
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("ErrImagePull"));
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "ProgressDeadlineExceeded");
}
