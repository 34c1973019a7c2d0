//! Restart safety, deletion, suspension and determinism.
//!
//! Platforms write the decided status first and carry out the actions after; these tests drop the
//! actions of a tick (a controller killed in between) and check the next tick mends it.

mod common;

use common::*;
use serin_controller::engine::{Action, Readiness, Routes, Step, TickInput, decide};
use serin_controller::simulate::World;
use serin_crds::{CanaryPhase::*, canary_status::condition};

/// Decides one tick but keeps only the status, as if the process died before acting.
fn tick_and_die(world: &mut World) {
    let saved = world.clone();
    let decision = world.tick();
    let status = decision.status;
    let (now, ticks) = (world.now, world.ticks);
    *world = saved;
    world.status = Some(status);
    world.now = now;
    world.ticks = ticks;
}

#[test]
fn the_same_input_always_gives_the_same_decision() {
    let mut world = initialized(spec(&format!("  stepWeight: 10\n{SUCCESS_RATE}")));
    for _ in 0..6 {
        let replay = world.clone();
        let first = world.tick();
        let mut again = replay;
        let second = again.tick();
        assert_eq!(first, second);
    }
}

#[test]
fn a_lost_weight_change_is_reissued() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.tick();
    tick_and_die(&mut world);
    assert_eq!(world.status().canary_weight, 20);
    assert_eq!(world.weights(), (90, 10), "the route never got the new weight");
    let decision = world.tick();
    assert_eq!(decision.actions, [Action::SetRoutes(Routes::with_canary(20, false))]);
    assert!(world.asked.is_empty(), "metrics measured at the old weight do not judge the new one");
    assert_eq!(world.status().canary_weight, 20);
    world.tick();
    assert_eq!(world.weights(), (70, 30), "after a full interval at 20 the run goes on");
}

#[test]
fn a_lost_rollback_is_carried_out_on_the_next_tick() {
    let mut world = initialized(spec(&format!("  stepWeight: 10\n  threshold: 1\n{SUCCESS_RATE}")));
    world.tick();
    world.tick();
    world.canary.error_rate = 1.0;
    tick_and_die(&mut world);
    assert_eq!(world.phase(), Failed);
    assert_eq!(world.weights(), (90, 10));
    assert_ne!(world.observations.canary, Readiness::ScaledToZero);
    world.tick();
    assert_eq!(world.weights(), (100, 0), "the restarted controller puts all traffic back on the primary");
    assert_eq!(world.observations.canary, Readiness::ScaledToZero, "and scales the canary down");
    assert_eq!(world.phase(), Failed);
}

#[test]
fn a_lost_promotion_is_reissued_never_skipped() {
    let mut world = initialized(spec("  stepWeight: 100\n"));
    world.tick();
    world.tick();
    tick_and_die(&mut world);
    assert_eq!(world.phase(), Promoting);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v1"), "Promote was lost");
    let decision = world.tick();
    assert!(decision.actions.contains(&Action::Promote { revision: "v2".into() }));
    assert_eq!(finish(&mut world, 10), Succeeded);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v2"));
    let promotions = actions(&world, |a| matches!(a, Action::Promote { .. }));
    assert_eq!(promotions.len(), 1, "one promotion carried out");
}

#[test]
fn a_lost_scale_up_is_reissued() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    tick_and_die(&mut world);
    assert_eq!(world.phase(), Progressing);
    assert_eq!(world.observations.canary, Readiness::ScaledToZero);
    let decision = world.tick();
    assert!(decision.actions.contains(&Action::ScaleCanaryUp));
    assert_eq!(finish(&mut world, 20), Succeeded);
}

#[test]
fn a_restart_at_every_tick_of_a_run_ends_the_same() {
    // Kill the controller after the status write of tick k, for every k; the run must still end
    // with the same outcome and the primary on the right revision.
    for (error_rate, expected, primary) in [(0.0, Succeeded, "v2"), (0.5, Failed, "v1")] {
        for k in 0..12 {
            let mut world = initialized(spec(&format!("  stepWeight: 25\n  threshold: 2\n{SUCCESS_RATE}")));
            world.canary.error_rate = error_rate;
            for _ in 0..k {
                world.tick();
                if matches!(world.phase(), Succeeded | Failed) {
                    break;
                }
            }
            if !matches!(world.phase(), Succeeded | Failed) {
                tick_and_die(&mut world);
                if world.phase() == Succeeded || world.phase() == Failed {
                    world.tick();
                }
            }
            if !matches!(world.phase(), Succeeded | Failed) {
                finish(&mut world, 30);
            }
            assert_eq!(world.phase(), expected, "killed after tick {k}");
            world.tick();
            assert_eq!(world.weights(), (100, 0), "killed after tick {k}");
            assert_eq!(world.observations.primary_revision.as_deref(), Some(primary), "killed after tick {k}");
            assert_eq!(world.observations.canary, Readiness::ScaledToZero, "killed after tick {k}");
        }
    }
}

#[test]
fn deletion_with_revert_restores_the_target_first() {
    let mut world = initialized(spec_with("  stepWeight: 10\n", "revertOnDeletion: true"));
    world.deploy("v1");
    world.observations.deleting = true;
    world.rollout_ticks = 1;
    let decision = world.tick();
    assert_eq!(world.phase(), Terminating);
    assert!(decision.actions.contains(&Action::RestoreTarget));
    assert!(!decision.actions.contains(&Action::RemoveFinalizer), "not before the target is ready");
    world.tick();
    assert_eq!(world.phase(), Terminating, "the target is still rolling out");
    assert!(world.status().message.contains("waiting for it to be ready"));
    let decision = world.tick();
    assert_eq!(world.phase(), Terminated);
    assert!(decision.actions.contains(&Action::RemoveFinalizer));
}

#[test]
fn deletion_without_revert_lets_go_at_once() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.observations.deleting = true;
    let decision = world.tick();
    assert_eq!(world.phase(), Terminated);
    assert_eq!(decision.actions, [Action::RemoveFinalizer]);
}

#[test]
fn suspend_pauses_everything_until_lifted() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.tick();
    world.tick();
    world.spec.suspend = Some(true);
    for _ in 0..3 {
        let decision = world.tick();
        assert!(decision.actions.is_empty());
        assert!(world.asked.is_empty());
    }
    assert_eq!(world.weights(), (90, 10));
    assert!(world.status().message.contains("suspended"));
    world.spec.suspend = None;
    world.tick();
    assert_eq!(world.weights(), (80, 20));
}

#[test]
fn observed_generation_follows_the_spec_generation() {
    let mut world = initialized(spec("  stepWeight: 10\n"));
    world.generation = 7;
    world.tick();
    assert_eq!(world.status().observed_generation, 7);
    assert!(world.status().conditions.iter().all(|c| c.observed_generation == Some(7)));
    assert_eq!(condition(&world, condition::READY).unwrap().status, "False");
}

#[test]
fn a_question_is_asked_before_any_side_effect_is_decided() {
    // The engine asks for metrics without having decided anything: asking twice is harmless.
    let world = {
        let mut w = initialized(spec(&format!("  stepWeight: 10\n{SUCCESS_RATE}")));
        w.tick();
        w.tick();
        w
    };
    let answers = Default::default();
    let input = TickInput {
        name: "podinfo",
        spec: &world.spec,
        generation: 1,
        status: world.status.as_ref(),
        observed: &world.observations,
        answers: &answers,
        now: world.now,
    };
    assert_eq!(decide(&input), decide(&input));
    assert!(matches!(decide(&input), Step::Need(_)));
}

#[test]
fn a_lost_promotion_is_not_replaced_by_a_newer_unanalysed_revision() {
    let mut world = initialized(spec("  stepWeight: 100\n"));
    world.tick();
    world.tick();
    tick_and_die(&mut world);
    assert_eq!(world.phase(), Promoting);
    world.deploy("v3");
    let decision = world.tick();
    assert!(!decision.actions.iter().any(|a| matches!(a, Action::Promote { .. })), "{:?}", decision.actions);
    assert_eq!(world.phase(), Failed);
    assert_eq!(world.observations.primary_revision.as_deref(), Some("v1"));
    assert_eq!(world.weights(), (100, 0));
    world.tick();
    assert_eq!(world.phase(), Progressing, "v3 gets its own run");
}

#[test]
fn a_revision_that_arrives_during_initialization_is_not_lost() {
    let mut world = World::new("podinfo", spec("  stepWeight: 50\n"), "v1");
    world.rollout_ticks = 2;
    world.tick();
    world.deploy("v2");
    assert!(world.run_until(&[Initialized], 5));
    assert_eq!(world.status().last_promoted_spec.as_deref(), Some("v1"), "the primary was created from v1");
    world.tick();
    assert_eq!(world.phase(), Progressing);
    assert_eq!(world.status().last_applied_spec.as_deref(), Some("v2"));
}
