//! The filters of a rule, or of one `backendRef`, compiled: header modifiers, mirrors, URL
//! rewrite and redirect. Backend-level filters use the rule's schema (the Gateway API types are
//! distinct but identical), so there is one compile path for both.

use std::sync::Arc;

use gateway_api::apis::standard::httproutes::{
    HttpRouteRulesFilters, HttpRouteRulesFiltersRequestRedirectPathType, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewritePathType,
};
use http::StatusCode;

use super::backend::Backend;
use super::header_modifier::HeaderModifier;
use super::rewrite::{PathChange, Redirect, UrlRewrite};

/// A copy of a share of requests to another backend; its answer is thrown away.
#[derive(Debug)]
pub struct Mirror {
    pub backend: Arc<Backend>,
    /// Share of requests mirrored, 0 to 100.
    pub percent: f64,
}

#[derive(Debug, Default)]
pub struct RuleFilters {
    pub request_headers: HeaderModifier,
    pub response_headers: HeaderModifier,
    pub mirrors: Vec<Mirror>,
    pub rewrite: Option<UrlRewrite>,
    pub redirect: Option<Redirect>,
}

/// Finds a Service by namespace and name and gives it as a backend.
/// Finds a backend by namespace, name and `backendRef.port`; an error is (field under the
/// backendRef, message).
pub type ResolveBackend<'a> = dyn Fn(&str, &str, Option<i32>) -> Result<Arc<Backend>, (String, String)> + 'a;

/// The request and response header modifiers are distinct generated types with the same fields.
macro_rules! compile_modifier {
    ($modifier:expr, $name:literal) => {
        match $modifier {
            None => Err(($name.to_string(), "is missing".to_string())),
            Some(m) => HeaderModifier::compile(
                m.set.iter().flatten().map(|h| (h.name.clone(), h.value.clone())),
                m.add.iter().flatten().map(|h| (h.name.clone(), h.value.clone())),
                m.remove.iter().flatten().cloned(),
            )
            .map_err(|e| ($name.to_string(), e)),
        }
    };
}

/// The URLRewrite and RequestRedirect paths are distinct generated types with the same fields.
macro_rules! compile_path {
    ($path:expr, $prefix_type:path, $prefix_matches_only:expr) => {
        match $path {
            None => Ok(None),
            Some(path) => path_change(
                path.r#type == $prefix_type,
                path.replace_full_path.as_deref(),
                path.replace_prefix_match.as_deref(),
                $prefix_matches_only,
            )
            .map(Some),
        }
    };
}

impl RuleFilters {
    /// `prefix_matches_only` says whether every match of the rule is a PathPrefix match, which
    /// ReplacePrefixMatch needs. Errors name the field from `filters[i]` on.
    pub fn compile(
        filters: &[HttpRouteRulesFilters],
        namespace: &str,
        resolve: &ResolveBackend<'_>,
        prefix_matches_only: bool,
    ) -> Result<RuleFilters, (String, String)> {
        let mut compiled = RuleFilters::default();
        for (i, filter) in filters.iter().enumerate() {
            let at = |(field, message): (String, String)| (format!("filters[{i}].{field}"), message);
            match filter.r#type {
                HttpRouteRulesFiltersType::RequestHeaderModifier => {
                    let modifier = compile_modifier!(filter.request_header_modifier.as_ref(), "requestHeaderModifier");
                    compiled.request_headers.extend(modifier.map_err(at)?);
                }
                HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                    let modifier =
                        compile_modifier!(filter.response_header_modifier.as_ref(), "responseHeaderModifier");
                    compiled.response_headers.extend(modifier.map_err(at)?);
                }
                HttpRouteRulesFiltersType::RequestMirror => {
                    let mirror = compile_mirror(filter, namespace, resolve).map_err(at)?;
                    compiled.mirrors.push(mirror);
                }
                HttpRouteRulesFiltersType::UrlRewrite => {
                    let spec = filter.url_rewrite.as_ref().ok_or_else(|| at(missing("urlRewrite")))?;
                    let path = compile_path!(
                        &spec.path,
                        HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch,
                        prefix_matches_only
                    )
                    .map_err(|(f, m)| at((format!("urlRewrite.path.{f}"), m)))?;
                    compiled.rewrite = Some(UrlRewrite { hostname: spec.hostname.clone(), path });
                }
                HttpRouteRulesFiltersType::RequestRedirect => {
                    let spec = filter.request_redirect.as_ref().ok_or_else(|| at(missing("requestRedirect")))?;
                    let path = compile_path!(
                        &spec.path,
                        HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch,
                        prefix_matches_only
                    )
                    .map_err(|(f, m)| at((format!("requestRedirect.path.{f}"), m)))?;
                    let status = match spec.status_code.unwrap_or(302) {
                        code @ (301 | 302 | 303 | 307 | 308) => StatusCode::from_u16(code as u16).expect("a redirect"),
                        other => {
                            return Err(at((
                                "requestRedirect.statusCode".into(),
                                format!("{other} is not one of 301, 302, 303, 307, 308"),
                            )));
                        }
                    };
                    let port = match spec.port {
                        None => None,
                        Some(port) => Some(
                            u16::try_from(port)
                                .ok()
                                .filter(|p| *p > 0)
                                .ok_or_else(|| at(("requestRedirect.port".into(), format!("{port} is not a port"))))?,
                        ),
                    };
                    let scheme = spec
                        .scheme
                        .as_ref()
                        .and_then(|s| serde_json::to_value(s).ok())
                        .and_then(|v| v.as_str().map(str::to_string));
                    compiled.redirect = Some(Redirect { scheme, hostname: spec.hostname.clone(), port, path, status });
                }
                ref other => {
                    return Err(at(("type".into(), format!("filter {other:?} is not supported by meshproxy"))));
                }
            }
        }
        if compiled.redirect.is_some() && compiled.rewrite.is_some() {
            return Err((
                "filters".into(),
                "RequestRedirect and URLRewrite cannot be used together (Gateway API forbids it)".into(),
            ));
        }
        Ok(compiled)
    }
}

fn missing(field: &str) -> (String, String) {
    (field.to_string(), "is missing".to_string())
}

fn compile_mirror(
    filter: &HttpRouteRulesFilters,
    namespace: &str,
    resolve: &ResolveBackend<'_>,
) -> Result<Mirror, (String, String)> {
    let spec = filter.request_mirror.as_ref().ok_or_else(|| missing("requestMirror"))?;
    let reference = &spec.backend_ref;
    let kind = reference.kind.as_deref().unwrap_or("Service");
    if kind != "Service" || !reference.group.as_deref().unwrap_or("").is_empty() {
        return Err(("requestMirror.backendRef.kind".into(), format!("only Services can be mirrored to, not {kind}")));
    }
    let mirror_namespace = reference.namespace.as_deref().unwrap_or(namespace);
    let backend = resolve(mirror_namespace, &reference.name, reference.port)
        .map_err(|(field, e)| (format!("requestMirror.backendRef.{field}"), e))?;
    let percent = match (spec.percent, &spec.fraction) {
        (Some(_), Some(_)) => {
            return Err(("requestMirror".into(), "set percent or fraction, not both".into()));
        }
        (Some(percent), None) if (0..=100).contains(&percent) => f64::from(percent),
        (Some(percent), None) => {
            return Err(("requestMirror.percent".into(), format!("{percent} is outside 0..=100")));
        }
        (None, Some(fraction)) => {
            let denominator = fraction.denominator.unwrap_or(100);
            if denominator < 1 || fraction.numerator < 0 || fraction.numerator > denominator {
                return Err((
                    "requestMirror.fraction".into(),
                    format!("{}/{denominator} is not a fraction in 0..=1", fraction.numerator),
                ));
            }
            100.0 * f64::from(fraction.numerator) / f64::from(denominator)
        }
        (None, None) => 100.0,
    };
    Ok(Mirror { backend, percent })
}

fn path_change(
    prefix: bool,
    full: Option<&str>,
    replace_prefix: Option<&str>,
    prefix_matches_only: bool,
) -> Result<PathChange, (String, String)> {
    if prefix {
        if !prefix_matches_only {
            return Err((
                "type".into(),
                "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match".into(),
            ));
        }
        let value = replace_prefix.ok_or_else(|| missing("replacePrefixMatch"))?;
        Ok(PathChange::Prefix(value.to_string()))
    } else {
        let value = full.ok_or_else(|| missing("replaceFullPath"))?;
        if !value.starts_with('/') {
            return Err(("replaceFullPath".into(), format!("{value:?} must start with /")));
        }
        Ok(PathChange::Full(value.to_string()))
    }
}
