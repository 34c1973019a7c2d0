//! Judging metric values against their ranges and no-data policy.

use serin_crds::{
    canary::{CanaryMetric, NoDataPolicy},
    canary_status::{MetricOutcome, MetricResult},
};

use super::observations::MetricValue;

/// What one metric means for the step.
pub(super) enum Verdict {
    Pass,
    /// Hold the step without counting a failure (no data under `onNoData: Hold`).
    Hold(String),
    /// Count a failed check.
    Fail(String),
}

/// One metric against its range and no-data policy.
pub(super) fn judge(metric: &CanaryMetric, value: Option<&MetricValue>) -> (MetricResult, Verdict) {
    let name = metric.name.clone();
    let no_data = |why: String| {
        let result =
            MetricResult { name: name.clone(), value: None, outcome: MetricOutcome::NoData, reason: Some(why.clone()) };
        let verdict = match metric.on_no_data.unwrap_or_default() {
            NoDataPolicy::Fail => Verdict::Fail(format!(
                "no values found for metric {name} ({why}); counted as a failed check (onNoData: Fail)"
            )),
            NoDataPolicy::Hold => {
                Verdict::Hold(format!("no values found for metric {name} ({why}); holding (onNoData: Hold)"))
            }
        };
        (result, verdict)
    };
    let error = |why: String| {
        let result =
            MetricResult { name: name.clone(), value: None, outcome: MetricOutcome::Error, reason: Some(why.clone()) };
        (result, Verdict::Fail(why))
    };
    let value = match value {
        None => return error(format!("metric {name} was not measured")),
        Some(MetricValue::NoData(why)) => return no_data(why.clone()),
        Some(MetricValue::Error(why)) => return error(format!("metric {name} query failed: {why}")),
        Some(MetricValue::Value(v)) if v.is_nan() => return no_data("the query returned NaN".to_string()),
        Some(MetricValue::Value(v)) => *v,
    };
    let (min, max) = bounds(metric);
    let problem = match (min, max) {
        (Some(min), _) if value < min => Some(format!("metric {name} {value} is below the minimum {min}")),
        (_, Some(max)) if value > max => Some(format!("metric {name} {value} is above the maximum {max}")),
        _ => None,
    };
    let outcome = if problem.is_some() { MetricOutcome::Failed } else { MetricOutcome::Passed };
    let result = MetricResult { name, value: Some(value), outcome, reason: problem.clone() };
    (result, problem.map_or(Verdict::Pass, Verdict::Fail))
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
