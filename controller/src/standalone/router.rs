//! Standalone routing: the whole meshproxy config, composed from the endpoint groups, the primary
//! groups the controller owns, one generated HTTPRoute per Canary (Flagger's Gateway API router:
//! weighted primary and canary backendRefs, A/B matches, a mirror filter) and the user's own
//! routes and TrafficPolicies; pushed through meshproxy's admin API whenever it differs from what
//! meshproxy runs.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use serde_json::{Value, json};
use serin_crds::canary::{HttpMatch, StringMatch};

use super::manifests::{LoadedCanary, Manifests};
use super::state::{RouteWeights, StandaloneState};
use crate::outbound::Outbound;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The config meshproxy should run now.
pub fn desired_config(manifests: &Manifests, state: &StandaloneState) -> Value {
    let mut services: Vec<Value> = Vec::new();
    for group in &manifests.groups {
        services.push(serde_json::to_value(group).expect("a group serializes"));
    }
    let mut routes = manifests.routes.clone();
    for canary in &manifests.canaries {
        let record = state.canaries.get(&canary.key());
        let declared = |name: &str| manifests.group(&canary.namespace, name).is_some();
        if !declared(canary.apex()) && canary.apex() != canary.canary_group() {
            services.push(json!({"name": canary.apex(), "namespace": canary.namespace}));
        }
        let Some(primary) = record.and_then(|r| r.primary.as_ref()) else {
            // Not initialized yet: no primary, so the apex has no route until the first tick.
            continue;
        };
        services.push(serde_json::to_value(primary).expect("a group serializes"));
        let weights = record.and_then(|r| r.routes).unwrap_or(RouteWeights { primary: 100, canary: 0, mirror: false });
        routes.push(route_for(canary, weights));
    }
    json!({"services": services, "routes": routes, "trafficPolicies": manifests.traffic_policies})
}

/// The HTTPRoute of one Canary at the given weights.
pub fn route_for(canary: &LoadedCanary, weights: RouteWeights) -> Value {
    let port = canary.spec.service.port;
    let backends = |primary: u8, canary_weight: u8| {
        json!([
            {"name": canary.primary_group(), "port": port, "weight": primary},
            {"name": canary.canary_group(), "port": port, "weight": canary_weight},
        ])
    };
    let timeouts = canary.spec.service.timeout.as_ref().map(|t| json!({"request": t}));
    let with_timeouts = |mut rule: Value| {
        if let Some(timeouts) = &timeouts {
            rule["timeouts"] = timeouts.clone();
        }
        rule
    };
    let mut rules = Vec::new();
    let analysis = &canary.spec.analysis;
    if !analysis.match_.is_empty() && analysis.iterations.unwrap_or(0) > 0 {
        // A/B: matching requests follow the weights; everyone else stays on the primary.
        let matches: Vec<Value> = analysis.match_.iter().map(gateway_match).collect();
        rules
            .push(with_timeouts(json!({"matches": matches, "backendRefs": backends(weights.primary, weights.canary)})));
        rules.push(with_timeouts(json!({"backendRefs": backends(100, 0)})));
    } else {
        let mut rule = json!({"backendRefs": backends(weights.primary, weights.canary)});
        if weights.mirror {
            let percent = analysis.mirror_weight.filter(|w| (1..=100).contains(w)).unwrap_or(100);
            rule["filters"] = json!([{
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": canary.canary_group(), "port": port}, "percent": percent},
            }]);
        }
        rules.push(with_timeouts(rule));
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": canary.apex(), "namespace": canary.namespace},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": canary.apex()}], "rules": rules},
    })
}

/// An A/B condition (Flagger's Istio-style match) as a Gateway API HTTPRouteMatch.
fn gateway_match(condition: &HttpMatch) -> Value {
    let mut out = json!({});
    if let Some(uri) = &condition.uri {
        let (kind, value) = match (&uri.exact, &uri.prefix, &uri.regex) {
            (Some(exact), _, _) => ("Exact", exact.clone()),
            (_, Some(prefix), _) => ("PathPrefix", prefix.clone()),
            _ => ("RegularExpression", string_regex(uri)),
        };
        out["path"] = json!({"type": kind, "value": value});
    }
    let header_list = |map: &std::collections::BTreeMap<String, StringMatch>| -> Vec<Value> {
        map.iter()
            .map(|(name, m)| match &m.exact {
                Some(exact) => json!({"type": "Exact", "name": name, "value": exact}),
                None => json!({"type": "RegularExpression", "name": name, "value": string_regex(m)}),
            })
            .collect()
    };
    if !condition.headers.is_empty() {
        out["headers"] = json!(header_list(&condition.headers));
    }
    if !condition.query_params.is_empty() {
        out["queryParams"] = json!(header_list(&condition.query_params));
    }
    if let Some(method) = condition.method.as_ref().and_then(|m| m.exact.clone()) {
        out["method"] = json!(method);
    }
    out
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

/// meshproxy's admin API.
#[derive(Clone)]
pub struct MeshproxyAdmin {
    base: String,
    client: Outbound,
}

impl MeshproxyAdmin {
    pub fn new(base: &str, client: Outbound) -> MeshproxyAdmin {
        MeshproxyAdmin { base: base.trim_end_matches('/').to_string(), client }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The generation and config meshproxy runs.
    pub async fn current(&self) -> Result<(u64, Value), String> {
        let request =
            Request::get(format!("{}/config", self.base)).body(Full::new(Bytes::new())).expect("a valid request");
        let reply =
            self.client.send(request, ADMIN_TIMEOUT, false).await.map_err(|e| format!("meshproxy admin: {e}"))?;
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|_| format!("meshproxy admin answered {}: {}", reply.status, reply.body_excerpt(200)))?;
        Ok((body["generation"].as_u64().unwrap_or(0), body["config"].clone()))
    }

    /// Replaces meshproxy's config; meshproxy refuses a bad one and says why.
    pub async fn replace(&self, config: &Value) -> Result<u64, String> {
        let request = Request::put(format!("{}/config", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(config.to_string())))
            .expect("a valid request");
        let reply =
            self.client.send(request, ADMIN_TIMEOUT, false).await.map_err(|e| format!("meshproxy admin: {e}"))?;
        if !reply.status.is_success() {
            return Err(format!("meshproxy refused the config ({}): {}", reply.status, reply.body_excerpt(600)));
        }
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        Ok(body["generation"].as_u64().unwrap_or(0))
    }
}
