//! Which strategy a Canary runs and the weight arithmetic of each, with Flagger's rules.

use std::time::Duration;

use serin_crds::canary::CanaryAnalysis;

/// The rollout strategy, chosen as Flagger does: `match` with `iterations` is A/B, `iterations`
/// alone is blue/green, anything else is a canary release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Canary(CanarySteps),
    AbTesting { iterations: i32 },
    BlueGreen { iterations: i32, mirror: bool },
}

/// The steps of a canary release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanarySteps {
    /// `stepWeight`: a linear increment.
    pub step_weight: Option<i32>,
    /// `stepWeights`: absolute weights.
    pub step_weights: Vec<i32>,
    /// `maxWeight`, or the last of `stepWeights`.
    pub max_weight: i32,
    /// One mirror-only step at weight 0 before the first shift.
    pub mirror: bool,
}

impl Strategy {
    pub fn of(analysis: &CanaryAnalysis) -> Strategy {
        let iterations = analysis.iterations.unwrap_or(0);
        if analysis.is_ab_test() {
            return Strategy::AbTesting { iterations };
        }
        if iterations > 0 {
            return Strategy::BlueGreen { iterations, mirror: analysis.mirror.unwrap_or(false) };
        }
        let step_weights = analysis.step_weights.clone().unwrap_or_default();
        // Flagger: with stepWeights the cap is the last step (maxWeight is ignored).
        let max_weight = match (step_weights.last(), analysis.max_weight) {
            (Some(&last), _) if analysis.step_weight.unwrap_or(0) <= 0 => last.min(100),
            (_, Some(max)) if max > 0 => max.min(100),
            _ => 100,
        };
        Strategy::Canary(CanarySteps {
            step_weight: analysis.step_weight.filter(|&s| s > 0),
            step_weights,
            max_weight,
            mirror: analysis.mirror.unwrap_or(false),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Canary(_) => "canary",
            Strategy::AbTesting { .. } => "A/B testing",
            Strategy::BlueGreen { .. } => "blue/green",
        }
    }
}

impl CanarySteps {
    /// How much the canary weight grows from `weight` (Flagger's `nextStepWeight`).
    ///
    /// With `stepWeight` this is the step, and the last step may overshoot `maxWeight`: with
    /// `maxWeight: 50, stepWeight: 20` the weights are 20, 40, 60 and then promotion. Flagger
    /// documents that; Serin keeps it so a moved Canary behaves the same.
    pub fn next_step(&self, weight: i32) -> i32 {
        if let Some(step) = self.step_weight {
            return step;
        }
        if self.step_weights.is_empty() {
            return 0;
        }
        let room = 100 - weight;
        if room <= 0 {
            return 1;
        }
        if weight == 0 {
            return room.min(self.step_weights[0]);
        }
        for pair in self.step_weights.windows(2) {
            if pair[0] == weight {
                return room.min(pair[1] - weight);
            }
        }
        room
    }

    /// The canary weight after one step from `weight`, within 0..=100.
    pub fn advance(&self, weight: i32) -> i32 {
        (weight + self.next_step(weight)).clamp(0, 100)
    }
}

/// The analysis interval: `analysis.interval`, default 60s. Flagger floors it at 10s; Serin floors it
/// at 1s so demos and end-to-end tests can step quickly.
/// How long a step waits for enough requests before thin traffic counts as no data: the
/// analysis' `thinTrafficTimeout`, else five intervals and at least a minute.
pub fn thin_traffic_timeout(analysis: &CanaryAnalysis) -> Duration {
    analysis
        .thin_traffic_timeout
        .as_deref()
        .and_then(|text| serin_crds::duration::parse(text).ok())
        .unwrap_or_else(|| (interval(analysis) * 5).max(Duration::from_secs(60)))
}

pub fn interval(analysis: &CanaryAnalysis) -> Duration {
    let parsed = analysis
        .interval
        .as_deref()
        .and_then(|text| serin_crds::duration::parse(text).ok())
        .unwrap_or(Duration::from_secs(60));
    parsed.max(Duration::from_secs(1))
}

/// Failed checks that end a run: `analysis.threshold`, or 1 when unset or not positive.
pub fn threshold(analysis: &CanaryAnalysis) -> i32 {
    analysis.threshold.filter(|&t| t > 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(step_weight: Option<i32>, step_weights: Option<Vec<i32>>, max_weight: Option<i32>) -> CanarySteps {
        let analysis = CanaryAnalysis { step_weight, step_weights, max_weight, ..Default::default() };
        match Strategy::of(&analysis) {
            Strategy::Canary(steps) => steps,
            other => panic!("expected a canary strategy, got {other:?}"),
        }
    }

    fn weights_until_max(steps: &CanarySteps) -> Vec<i32> {
        let mut weight = 0;
        let mut seen = Vec::new();
        while weight < steps.max_weight {
            weight = steps.advance(weight);
            seen.push(weight);
        }
        seen
    }

    #[test]
    fn linear_steps_overshoot_max_weight_like_flagger() {
        assert_eq!(weights_until_max(&steps(Some(20), None, Some(50))), [20, 40, 60]);
        assert_eq!(weights_until_max(&steps(Some(10), None, Some(50))), [10, 20, 30, 40, 50]);
        assert_eq!(weights_until_max(&steps(Some(30), None, None)), [30, 60, 90, 100]);
    }

    #[test]
    fn listed_steps_follow_the_list_and_ignore_max_weight() {
        let s = steps(None, Some(vec![1, 2, 10, 80]), Some(50));
        assert_eq!(s.max_weight, 80);
        let primary: Vec<i32> = std::iter::once(0).chain(weights_until_max(&s)).map(|w| 100 - w).collect();
        assert_eq!(primary, [100, 99, 98, 90, 20]);
    }

    #[test]
    fn strategy_selection_follows_flagger() {
        let ab = CanaryAnalysis { iterations: Some(5), match_: vec![Default::default()], ..Default::default() };
        assert_eq!(Strategy::of(&ab), Strategy::AbTesting { iterations: 5 });
        let bg = CanaryAnalysis { iterations: Some(5), mirror: Some(true), ..Default::default() };
        assert_eq!(Strategy::of(&bg), Strategy::BlueGreen { iterations: 5, mirror: true });
    }

    #[test]
    fn interval_and_threshold_defaults() {
        let analysis = CanaryAnalysis::default();
        assert_eq!(interval(&analysis), Duration::from_secs(60));
        assert_eq!(threshold(&analysis), 1);
        let fast = CanaryAnalysis { interval: Some("100ms".into()), threshold: Some(-3), ..Default::default() };
        assert_eq!(interval(&fast), Duration::from_secs(1));
        assert_eq!(threshold(&fast), 1);
        assert_eq!(thin_traffic_timeout(&analysis), Duration::from_secs(300));
        assert_eq!(thin_traffic_timeout(&fast), Duration::from_secs(60));
        let set = CanaryAnalysis { thin_traffic_timeout: Some("20s".into()), ..Default::default() };
        assert_eq!(thin_traffic_timeout(&set), Duration::from_secs(20));
    }
}
