//! Rules the OpenAPI schema cannot say (or says only to an API server), checked the same way in
//! standalone mode and in the controller. Every error names the field by its path.

use schemars::{Schema, SchemaGenerator, json_schema};

use crate::canary::{CanaryAnalysis, CanarySpec, HookType};
use crate::duration;
use crate::traffic_policy::TrafficPolicySpec;

/// One broken rule, with the path of the field that breaks it (e.g. `spec.analysis.stepWeights[2]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { path: path.into(), message: message.into() }
}

/// Builtin metric names that need no template.
pub const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// Checks a Canary spec; returns every broken rule, not just the first.
pub fn validate_canary(spec: &CanarySpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.target_ref.name.is_empty() {
        errors.push(err("spec.targetRef.name", "must not be empty"));
    }
    if !(1..=65535).contains(&spec.service.port) {
        errors.push(err("spec.service.port", format!("{} is not a port (1..=65535)", spec.service.port)));
    }
    if let Some(deadline) = spec.progress_deadline_seconds
        && deadline < 1
    {
        errors.push(err("spec.progressDeadlineSeconds", "must be at least 1"));
    }
    for (field, value) in [("timeout", &spec.service.timeout), ("backendTimeout", &spec.service.backend_timeout)] {
        check_duration(&mut errors, &format!("spec.service.{field}"), value.as_deref());
    }
    validate_analysis(&spec.analysis, &mut errors);
    errors
}

fn validate_analysis(analysis: &CanaryAnalysis, errors: &mut Vec<FieldError>) {
    let path = "spec.analysis";
    let chosen: Vec<&str> = [
        ("stepWeight", analysis.step_weight.is_some()),
        ("stepWeights", analysis.step_weights.is_some()),
        ("iterations", analysis.iterations.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if chosen.len() != 1 {
        let found = if chosen.is_empty() { "none".to_string() } else { chosen.join(" and ") };
        errors.push(err(path, format!("set exactly one of stepWeight, stepWeights or iterations (found {found})")));
    }
    check_duration(errors, &format!("{path}.interval"), analysis.interval.as_deref());
    check_duration(errors, &format!("{path}.thinTrafficTimeout"), analysis.thin_traffic_timeout.as_deref());
    for (field, value) in [
        ("maxWeight", analysis.max_weight),
        ("stepWeightPromotion", analysis.step_weight_promotion),
        ("mirrorWeight", analysis.mirror_weight),
        ("primaryReadyThreshold", analysis.primary_ready_threshold),
        ("canaryReadyThreshold", analysis.canary_ready_threshold),
    ] {
        if let Some(v) = value
            && !(0..=100).contains(&v)
        {
            errors.push(err(format!("{path}.{field}"), format!("{v} is outside 0..=100")));
        }
    }
    if let Some(step) = analysis.step_weight
        && !(1..=100).contains(&step)
    {
        errors.push(err(format!("{path}.stepWeight"), format!("{step} is outside 1..=100")));
    }
    if let Some(steps) = &analysis.step_weights {
        if steps.is_empty() {
            errors.push(err(format!("{path}.stepWeights"), "must list at least one weight"));
        }
        let mut previous = 0;
        for (i, &w) in steps.iter().enumerate() {
            if !(1..=100).contains(&w) {
                errors.push(err(format!("{path}.stepWeights[{i}]"), format!("{w} is outside 1..=100")));
            } else if w <= previous {
                errors.push(err(
                    format!("{path}.stepWeights[{i}]"),
                    format!("{w} does not rise above the previous step {previous}"),
                ));
            }
            previous = previous.max(w);
        }
    }
    if let Some(n) = analysis.iterations
        && n < 1
    {
        errors.push(err(format!("{path}.iterations"), format!("{n} must be at least 1")));
    }
    if !analysis.match_.is_empty() && analysis.iterations.is_none() {
        errors.push(err(format!("{path}.match"), "an A/B test (match) needs iterations"));
    }
    if let Some(affinity) = &analysis.session_affinity {
        if affinity.cookie_name.is_empty() {
            errors.push(err(format!("{path}.sessionAffinity.cookieName"), "must not be empty"));
        }
        if affinity.primary_cookie_name.as_deref() == Some(affinity.cookie_name.as_str()) {
            errors.push(err(format!("{path}.sessionAffinity.primaryCookieName"), "must differ from cookieName"));
        }
        if analysis.iterations.is_some() {
            errors.push(err(
                format!("{path}.sessionAffinity"),
                "session affinity applies to canary releases (stepWeight or stepWeights), not to A/B or blue/green",
            ));
        }
    }
    for (i, metric) in analysis.metrics.iter().enumerate() {
        let mpath = format!("{path}.metrics[{i}]");
        if metric.name.is_empty() {
            errors.push(err(format!("{mpath}.name"), "must not be empty"));
        }
        check_duration(errors, &format!("{mpath}.interval"), metric.interval.as_deref());
        let builtin = BUILTIN_METRICS.contains(&metric.name.as_str());
        if !builtin && metric.template_ref.is_none() && metric.query.is_none() {
            errors.push(err(
                &mpath,
                format!(
                    "metric {:?} is not builtin ({}) and has neither templateRef nor query",
                    metric.name,
                    BUILTIN_METRICS.join(", ")
                ),
            ));
        }
        if let Some(range) = &metric.threshold_range {
            if range.min.is_none() && range.max.is_none() {
                errors.push(err(format!("{mpath}.thresholdRange"), "set min, max or both"));
            }
            if let (Some(min), Some(max)) = (range.min, range.max)
                && min > max
            {
                errors.push(err(format!("{mpath}.thresholdRange"), format!("min {min} is above max {max}")));
            }
        }
        if let Some(compare) = &metric.compare_to_primary {
            let cpath = format!("{mpath}.compareToPrimary");
            match (compare.max_decrease, compare.max_increase) {
                (None, None) => errors.push(err(&cpath, "set maxDecrease, maxIncrease or both")),
                (decrease, increase) => {
                    for (field, value) in [("maxDecrease", decrease), ("maxIncrease", increase)] {
                        if let Some(v) = value
                            && !(v.is_finite() && v >= 0.0)
                        {
                            errors.push(err(format!("{cpath}.{field}"), format!("{v} must be a number >= 0")));
                        }
                    }
                }
            }
        }
    }
    for (i, hook) in analysis.webhooks.iter().enumerate() {
        let hpath = format!("{path}.webhooks[{i}]");
        if hook.name.is_empty() {
            errors.push(err(format!("{hpath}.name"), "must not be empty"));
        }
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            errors.push(err(format!("{hpath}.url"), format!("{:?} is not an http(s) URL", hook.url)));
        }
        check_duration(errors, &format!("{hpath}.timeout"), hook.timeout.as_deref());
    }
}

/// Checks a TrafficPolicy spec.
pub fn validate_traffic_policy(spec: &TrafficPolicySpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.target_ref.name.is_empty() {
        errors.push(err("spec.targetRef.name", "must not be empty"));
    }
    if spec.target_ref.kind != "Service" || !spec.target_ref.group.is_empty() {
        errors.push(err("spec.targetRef", "a TrafficPolicy attaches to a core Service (group \"\", kind Service)"));
    }
    check_duration(&mut errors, "spec.timeout", spec.timeout.as_deref());
    if let Some(retries) = &spec.retries {
        if !(1..=10).contains(&retries.attempts) {
            errors.push(err("spec.retries.attempts", format!("{} is outside 1..=10", retries.attempts)));
        }
        check_duration(&mut errors, "spec.retries.perTryTimeout", retries.per_try_timeout.as_deref());
    }
    if let Some(outlier) = &spec.outlier_detection {
        check_duration(&mut errors, "spec.outlierDetection.interval", outlier.interval.as_deref());
        check_duration(&mut errors, "spec.outlierDetection.baseEjectionTime", outlier.base_ejection_time.as_deref());
        if outlier.max_ejection_percent.is_some_and(|p| !(0..=100).contains(&p)) {
            errors.push(err("spec.outlierDetection.maxEjectionPercent", "must be within 0..=100"));
        }
    }
    if let Some(fault) = &spec.fault {
        if let Some(delay) = &fault.delay {
            check_percent(&mut errors, "spec.fault.delay.percent", delay.percent);
            check_duration(&mut errors, "spec.fault.delay.fixedDelay", Some(&delay.fixed_delay));
        }
        if let Some(abort) = &fault.abort {
            check_percent(&mut errors, "spec.fault.abort.percent", abort.percent);
            if !(200..=599).contains(&abort.http_status) {
                errors.push(err("spec.fault.abort.httpStatus", format!("{} is outside 200..=599", abort.http_status)));
            }
        }
    }
    if let Some(limit) = &spec.rate_limit
        && !(limit.requests_per_second > 0.0 && limit.requests_per_second.is_finite())
    {
        errors.push(err("spec.rateLimit.requestsPerSecond", "must be a positive number"));
    }
    errors
}

fn check_percent(errors: &mut Vec<FieldError>, path: &str, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        errors.push(err(path, format!("{value} is outside 0..=100")));
    }
}

fn check_duration(errors: &mut Vec<FieldError>, path: &str, value: Option<&str>) {
    if let Some(text) = value
        && let Err(e) = duration::parse(text)
    {
        errors.push(err(path, e.to_string()));
    }
}

/// Schema of a field kept verbatim for compatibility (Istio objects Serin does not interpret).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Schema of a webhook `type`: Flagger's names plus the empty string (meaning `rollout`).
pub fn hook_type_schema(_: &mut SchemaGenerator) -> Schema {
    let mut names: Vec<&str> = vec![""];
    names.extend(
        [
            HookType::ConfirmRollout,
            HookType::PreRollout,
            HookType::Rollout,
            HookType::ConfirmTrafficIncrease,
            HookType::ConfirmPromotion,
            HookType::PostRollout,
            HookType::Rollback,
            HookType::Event,
        ]
        .map(HookType::as_str),
    );
    json_schema!({ "type": "string", "enum": names })
}
