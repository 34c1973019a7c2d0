//! Property tests: invariants that hold for any Canary and any sequence of observations.

mod common;

use common::*;
use proptest::prelude::*;
use serin_controller::engine::{Action, HookOutcome, MetricValue, OperatorAction};
use serin_controller::simulate::World;
use serin_crds::{CanaryPhase, CanarySpec, canary::HookType};

/// Any valid analysis: a canary (stepWeight or stepWeights), A/B or blue/green, with a success-rate
/// metric and a rollout hook.
fn any_analysis() -> impl Strategy<Value = String> {
    let canary_linear =
        (1..=100i32, proptest::option::of(1..=100i32), any::<bool>()).prop_map(|(step, max, mirror)| {
            let max = max.map(|m| format!("  maxWeight: {m}\n")).unwrap_or_default();
            format!("  stepWeight: {step}\n{max}  mirror: {mirror}\n")
        });
    let canary_listed = proptest::collection::btree_set(1..=100i32, 1..6).prop_map(|steps| {
        let list: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        format!("  stepWeights: [{}]\n", list.join(", "))
    });
    let blue_green =
        (1..8i32, any::<bool>()).prop_map(|(n, mirror)| format!("  iterations: {n}\n  mirror: {mirror}\n"));
    let ab = (1..8i32)
        .prop_map(|n| format!("  iterations: {n}\n  match:\n  - headers:\n      x-canary: {{exact: insider}}\n"));
    (prop_oneof![canary_linear, canary_listed, blue_green, ab], 1..5i32, proptest::option::of(0..=100i32)).prop_map(
        |(strategy, threshold, promotion_step)| {
            let promotion = promotion_step.map(|s| format!("  stepWeightPromotion: {s}\n")).unwrap_or_default();
            format!(
                "{strategy}  threshold: {threshold}\n{promotion}{SUCCESS_RATE}  webhooks:\n  - {{name: load, type: rollout, url: http://load.test/}}\n  - {{name: gates, type: confirm-rollout, url: http://gate.test/}}\n  - {{name: steps, type: confirm-traffic-increase, url: http://gate.test/}}\n  - {{name: promotion, type: confirm-promotion, url: http://gate.test/}}\n  - {{name: stop, type: rollback, url: http://gate.test/}}\n  - {{name: before, type: pre-rollout, url: http://gate.test/}}\n"
            )
        },
    )
}

/// What the world does on one tick.
#[derive(Debug, Clone)]
enum Event {
    Nothing,
    Metric(MetricValue),
    RolloutHookFails,
    GateClosed(HookType),
    RollbackSignalled,
    Operator(OperatorAction),
    NewRevision,
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => Just(Event::Nothing),
        3 => (90.0..100.0f64).prop_map(|v| Event::Metric(MetricValue::Value(v))),
        1 => Just(Event::Metric(MetricValue::NoData("empty".into()))),
        1 => Just(Event::Metric(MetricValue::Error("refused".into()))),
        1 => Just(Event::RolloutHookFails),
        2 => prop_oneof![
            Just(HookType::ConfirmRollout),
            Just(HookType::ConfirmTrafficIncrease),
            Just(HookType::ConfirmPromotion),
            Just(HookType::Rollback),
            Just(HookType::PreRollout)
        ]
        .prop_map(Event::GateClosed),
        1 => Just(Event::RollbackSignalled),
        1 => prop_oneof![
            Just(OperatorAction::Promote),
            Just(OperatorAction::Abort),
            Just(OperatorAction::Pause),
            Just(OperatorAction::Resume),
            Just(OperatorAction::Retry)
        ]
        .prop_map(Event::Operator),
        1 => Just(Event::NewRevision),
    ]
}

fn threshold(spec: &CanarySpec) -> i32 {
    serin_controller::engine::strategy::threshold(&spec.analysis)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_sequence(analysis in any_analysis(), events in proptest::collection::vec(any_event(), 1..120)) {
        let spec = spec(&analysis);
        let threshold = threshold(&spec);
        let mut world = initialized(spec);
        let mut revisions = 2;
        // Within one run: the canary weight when failed checks reached the threshold, if they did.
        let mut weight_at_threshold: Option<i32> = None;
        let mut run = world.status().last_applied_spec.clone();
        for event in events {
            world.metric_overrides.clear();
            world.hook_outcomes.clear();
            match event {
                Event::Nothing => {}
                Event::Metric(value) => { world.metric_overrides.insert("request-success-rate".into(), value); }
                Event::RolloutHookFails => {
                    world.hook_outcomes.insert(HookType::Rollout, HookOutcome::Failed { hook: "load".into(), message: "500".into() });
                }
                Event::GateClosed(kind) => {
                    world.hook_outcomes.insert(kind, HookOutcome::Failed { hook: kind.to_string(), message: "closed".into() });
                }
                Event::RollbackSignalled => { world.hook_outcomes.insert(HookType::Rollback, HookOutcome::Succeeded); }
                Event::Operator(action) => world.request(action),
                Event::NewRevision => { revisions += 1; world.deploy(&format!("v{revisions}")); }
            }
            let before = world.status().clone();
            let decision = world.tick();
            let after = &decision.status;
            if after.last_applied_spec != run || after.phase == CanaryPhase::Progressing && before.phase != CanaryPhase::Progressing {
                run = after.last_applied_spec.clone();
                weight_at_threshold = None;
            }
            // Reached the threshold in this very tick: no route of this tick may raise the weight.
            let limit = if after.failed_checks >= threshold { Some(before.canary_weight) } else { weight_at_threshold };
            for action in &decision.actions {
                if let Action::SetRoutes(routes) = action {
                    prop_assert!(routes.primary <= 100 && routes.canary <= 100);
                    prop_assert_eq!(u16::from(routes.primary) + u16::from(routes.canary), 100);
                    if let Some(limit) = limit {
                        prop_assert!(i32::from(routes.canary) <= limit, "weight rose after the threshold: {} > {}", routes.canary, limit);
                    }
                }
                if let Action::Promote { .. } = action {
                    prop_assert!(before.failed_checks < threshold && after.failed_checks < threshold,
                        "promoted with {} failed checks (threshold {})", after.failed_checks, threshold);
                }
            }
            prop_assert!((0..=100).contains(&after.canary_weight));
            if after.phase.is_running() {
                prop_assert!(after.failed_checks < threshold, "still running with {} failed checks", after.failed_checks);
            }
            if after.failed_checks >= threshold && weight_at_threshold.is_none() {
                weight_at_threshold = Some(before.canary_weight);
            }
            world.observations.operator = None;
        }
    }

    #[test]
    fn every_run_ends_when_observations_stop_changing(
        analysis in any_analysis(),
        success_rate in prop_oneof![Just(100.0f64), Just(50.0f64)],
        rollout_ticks in 0..3u32,
    ) {
        let spec = spec(&analysis);
        let mut world = initialized(spec);
        world.rollout_ticks = rollout_ticks;
        world.metric_overrides.insert("request-success-rate".into(), MetricValue::Value(success_rate));
        // 100 steps at most, plus iterations, plus the phases around them, each slowed by rollouts.
        let bound = (4 + 100 + 10 + 10) * (1 + rollout_ticks as usize);
        let ended = world.run_until(&[CanaryPhase::Succeeded, CanaryPhase::Failed], bound);
        prop_assert!(ended, "still {:?} after {} ticks: {}", world.phase(), bound, world.status().message);
        let expected = if success_rate >= 99.0 { CanaryPhase::Succeeded } else { CanaryPhase::Failed };
        prop_assert_eq!(world.phase(), expected);
        world.tick();
        prop_assert_eq!(world.weights(), (100, 0));
    }
}

// `onNoData: Hold` is left out of the termination property on purpose: with no traffic at all it
// holds until traffic arrives, which is what it is for (engine_analysis.rs tests it).

#[test]
fn a_world_left_alone_stays_idle() {
    let mut world = World::new("podinfo", spec("  stepWeight: 10\n"), "v1");
    assert!(world.run_until(&[CanaryPhase::Initialized], 3));
    for _ in 0..20 {
        let decision = world.tick();
        assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    }
}
