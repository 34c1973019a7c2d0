//! Judging metric values against their ranges, or against the primary, and the no-data policy.

use serin_crds::{
    canary::{CanaryMetric, NoDataPolicy, PrimaryComparison},
    canary_status::{MetricOutcome, MetricResult},
};

use std::time::Duration;

use super::observations::{MetricObservation, MetricValue};

/// What one metric means for the step.
pub(super) enum Verdict {
    Pass,
    /// Hold the step without counting a failure (no data under `onNoData: Hold`).
    Hold(String),
    /// Count a failed check.
    Fail(String),
}

/// How long the current traffic has had to produce evidence, and how long it may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Evidence {
    /// Since the last traffic shift.
    pub waited: Duration,
    /// `thinTrafficTimeout`.
    pub limit: Duration,
}

/// One metric against its range (or the primary), the evidence rule and the no-data policy.
pub(super) fn judge(
    metric: &CanaryMetric,
    observation: Option<&MetricObservation>,
    evidence: Evidence,
) -> (MetricResult, Verdict) {
    let name = metric.name.clone();
    let primary_value = observation.and_then(|o| match &o.primary {
        Some(MetricValue::Value(v)) if v.is_finite() => Some(*v),
        _ => None,
    });
    let result = |value: Option<f64>, outcome: MetricOutcome, reason: Option<String>| MetricResult {
        name: name.clone(),
        value,
        primary_value,
        outcome,
        reason,
    };
    let no_data = |why: String| {
        let verdict = match metric.on_no_data.unwrap_or_default() {
            NoDataPolicy::Fail => Verdict::Fail(format!(
                "no values found for metric {name} ({why}); counted as a failed check (onNoData: Fail)"
            )),
            NoDataPolicy::Hold => {
                Verdict::Hold(format!("no values found for metric {name} ({why}); holding (onNoData: Hold)"))
            }
        };
        (result(None, MetricOutcome::NoData, Some(why)), verdict)
    };
    let error = |why: String| (result(None, MetricOutcome::Error, Some(why.clone())), Verdict::Fail(why));
    let pending = |why: String, holding: String| {
        (
            result(None, MetricOutcome::Pending, Some(why.clone())),
            Verdict::Hold(format!("metric {name}: {why}; {holding}")),
        )
    };
    let value = match observation.map(|o| &o.value) {
        None => return error(format!("metric {name} was not measured")),
        Some(MetricValue::NoData(why)) => return no_data(why.clone()),
        Some(MetricValue::Warming(why)) => {
            return pending(why.clone(), "not enough evidence yet, holding without counting".into());
        }
        Some(MetricValue::TooFewRequests(why)) if evidence.waited < evidence.limit => {
            let left = format_duration(evidence.limit - evidence.waited);
            let holding = format!(
                "not enough evidence yet, holding without counting (thin traffic counts as no data in {left}, thinTrafficTimeout {})",
                format_duration(evidence.limit)
            );
            return pending(why.clone(), holding);
        }
        Some(MetricValue::TooFewRequests(why)) => {
            return no_data(format!(
                "{why}; traffic stayed too thin for {} since the last shift (thinTrafficTimeout {})",
                format_duration(evidence.waited),
                format_duration(evidence.limit)
            ));
        }
        Some(MetricValue::Error(why)) => return error(format!("metric {name} query failed: {why}")),
        Some(MetricValue::Value(v)) if v.is_nan() => return no_data("the query returned NaN".to_string()),
        Some(MetricValue::Value(v)) if v.is_infinite() => {
            return error(format!("metric {name} is {v} (a division by zero in the query?)"));
        }
        Some(MetricValue::Value(v)) => *v,
    };
    let problem = match (&metric.compare_to_primary, primary_value) {
        (Some(comparison), Some(primary)) => against_primary(&name, value, primary, comparison),
        (Some(_), None) if bounds(metric) == (None, None) => {
            let why = match observation.and_then(|o| o.primary.as_ref()) {
                Some(
                    MetricValue::NoData(why)
                    | MetricValue::Error(why)
                    | MetricValue::TooFewRequests(why)
                    | MetricValue::Warming(why),
                ) => why.clone(),
                _ => "no value".to_string(),
            };
            return no_data(format!("the primary has nothing to compare with: {why}"));
        }
        _ => against_bounds(&name, value, bounds(metric)),
    };
    let outcome = if problem.is_some() { MetricOutcome::Failed } else { MetricOutcome::Passed };
    (result(Some(value), outcome, problem.clone()), problem.map_or(Verdict::Pass, Verdict::Fail))
}

/// Whole seconds are what a person reads in a status message.
fn format_duration(duration: Duration) -> String {
    serin_crds::duration::format(Duration::from_secs(duration.as_secs()))
}

/// Three decimals are plenty for a message, and spare readers `71.42857142857143`.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn against_bounds(name: &str, value: f64, (min, max): (Option<f64>, Option<f64>)) -> Option<String> {
    match (min, max) {
        (Some(min), _) if value < min => Some(format!("metric {name} {} is below the minimum {min}", round(value))),
        (_, Some(max)) if value > max => Some(format!("metric {name} {} is above the maximum {max}", round(value))),
        _ => None,
    }
}

fn against_primary(name: &str, canary: f64, primary: f64, comparison: &PrimaryComparison) -> Option<String> {
    match (comparison.max_decrease, comparison.max_increase) {
        (Some(most), _) if primary - canary > most => Some(format!(
            "metric {name} {} is {} below the primary's {} (at most {most} allowed)",
            round(canary),
            round(primary - canary),
            round(primary)
        )),
        (_, Some(most)) if canary - primary > most => Some(format!(
            "metric {name} {} is {} above the primary's {} (at most {most} allowed)",
            round(canary),
            round(canary - primary),
            round(primary)
        )),
        _ => None,
    }
}

/// `thresholdRange`, or Flagger's deprecated `threshold` (a minimum for the success rate, a maximum
/// for everything else).
fn bounds(metric: &CanaryMetric) -> (Option<f64>, Option<f64>) {
    if let Some(range) = &metric.threshold_range {
        return (range.min, range.max);
    }
    match metric.threshold {
        Some(t) if metric.name == "request-success-rate" => (Some(t), None),
        Some(t) => (None, Some(t)),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use serin_crds::canary::ThresholdRange;

    use super::*;

    fn success_rate(compare: Option<PrimaryComparison>, min: Option<f64>) -> CanaryMetric {
        CanaryMetric {
            name: "request-success-rate".into(),
            threshold_range: min.map(|min| ThresholdRange { min: Some(min), max: None }),
            compare_to_primary: compare,
            ..CanaryMetric::default()
        }
    }

    fn seen(canary: MetricValue, primary: Option<MetricValue>) -> MetricObservation {
        MetricObservation { name: "request-success-rate".into(), value: canary, primary }
    }

    /// A judgement a minute after the last shift, with the default five-minute timeout.
    fn judged(metric: &CanaryMetric, observation: Option<&MetricObservation>) -> (MetricResult, Verdict) {
        judge(metric, observation, Evidence { waited: Duration::from_secs(60), limit: Duration::from_secs(300) })
    }

    fn within(points: f64) -> Option<PrimaryComparison> {
        Some(PrimaryComparison { max_decrease: Some(points), max_increase: None })
    }

    #[test]
    fn a_bad_hour_for_every_version_passes_when_compared_to_the_primary() {
        let metric = success_rate(within(1.0), Some(99.0));
        let (result, verdict) = judged(&metric, Some(&seen(MetricValue::Value(90.5), Some(MetricValue::Value(91.0)))));
        assert!(matches!(verdict, Verdict::Pass));
        assert_eq!((result.value, result.primary_value), (Some(90.5), Some(91.0)));
    }

    #[test]
    fn a_canary_further_below_the_primary_than_allowed_fails_and_says_by_how_much() {
        let metric = success_rate(within(1.0), None);
        let (result, verdict) = judged(&metric, Some(&seen(MetricValue::Value(97.0), Some(MetricValue::Value(99.5)))));
        let Verdict::Fail(why) = verdict else { panic!("expected a failure") };
        assert_eq!(why, "metric request-success-rate 97 is 2.5 below the primary's 99.5 (at most 1 allowed)");
        assert_eq!(result.outcome, MetricOutcome::Failed);
    }

    #[test]
    fn latency_may_rise_only_by_the_allowed_amount() {
        let metric = CanaryMetric {
            name: "request-duration".into(),
            compare_to_primary: Some(PrimaryComparison { max_decrease: None, max_increase: Some(50.0) }),
            ..CanaryMetric::default()
        };
        let pass = seen(MetricValue::Value(140.0), Some(MetricValue::Value(100.0)));
        assert!(matches!(judged(&metric, Some(&pass)).1, Verdict::Pass));
        let fail = seen(MetricValue::Value(151.0), Some(MetricValue::Value(100.0)));
        assert!(matches!(judged(&metric, Some(&fail)).1, Verdict::Fail(_)));
    }

    #[test]
    fn without_primary_data_the_range_applies_or_else_it_is_no_data() {
        let primary_empty = Some(MetricValue::NoData("no requests reached the primary".into()));
        let with_range = success_rate(within(1.0), Some(99.0));
        let (_, verdict) = judged(&with_range, Some(&seen(MetricValue::Value(98.0), primary_empty.clone())));
        assert!(matches!(verdict, Verdict::Fail(why) if why.contains("below the minimum 99")));

        let without_range = success_rate(within(1.0), None);
        let (result, verdict) = judged(&without_range, Some(&seen(MetricValue::Value(98.0), primary_empty)));
        assert_eq!(result.outcome, MetricOutcome::NoData);
        assert!(matches!(verdict, Verdict::Fail(why) if why.contains("no requests reached the primary")));
    }

    #[test]
    fn an_infinite_value_is_an_error_not_a_pass() {
        let metric = success_rate(None, Some(99.0));
        let (result, verdict) = judged(&metric, Some(&seen(MetricValue::Value(f64::INFINITY), None)));
        assert_eq!(result.outcome, MetricOutcome::Error);
        assert!(matches!(verdict, Verdict::Fail(why) if why.contains("division by zero")));
    }

    #[test]
    fn too_few_requests_hold_until_the_timeout_then_follow_the_no_data_policy() {
        let metric = success_rate(None, Some(99.0));
        let thin =
            seen(MetricValue::TooFewRequests("only 3 requests reached podinfo-canary in the last 1m".into()), None);
        let early = Evidence { waited: Duration::from_secs(5), limit: Duration::from_secs(60) };
        let (result, verdict) = judge(&metric, Some(&thin), early);
        assert_eq!(result.outcome, MetricOutcome::Pending);
        let Verdict::Hold(why) = verdict else { panic!("expected a hold") };
        assert!(why.contains("not enough evidence yet") && why.contains("in 55s"), "{why}");

        let late = Evidence { waited: Duration::from_secs(61), limit: Duration::from_secs(60) };
        let (result, verdict) = judge(&metric, Some(&thin), late);
        assert_eq!(result.outcome, MetricOutcome::NoData);
        let Verdict::Fail(why) = verdict else { panic!("onNoData: Fail counts thin traffic past the timeout") };
        assert!(why.contains("traffic stayed too thin for 1m1s"), "{why}");
    }

    #[test]
    fn a_warming_source_always_holds() {
        let metric = success_rate(None, Some(99.0));
        let warming = seen(MetricValue::Warming("the scraper started 2s ago".into()), None);
        let late = Evidence { waited: Duration::from_secs(3600), limit: Duration::from_secs(60) };
        let (result, verdict) = judge(&metric, Some(&warming), late);
        assert_eq!(result.outcome, MetricOutcome::Pending);
        assert!(matches!(verdict, Verdict::Hold(_)));
    }
}
