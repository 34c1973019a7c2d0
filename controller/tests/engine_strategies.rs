//! Table tests of the engine's strategies and phases, porting the intent of Flagger's scheduler tests.

mod common;

use common::*;
use serin_controller::engine::{Action, Readiness};
use serin_crds::{CanaryPhase::*, canary::HookType, canary_status::condition};

#[test]
fn initialization_creates_the_primary_and_parks_the_target() {
    let mut world = serin_controller::simulate::World::new("podinfo", spec("  stepWeight: 10\n"), "v1");
    world.rollout_ticks = 2;
    let first = world.tick();
    assert_eq!(world.phase(), Initializing);
    assert!(first.actions.contains(&Action::InitializePrimary));
    assert!(world.run_until(&[Initialized], 5));
    let status = world.status();
    assert_eq!(status.last_applied_spec.as_deref(), Some("v1"));
    assert_eq!(status.last_promoted_spec.as_deref(), Some("v1"));
    assert_eq!(world.weights(), (100, 0));
    assert_eq!(world.observations.canary, Readiness::ScaledToZero);
    assert_eq!(condition(&world, condition::PROMOTED).unwrap().status, "True");
    assert_eq!(condition(&world, condition::READY).unwrap().status, "True");
    assert!(condition(&world, condition::RECONCILING).is_none());
    assert_eq!(status.observed_generation, 1);
}

#[test]
fn a_primary_that_never_becomes_ready_stalls_initialization() {
    let mut world = serin_controller::simulate::World::new(
        "podinfo",
        spec_with("  stepWeight: 10\n", "progressDeadlineSeconds: 60"),
        "v1",
    );
    world.tick();
    world.observations.primary = Readiness::Pending { reason: "ImagePullBackOff".into(), since: world.now };
    for _ in 0..4 {
        world.tick();
    }
    assert_eq!(world.phase(), Initializing);
    let stalled = condition(&world, condition::STALLED).expect("Stalled is set");
    assert_eq!(stalled.reason, "PrimaryNotReady");
    assert!(world.status().message.contains("ImagePullBackOff"), "{}", world.status().message);
}

#[test]
fn new_revision_starts_a_run_at_weight_zero_then_steps() {
    let mut world = initialized(spec("  stepWeight: 10\n  maxWeight: 30\n"));
    let decision = world.tick();
    assert_eq!(world.phase(), Progressing);
    assert!(decision.actions.contains(&Action::ScaleCanaryUp));
    assert_eq!(world.status().canary_weight, 0);
    assert_eq!(world.status().last_applied_spec.as_deref(), Some("v2"));
    assert_eq!(condition(&world, condition::RECONCILING).unwrap().status, "True");
    assert_eq!(condition(&world, condition::PROMOTED).unwrap().status, "Unknown");
    assert_eq!(
        trace(&mut world, 6),
        [
            (Progressing, 90, 10),
            (Progressing, 80, 20),
            (Progressing, 70, 30),
            (Promoting, 70, 30),
            (Finalising, 100, 0),
            (Succeeded, 100, 0)
        ]
    );
    assert_eq!(world.status().last_promoted_spec.as_deref(), Some("v2"));
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v2"));
    assert_eq!(world.observations.canary, Readiness::ScaledToZero);
    assert!(
        actions(&world, |a| matches!(a, Action::RunHooks { kind: HookType::PostRollout, phase: Succeeded })).len() == 1
    );
    assert_eq!(condition(&world, condition::READY).unwrap().status, "True");
}

#[test]
fn linear_steps_overshoot_max_weight_as_flagger_documents() {
    let mut world = initialized(spec("  stepWeight: 20\n  maxWeight: 50\n"));
    world.tick();
    let weights: Vec<u8> = trace(&mut world, 4).into_iter().map(|(_, _, c)| c).collect();
    assert_eq!(weights, [20, 40, 60, 60]);
    assert_eq!(world.phase(), Promoting);
}

#[test]
fn step_weights_give_primary_100_99_98_90_20() {
    let mut world = initialized(spec("  stepWeights: [1, 2, 10, 80]\n"));
    world.tick();
    let mut primary = vec![world.weights().0];
    primary.extend(trace(&mut world, 4).into_iter().map(|(_, p, _)| p));
    assert_eq!(primary, [100, 99, 98, 90, 20]);
    world.tick();
    assert_eq!(world.phase(), Promoting);
}

#[test]
fn analysis_phases_with_step_weight_promotion() {
    // Flagger's TestScheduler_DeploymentAnalysisPhases: stepWeight 100, stepWeightPromotion 50.
    let mut world = initialized(spec("  stepWeight: 100\n  stepWeightPromotion: 50\n"));
    let phases: Vec<_> = trace(&mut world, 6).into_iter().map(|(phase, _, canary)| (phase, canary)).collect();
    assert_eq!(
        phases,
        [(Progressing, 0), (Progressing, 100), (Promoting, 100), (Promoting, 50), (Finalising, 0), (Succeeded, 0)]
    );
}

#[test]
fn promotion_waits_for_the_primary_rollout() {
    let mut world = initialized(spec("  stepWeight: 50\n"));
    world.rollout_ticks = 3;
    assert!(world.run_until(&[Promoting], 10));
    let weight_at_promotion = world.weights();
    // The primary rolls out for three ticks; traffic stays where it was meanwhile.
    for _ in 0..2 {
        world.tick();
        assert_eq!(world.phase(), Promoting);
        assert_eq!(world.weights(), weight_at_promotion);
        assert!(world.status().message.contains("waiting for podinfo-primary"), "{}", world.status().message);
    }
    assert_eq!(finish(&mut world, 10), Succeeded);
}

#[test]
fn failed_promotion_after_traffic_shift_routes_all_to_the_canary() {
    let mut world = initialized(spec("  stepWeight: 100\n  stepWeightPromotion: 50\n"));
    assert!(world.run_until(&[Finalising], 10));
    world.observations.primary = Readiness::Failed { reason: "CrashLoopBackOff".into() };
    world.tick();
    assert_eq!(world.phase(), Failed);
    assert_eq!(world.weights(), (0, 100));
    assert_eq!(world.status().canary_weight, 100);
    assert_ne!(world.observations.canary, Readiness::ScaledToZero, "the canary keeps serving");
    assert_eq!(condition(&world, condition::STALLED).unwrap().reason, "PromotionFailed");
    // Idle ticks keep the routes on the canary.
    world.tick();
    assert_eq!(world.weights(), (0, 100));
}

#[test]
fn primary_stuck_past_the_deadline_while_promoting_fails_the_promotion() {
    let mut world = initialized(spec_with("  stepWeight: 100\n", "progressDeadlineSeconds: 120"));
    world.tick();
    world.rollout_ticks = 1000; // from now on: the canary is up, the primary will never finish rolling out
    assert!(world.run_until(&[Promoting], 10));
    assert!(world.run_until(&[Failed], 10), "{:?}", world.status);
    assert!(world.status().last_failure_reason.as_ref().unwrap().contains("progressDeadlineSeconds 120"));
    assert_eq!(world.weights(), (0, 100));
}

#[test]
fn skip_analysis_promotes_without_asking_for_metrics_or_hooks() {
    let analysis =
        format!("  stepWeight: 10\n{SUCCESS_RATE}  webhooks:\n  - {{name: load, type: rollout, url: http://t/}}\n");
    let mut world = initialized(spec_with(&analysis, "skipAnalysis: true"));
    world.canary.error_rate = 1.0;
    let mut asked = Vec::new();
    let phases: Vec<_> = (0..4)
        .map(|_| {
            world.tick();
            asked.extend(world.asked.clone());
            world.phase()
        })
        .collect();
    assert_eq!(phases, [Progressing, Promoting, Finalising, Succeeded]);
    assert!(asked.is_empty(), "asked {asked:?}");
}

#[test]
fn blue_green_phases_with_one_iteration() {
    // Flagger's TestScheduler_DeploymentBlueGreenAnalysisPhases.
    let mut world = initialized(spec("  iterations: 1\n"));
    let phases: Vec<_> = trace(&mut world, 6).into_iter().map(|(phase, _, _)| phase).collect();
    assert_eq!(phases, [Progressing, Progressing, Progressing, Promoting, Finalising, Succeeded]);
}

#[test]
fn blue_green_gets_one_analysed_tick_at_full_canary_before_promotion() {
    // Blue/green sends no live traffic to the canary during the iterations: a load test does.
    let load_test = "  webhooks:\n  - {name: load, type: rollout, url: http://load.test/}\n";
    let mut world = initialized(spec(&format!("  iterations: 3\n{SUCCESS_RATE}{load_test}")));
    let t = trace(&mut world, 6);
    assert_eq!(t[1..4].iter().map(|&(_, _, c)| c).collect::<Vec<_>>(), [0, 0, 0], "iterations keep the primary");
    assert_eq!(t[4], (Progressing, 0, 100), "then all traffic goes to the canary");
    assert_eq!(t[5].0, Promoting);
    assert_eq!(world.status().iterations, 4);
}

#[test]
fn blue_green_with_mirroring_mirrors_during_the_iterations() {
    let mut world = initialized(spec("  iterations: 2\n  mirror: true\n  mirrorWeight: 50\n"));
    world.tick();
    world.tick();
    assert!(world.mirrored());
    assert_eq!(world.weights(), (100, 0));
    world.tick();
    assert!(world.mirrored(), "mirroring stays on through the iterations");
    world.tick();
    assert_eq!(world.weights(), (0, 100));
    assert!(!world.mirrored(), "the full switch stops mirroring");
}

#[test]
fn canary_mirroring_takes_one_mirror_step_before_shifting() {
    // Flagger's TestScheduler_DeploymentMirroring: 100/0 mirrored, then 90/10.
    let mut world = initialized(spec("  stepWeight: 10\n  mirror: true\n"));
    world.tick();
    world.tick();
    assert_eq!((world.weights(), world.mirrored()), ((100, 0), true));
    world.tick();
    assert_eq!((world.weights(), world.mirrored()), ((90, 10), false));
}

#[test]
fn ab_testing_routes_matching_requests_to_the_canary_per_iteration() {
    let analysis = "  iterations: 3\n  match:\n  - headers:\n      x-canary: {exact: insider}\n";
    let mut world = initialized(spec(analysis));
    world.tick();
    let t = trace(&mut world, 4);
    assert_eq!(t[..3], [(Progressing, 0, 100), (Progressing, 0, 100), (Progressing, 0, 100)]);
    assert_eq!(world.status().iterations, 3);
    assert_eq!(t[3].0, Promoting);
    assert_eq!(finish(&mut world, 5), Succeeded);
    assert_eq!(world.weights(), (100, 0));
}

#[test]
fn session_affinity_cookies_follow_the_run() {
    let analysis =
        "  stepWeight: 50\n  sessionAffinity: {cookieName: canary-cookie, primaryCookieName: primary-cookie}\n";
    let mut world = initialized(spec(analysis));
    world.tick();
    assert_eq!(world.status().session_affinity_cookie.as_deref(), Some("canary-cookie=v2"));
    assert_eq!(world.status().primary_session_affinity_cookie.as_deref(), Some("primary-cookie=v1"));
    assert_eq!(finish(&mut world, 10), Succeeded);
    assert_eq!(world.status().session_affinity_cookie, None);
    assert_eq!(world.status().previous_session_affinity_cookie.as_deref(), Some("canary-cookie=v2"));
}

#[test]
fn steps_are_taken_once_per_interval_however_often_the_platform_ticks() {
    let mut world = initialized(spec("  stepWeight: 10\n  interval: 30s\n"));
    world.tick();
    world.tick();
    assert_eq!(world.weights(), (90, 10));
    // Ticks that come early (a watch event, say) change nothing and ask nothing.
    let now = world.now;
    for offset in [1, 10, 29] {
        world.now = now + jiff::SignedDuration::from_secs(offset) - jiff::SignedDuration::from_secs(30);
        let decision = world.tick();
        assert!(world.asked.is_empty());
        assert_eq!(world.weights(), (90, 10));
        assert!(decision.requeue_after <= std::time::Duration::from_secs(29));
    }
}
