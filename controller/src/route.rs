//! The HTTPRoute the controller generates for a Canary, as typed Gateway API values: Flagger's
//! Gateway API router, GAMMA style (the parent is the apex Service). Every platform routes through
//! it: standalone hands it to meshproxy, Kubernetes applies it to the API server.
//!
//! - A canary release: one rule with weighted `<apex>-primary` and `<apex>-canary` backendRefs; with
//!   mirroring, a RequestMirror filter copying requests to the canary.
//! - A/B: the matching requests follow the weights, everyone else stays on the primary.
//! - Session affinity: while a run is under way, a client holding the canary's cookie (or the
//!   primary's) is pinned to that version, and every answer from the weighted rule sets the cookie of
//!   the version that served it. After the run, a client still holding the last run's canary cookie
//!   is sent to the primary and told to forget it.

use gateway_api::apis::standard::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs, HttpRouteRulesBackendRefsFilters,
    HttpRouteRulesBackendRefsFiltersResponseHeaderModifier, HttpRouteRulesBackendRefsFiltersResponseHeaderModifierAdd,
    HttpRouteRulesBackendRefsFiltersType, HttpRouteRulesFilters, HttpRouteRulesFiltersRequestMirror,
    HttpRouteRulesFiltersRequestMirrorBackendRef, HttpRouteRulesFiltersType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeaders, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesMethod,
    HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParams,
    HttpRouteRulesMatchesQueryParamsType, HttpRouteRulesTimeouts, HttpRouteSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serin_crds::canary::{HttpMatch, SessionAffinity, StringMatch};
use serin_crds::{CanarySpec, CanaryStatus};

use crate::engine::Routes;

/// Flagger's default cookie lifetime.
const DEFAULT_COOKIE_MAX_AGE: i32 = 86400;

/// The generated route of the Canary `namespace/…` at `weights`. `status` carries the session
/// affinity cookies of the current and the previous run.
pub fn canary_route(namespace: &str, spec: &CanarySpec, weights: Routes, status: Option<&CanaryStatus>) -> HttpRoute {
    let backends = Backends { spec, port: spec.service.port };
    let analysis = &spec.analysis;
    let timeouts =
        (spec.service.timeout.is_some() || spec.service.backend_timeout.is_some()).then(|| HttpRouteRulesTimeouts {
            request: spec.service.timeout.clone(),
            backend_request: spec.service.backend_timeout.clone(),
        });
    let rule = |matches: Option<Vec<HttpRouteRulesMatches>>, backend_refs: Vec<HttpRouteRulesBackendRefs>| {
        HttpRouteRules { matches, backend_refs: Some(backend_refs), timeouts: timeouts.clone(), ..Default::default() }
    };

    let mut rules = Vec::new();
    let sticky = analysis.session_affinity.as_ref().zip(status);
    if let Some((affinity, status)) = sticky {
        if let Some(cookie) = &status.session_affinity_cookie {
            rules.push(rule(Some(vec![cookie_match(cookie)]), vec![backends.canary(100, None)]));
            if let Some(primary_cookie) = &status.primary_session_affinity_cookie {
                rules.push(rule(Some(vec![cookie_match(primary_cookie)]), vec![backends.primary(100, None)]));
            }
        } else if let Some(previous) = &status.previous_session_affinity_cookie {
            let expire = set_cookie(previous, affinity, Some(-1));
            rules.push(rule(Some(vec![cookie_match(previous)]), vec![backends.primary(100, Some(expire))]));
        }
    }
    let cookies = sticky.and_then(|(affinity, status)| {
        let canary = status.session_affinity_cookie.as_ref()?;
        Some((
            status.primary_session_affinity_cookie.as_ref().map(|c| set_cookie(c, affinity, None)),
            set_cookie(canary, affinity, None),
        ))
    });
    let (primary_cookie, canary_cookie) = cookies.map_or((None, None), |(p, c)| (p, Some(c)));
    let weighted =
        vec![backends.primary(weights.primary, primary_cookie), backends.canary(weights.canary, canary_cookie)];

    if analysis.is_ab_test() {
        // A/B: matching requests follow the weights; everyone else stays on the primary.
        rules.push(rule(Some(analysis.match_.iter().map(gateway_match).collect()), weighted));
        rules.push(rule(None, vec![backends.primary(100, None), backends.canary(0, None)]));
    } else {
        let mut weighted_rule = rule(None, weighted);
        if weights.mirror {
            let percent = analysis.mirror_weight.filter(|w| (1..=100).contains(w)).unwrap_or(100);
            weighted_rule.filters = Some(vec![HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::RequestMirror,
                request_mirror: Some(HttpRouteRulesFiltersRequestMirror {
                    backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef {
                        name: spec.canary_service_name(),
                        port: Some(backends.port),
                        ..Default::default()
                    },
                    percent: Some(percent),
                    fraction: None,
                }),
                ..Default::default()
            }]);
        }
        rules.push(weighted_rule);
    }

    let apex = spec.apex_name().to_string();
    HttpRoute {
        metadata: ObjectMeta { name: Some(apex.clone()), namespace: Some(namespace.to_string()), ..Default::default() },
        spec: HttpRouteSpec {
            parent_refs: Some(vec![HttpRouteParentRefs {
                group: Some(String::new()),
                kind: Some("Service".into()),
                name: apex,
                ..Default::default()
            }]),
            rules: Some(rules),
            ..Default::default()
        },
        status: None,
    }
}

struct Backends<'a> {
    spec: &'a CanarySpec,
    port: i32,
}

impl Backends<'_> {
    fn primary(&self, weight: u8, set_cookie: Option<String>) -> HttpRouteRulesBackendRefs {
        backend(self.spec.primary_service_name(), self.port, weight, set_cookie)
    }

    fn canary(&self, weight: u8, set_cookie: Option<String>) -> HttpRouteRulesBackendRefs {
        backend(self.spec.canary_service_name(), self.port, weight, set_cookie)
    }
}

fn backend(name: String, port: i32, weight: u8, set_cookie: Option<String>) -> HttpRouteRulesBackendRefs {
    let filters = set_cookie.map(|value| {
        vec![HttpRouteRulesBackendRefsFilters {
            r#type: HttpRouteRulesBackendRefsFiltersType::ResponseHeaderModifier,
            response_header_modifier: Some(HttpRouteRulesBackendRefsFiltersResponseHeaderModifier {
                add: Some(vec![HttpRouteRulesBackendRefsFiltersResponseHeaderModifierAdd {
                    name: "Set-Cookie".into(),
                    value,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    HttpRouteRulesBackendRefs { name, port: Some(port), weight: Some(i32::from(weight)), filters, ..Default::default() }
}

/// Requests that carry `cookie` (`name=value`) anywhere in their Cookie header.
fn cookie_match(cookie: &str) -> HttpRouteRulesMatches {
    HttpRouteRulesMatches {
        headers: Some(vec![HttpRouteRulesMatchesHeaders {
            name: "Cookie".into(),
            r#type: Some(HttpRouteRulesMatchesHeadersType::RegularExpression),
            value: format!(".*{}.*", regex_escape(cookie)),
        }]),
        ..Default::default()
    }
}

/// A `Set-Cookie` value for `cookie` (`name=value`) with the Canary's attributes; `max_age` overrides
/// the lifetime (`-1` expires it).
fn set_cookie(cookie: &str, affinity: &SessionAffinity, max_age: Option<i32>) -> String {
    let mut value = format!("{cookie}; Max-Age={}", max_age.or(affinity.max_age).unwrap_or(DEFAULT_COOKIE_MAX_AGE));
    if let Some(domain) = &affinity.domain {
        value.push_str(&format!("; Domain={domain}"));
    }
    if let Some(path) = &affinity.path {
        value.push_str(&format!("; Path={path}"));
    }
    if affinity.http_only == Some(true) {
        value.push_str("; HttpOnly");
    }
    if affinity.secure == Some(true) {
        value.push_str("; Secure");
    }
    if affinity.partitioned == Some(true) {
        value.push_str("; Partitioned");
    }
    if let Some(same_site) = &affinity.same_site {
        value.push_str(&format!("; SameSite={same_site}"));
    }
    value
}

/// An A/B condition (Flagger's Istio-style match) as a Gateway API HTTPRouteMatch.
fn gateway_match(condition: &HttpMatch) -> HttpRouteRulesMatches {
    let path = condition.uri.as_ref().map(|uri| {
        let (kind, value) = match (&uri.exact, &uri.prefix) {
            (Some(exact), _) => (HttpRouteRulesMatchesPathType::Exact, exact.clone()),
            (_, Some(prefix)) => (HttpRouteRulesMatchesPathType::PathPrefix, prefix.clone()),
            _ => (HttpRouteRulesMatchesPathType::RegularExpression, string_regex(uri)),
        };
        HttpRouteRulesMatchesPath { r#type: Some(kind), value: Some(value) }
    });
    let headers: Vec<HttpRouteRulesMatchesHeaders> = condition
        .headers
        .iter()
        .map(|(name, m)| {
            let (kind, value) = exact_or_regex(m);
            let kind = if kind {
                HttpRouteRulesMatchesHeadersType::Exact
            } else {
                HttpRouteRulesMatchesHeadersType::RegularExpression
            };
            HttpRouteRulesMatchesHeaders { name: name.clone(), r#type: Some(kind), value }
        })
        .collect();
    let query_params: Vec<HttpRouteRulesMatchesQueryParams> = condition
        .query_params
        .iter()
        .map(|(name, m)| {
            let (kind, value) = exact_or_regex(m);
            let kind = if kind {
                HttpRouteRulesMatchesQueryParamsType::Exact
            } else {
                HttpRouteRulesMatchesQueryParamsType::RegularExpression
            };
            HttpRouteRulesMatchesQueryParams { name: name.clone(), r#type: Some(kind), value }
        })
        .collect();
    HttpRouteRulesMatches {
        path,
        headers: (!headers.is_empty()).then_some(headers),
        query_params: (!query_params.is_empty()).then_some(query_params),
        method: condition.method.as_ref().and_then(|m| m.exact.as_deref()).and_then(method),
    }
}

/// `(true, value)` for an exact match, `(false, regex)` otherwise.
fn exact_or_regex(m: &StringMatch) -> (bool, String) {
    match &m.exact {
        Some(exact) => (true, exact.clone()),
        None => (false, string_regex(m)),
    }
}

fn method(name: &str) -> Option<HttpRouteRulesMatchesMethod> {
    Some(match name.to_ascii_uppercase().as_str() {
        "GET" => HttpRouteRulesMatchesMethod::Get,
        "HEAD" => HttpRouteRulesMatchesMethod::Head,
        "POST" => HttpRouteRulesMatchesMethod::Post,
        "PUT" => HttpRouteRulesMatchesMethod::Put,
        "DELETE" => HttpRouteRulesMatchesMethod::Delete,
        "CONNECT" => HttpRouteRulesMatchesMethod::Connect,
        "OPTIONS" => HttpRouteRulesMatchesMethod::Options,
        "TRACE" => HttpRouteRulesMatchesMethod::Trace,
        "PATCH" => HttpRouteRulesMatchesMethod::Patch,
        _ => return None,
    })
}

/// A StringMatch that is not `exact`, as one regular expression.
fn string_regex(m: &StringMatch) -> String {
    if let Some(regex) = &m.regex {
        return regex.clone();
    }
    if let Some(prefix) = &m.prefix {
        return format!("^{}.*", regex_escape(prefix));
    }
    if let Some(suffix) = &m.suffix {
        return format!(".*{}$", regex_escape(suffix));
    }
    ".*".to_string()
}

fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if "\\.+*?()|[]{}^$".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use serin_crds::canary::{CanaryAnalysis, CanaryService, TargetRef};

    use super::*;

    fn spec(analysis: CanaryAnalysis) -> CanarySpec {
        CanarySpec {
            target_ref: TargetRef { name: "podinfo".into(), ..Default::default() },
            service: CanaryService { port: 9898, ..Default::default() },
            analysis,
            ..Default::default()
        }
    }

    fn weights_of(rule: &HttpRouteRules) -> Vec<(String, i32)> {
        rule.backend_refs.iter().flatten().map(|b| (b.name.clone(), b.weight.unwrap_or(1))).collect()
    }

    #[test]
    fn a_canary_release_is_one_weighted_rule_on_the_apex_service() {
        let route = canary_route("test", &spec(CanaryAnalysis::default()), Routes::with_canary(30, false), None);
        assert_eq!(route.metadata.name.as_deref(), Some("podinfo"));
        let parent = &route.spec.parent_refs.as_ref().unwrap()[0];
        assert_eq!((parent.kind.as_deref(), parent.name.as_str()), (Some("Service"), "podinfo"));
        let rules = route.spec.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(weights_of(&rules[0]), vec![("podinfo-primary".into(), 70), ("podinfo-canary".into(), 30)]);
    }

    #[test]
    fn sticky_sessions_pin_cookie_holders_and_set_the_cookie_of_the_version_that_answered() {
        let analysis = CanaryAnalysis {
            session_affinity: Some(SessionAffinity {
                cookie_name: "canary".into(),
                primary_cookie_name: Some("primary".into()),
                max_age: Some(600),
                secure: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = CanaryStatus {
            session_affinity_cookie: Some("canary=abc".into()),
            primary_session_affinity_cookie: Some("primary=old".into()),
            ..Default::default()
        };
        let route = canary_route("test", &spec(analysis.clone()), Routes::with_canary(10, false), Some(&status));
        let rules = route.spec.rules.unwrap();
        assert_eq!(rules.len(), 3);
        let header = &rules[0].matches.as_ref().unwrap()[0].headers.as_ref().unwrap()[0];
        assert_eq!((header.name.as_str(), header.value.as_str()), ("Cookie", ".*canary=abc.*"));
        assert_eq!(weights_of(&rules[0]), vec![("podinfo-canary".into(), 100)]);
        assert_eq!(weights_of(&rules[1]), vec![("podinfo-primary".into(), 100)]);
        let set_cookie = |b: &HttpRouteRulesBackendRefs| {
            b.filters.as_ref().unwrap()[0].response_header_modifier.as_ref().unwrap().add.as_ref().unwrap()[0]
                .value
                .clone()
        };
        let weighted = rules[2].backend_refs.as_ref().unwrap();
        assert_eq!(set_cookie(&weighted[0]), "primary=old; Max-Age=600; Secure");
        assert_eq!(set_cookie(&weighted[1]), "canary=abc; Max-Age=600; Secure");

        // After the run the old canary cookie sends its holders to the primary and expires.
        let after = CanaryStatus { previous_session_affinity_cookie: Some("canary=abc".into()), ..Default::default() };
        let route = canary_route("test", &spec(analysis), Routes::with_canary(0, false), Some(&after));
        let rules = route.spec.rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(weights_of(&rules[0]), vec![("podinfo-primary".into(), 100)]);
        assert_eq!(set_cookie(&rules[0].backend_refs.as_ref().unwrap()[0]), "canary=abc; Max-Age=-1; Secure");
    }

    #[test]
    fn ab_matches_follow_the_weights_and_the_rest_stays_on_the_primary() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("x-canary".to_string(), StringMatch { exact: Some("insider".into()), ..Default::default() });
        headers.insert(
            "cookie".to_string(),
            StringMatch { regex: Some("^(.*?;)?(type=insider)(;.*)?$".into()), ..Default::default() },
        );
        let analysis = CanaryAnalysis {
            iterations: Some(5),
            match_: vec![HttpMatch { headers, ..Default::default() }],
            ..Default::default()
        };
        let route = canary_route("test", &spec(analysis), Routes::with_canary(100, false), None);
        let rules = route.spec.rules.unwrap();
        let matched = &rules[0].matches.as_ref().unwrap()[0].headers.as_ref().unwrap();
        assert_eq!(matched.len(), 2);
        assert_eq!(matched[1].r#type, Some(HttpRouteRulesMatchesHeadersType::Exact));
        assert_eq!(weights_of(&rules[0]), vec![("podinfo-primary".into(), 0), ("podinfo-canary".into(), 100)]);
        assert_eq!(weights_of(&rules[1]), vec![("podinfo-primary".into(), 100), ("podinfo-canary".into(), 0)]);
    }
}
