//! Rendering a MetricTemplate's query: `{{ name }}`, `{{ namespace }}`, `{{ target }}`,
//! `{{ service }}`, `{{ interval }}`, `{{ backend }}` and `{{ variables.x }}`, as Flagger's templates
//! write them (spaces inside the braces optional).

use std::collections::BTreeMap;

/// The values a query can refer to, for one metric of one Canary.
#[derive(Debug, Clone, Default)]
pub struct QueryContext {
    /// The Canary's name.
    pub name: String,
    pub namespace: String,
    /// The target's name (`targetRef.name`).
    pub target: String,
    /// The apex service's name.
    pub service: String,
    /// The metric's window, e.g. `1m`.
    pub interval: String,
    /// The backend being measured: `<target>-canary`, or `<target>-primary` when a metric with
    /// `compareToPrimary` measures the primary (Serin).
    pub backend: String,
    /// `templateVariables` of the metric.
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the query uses {{{{ variables.{0} }}}} but the metric's templateVariables has no {0:?}")]
    MissingVariable(String),
    #[error(
        "the query uses {{{{ {0} }}}}, which is not a known placeholder (name, namespace, target, service, interval, backend, variables.x)"
    )]
    UnknownPlaceholder(String),
    #[error("the query has a {{{{ without a closing }}}} at byte {0}")]
    Unclosed(usize),
}

impl TemplateError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TemplateError::MissingVariable(_) => "missing_variable",
            TemplateError::UnknownPlaceholder(_) => "unknown_placeholder",
            TemplateError::Unclosed(_) => "unclosed_placeholder",
        }
    }
}

/// Fills in every placeholder of `query`.
pub fn render(query: &str, context: &QueryContext) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed(query.len() - rest.len() + open))?;
        out.push_str(&lookup(after[..close].trim(), context)?);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `query` refers to `{{ backend }}`, which a comparison with the primary needs.
pub fn uses_backend(query: &str) -> bool {
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { return false };
        if after[..close].trim() == "backend" {
            return true;
        }
        rest = &after[close + 2..];
    }
    false
}

fn lookup(placeholder: &str, context: &QueryContext) -> Result<String, TemplateError> {
    // Flagger's Go templates also accept a leading dot; both spellings mean the same.
    let key = placeholder.strip_prefix('.').unwrap_or(placeholder);
    let value = match key {
        "name" => &context.name,
        "namespace" => &context.namespace,
        "target" => &context.target,
        "service" => &context.service,
        "interval" => &context.interval,
        "backend" => &context.backend,
        _ => match key.strip_prefix("variables.") {
            Some(variable) => {
                return context
                    .variables
                    .get(variable)
                    .cloned()
                    .ok_or_else(|| TemplateError::MissingVariable(variable.to_string()));
            }
            None => return Err(TemplateError::UnknownPlaceholder(placeholder.to_string())),
        },
    };
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> QueryContext {
        QueryContext {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            interval: "1m".into(),
            backend: "podinfo-canary".into(),
            variables: [("route".to_string(), "/api".to_string())].into(),
        }
    }

    #[test]
    fn every_placeholder_is_filled_with_or_without_spaces() {
        let query = "rate(x{ns=\"{{ namespace }}\",app=\"{{target}}\",svc=\"{{ service }}\",b=\"{{ backend }}\",path=\"{{ variables.route }}\",c=\"{{ name }}\"}[{{ interval }}])";
        assert_eq!(
            render(query, &context()).unwrap(),
            "rate(x{ns=\"test\",app=\"podinfo\",svc=\"podinfo-svc\",b=\"podinfo-canary\",path=\"/api\",c=\"podinfo\"}[1m])"
        );
        assert_eq!(render("{{ .namespace }}", &context()).unwrap(), "test");
        assert_eq!(render("no placeholders", &context()).unwrap(), "no placeholders");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = render("x{a=\"{{ variables.team }}\"}", &context()).unwrap_err();
        assert_eq!(error, TemplateError::MissingVariable("team".into()));
        assert_eq!(
            error.to_string(),
            "the query uses {{ variables.team }} but the metric's templateVariables has no \"team\""
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        assert_eq!(render("{{ pod }}", &context()).unwrap_err(), TemplateError::UnknownPlaceholder("pod".into()));
        assert_eq!(render("abc {{ target", &context()).unwrap_err(), TemplateError::Unclosed(4));
        assert_eq!(TemplateError::Unclosed(4).label(), "unclosed_placeholder");
    }

    #[test]
    fn backend_use_is_detected() {
        assert!(uses_backend("x{b=\"{{backend}}\"}"));
        assert!(!uses_backend("x{b=\"{{ target }}-canary\"}"));
    }
}
