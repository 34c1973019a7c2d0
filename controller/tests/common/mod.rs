//! Shared builders for the engine's tests: Canary specs from YAML, and a world that ticks them.
#![allow(dead_code)]

use serin_controller::engine::Action;
use serin_controller::simulate::World;
use serin_crds::{CanaryPhase, CanarySpec};

/// A Canary spec from the YAML of its `analysis` (indented as under `analysis:`), plus extra
/// top-level spec YAML.
pub fn spec_with(analysis: &str, extra: &str) -> CanarySpec {
    let yaml = format!(
        "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\nservice: {{port: 80}}\n{extra}\nanalysis:\n{analysis}"
    );
    let spec: CanarySpec = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("bad test spec: {e}\n{yaml}"));
    let errors = serin_crds::validation::validate_canary(&spec);
    assert!(errors.is_empty(), "test spec does not validate: {errors:?}");
    spec
}

pub fn spec(analysis: &str) -> CanarySpec {
    spec_with(analysis, "")
}

/// A world initialized on v1, with v2 just deployed (the next tick starts the run).
pub fn initialized(spec: CanarySpec) -> World {
    let mut world = World::new("podinfo", spec, "v1");
    assert!(world.run_until(&[CanaryPhase::Initialized], 5), "did not initialize: {:?}", world.status);
    world.deploy("v2");
    world
}

/// (phase, primary weight, canary weight) after each of `n` ticks.
pub fn trace(world: &mut World, n: usize) -> Vec<(CanaryPhase, u8, u8)> {
    (0..n)
        .map(|_| {
            world.tick();
            let (p, c) = world.weights();
            (world.phase(), p, c)
        })
        .collect()
}

/// Ticks until the run ends; panics if it does not end within `limit` ticks.
pub fn finish(world: &mut World, limit: usize) -> CanaryPhase {
    assert!(
        world.run_until(&[CanaryPhase::Succeeded, CanaryPhase::Failed], limit),
        "run did not end within {limit} ticks: {:?}",
        world.status
    );
    world.phase()
}

/// The actions of the world's history that satisfy `pred`.
pub fn actions(world: &World, pred: impl Fn(&Action) -> bool) -> Vec<Action> {
    world.history.iter().map(|(_, a)| a.clone()).filter(|a| pred(a)).collect()
}

pub fn condition<'a>(
    world: &'a World,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    world.status().conditions.iter().find(|c| c.type_ == type_)
}

pub const SUCCESS_RATE: &str =
    "  metrics:\n  - name: request-success-rate\n    thresholdRange: {min: 99}\n    interval: 1m\n";
