use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::{HttpRoute, HttpRouteRules, HttpRouteRulesFiltersType};

use super::backend::{Backend, BackendEndpoint, pick_weighted};
use super::filters::HeaderModifier;
use super::host::{host_forms, normalize_host};
use super::matching::{Precedence, RequestFacts, RequestMatch};
use crate::config::{ConfigError, ProxyConfig};

type ServiceKey = (String, String);

/// A match attached to a service, with what orders it: its precedence, then its place in the
/// config (earlier routes and rules first).
type AttachedMatch = (Precedence, usize, RequestMatch, Arc<Rule>);

/// A service as the proxy knows it: its endpoints, and its rules in precedence order.
#[derive(Debug)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// Rules of the HTTPRoutes attached to this service. Empty: requests go to the service's own
    /// endpoints, as to a plain Kubernetes Service.
    rules: Vec<(RequestMatch, Arc<Rule>)>,
    direct: Arc<Rule>,
}

/// One HTTPRoute rule, compiled.
#[derive(Debug)]
pub struct Rule {
    /// `namespace/name` of the HTTPRoute, or `-` for direct traffic to a service.
    pub route: String,
    pub backends: Vec<Arc<Backend>>,
    pub timeout: Option<Duration>,
    pub request_headers: HeaderModifier,
    pub response_headers: HeaderModifier,
}

impl Rule {
    pub fn pick_backend(&self) -> Option<&Arc<Backend>> {
        pick_weighted(&self.backends)
    }
}

/// Everything a request needs to be routed, built from one config.
#[derive(Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<ServiceEntry>>,
}

impl ServiceEntry {
    /// The rule for a request, or None when the service has routes and none matches (404).
    pub fn rule_for(&self, request: &RequestFacts<'_>) -> Option<&Arc<Rule>> {
        if self.rules.is_empty() {
            return Some(&self.direct);
        }
        self.rules.iter().find(|(m, _)| m.matches(request)).map(|(_, rule)| rule)
    }
}

impl RouteTable {
    /// The service a Host header or `:authority` names.
    pub fn service(&self, authority: &str) -> Option<&Arc<ServiceEntry>> {
        self.hosts.get(&normalize_host(authority))
    }

    pub fn compile(config: &ProxyConfig) -> Result<RouteTable, ConfigError> {
        let endpoints: HashMap<ServiceKey, Vec<BackendEndpoint>> = config
            .services
            .iter()
            .map(|service| {
                let list = service
                    .endpoints
                    .iter()
                    .filter_map(|e| {
                        let version = e.labels.get("version").or_else(|| service.labels.get("version"));
                        Some(BackendEndpoint {
                            address: e.address.parse().ok()?,
                            version: Arc::from(version.map(String::as_str).unwrap_or("")),
                        })
                    })
                    .collect();
                (service.key(), list)
            })
            .collect();

        // Rules of every route, grouped by the service they attach to.
        let mut attached: BTreeMap<ServiceKey, Vec<AttachedMatch>> = BTreeMap::new();
        let mut order = 0;
        for (route_index, route) in config.routes.iter().enumerate() {
            let namespace = route.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let name = route.metadata.name.clone().unwrap_or_default();
            let object = format!("HTTPRoute {namespace}/{name}");
            if name.is_empty() {
                return Err(ConfigError::new(format!("routes[{route_index}]"), "metadata.name", "must not be empty"));
            }
            let parents =
                parent_services(route, &namespace, &endpoints).map_err(|(f, m)| ConfigError::new(&object, f, m))?;
            for (rule_index, spec) in route.spec.rules.iter().flatten().enumerate() {
                let at = |field: &str| format!("spec.rules[{rule_index}].{field}");
                let rule = compile_rule(spec, &namespace, &name, &endpoints)
                    .map_err(|(field, message)| ConfigError::new(&object, at(&field), message))?;
                let rule = Arc::new(rule);
                let matches: Vec<Option<_>> = match &spec.matches {
                    Some(list) if !list.is_empty() => list.iter().map(Some).collect(),
                    _ => vec![None],
                };
                for (match_index, spec_match) in matches.into_iter().enumerate() {
                    let compiled = RequestMatch::compile(spec_match).map_err(|(field, message)| {
                        ConfigError::new(&object, at(&format!("matches[{match_index}].{field}")), message)
                    })?;
                    for parent in &parents {
                        // Ties go to the route listed first, then to rule order, as the spec's
                        // "oldest route first" rule does in a cluster.
                        attached.entry(parent.clone()).or_default().push((
                            compiled.precedence(),
                            order,
                            compiled.clone(),
                            rule.clone(),
                        ));
                    }
                    order += 1;
                }
            }
        }

        let mut table = RouteTable::default();
        let mut short_names: HashMap<String, Vec<Arc<ServiceEntry>>> = HashMap::new();
        for service in &config.services {
            let key = service.key();
            let mut rules = attached.remove(&key).unwrap_or_default();
            rules.sort_by_key(|(precedence, order, _, _)| (*precedence, *order));
            let own = endpoints.get(&key).cloned().unwrap_or_default();
            let entry = Arc::new(ServiceEntry {
                namespace: service.namespace.clone(),
                name: service.name.clone(),
                rules: rules.into_iter().map(|(_, _, m, r)| (m, r)).collect(),
                direct: Arc::new(Rule {
                    route: "-".into(),
                    backends: vec![Arc::new(Backend::new(service.namespace.clone(), service.name.clone(), 1, own))],
                    timeout: None,
                    request_headers: HeaderModifier::default(),
                    response_headers: HeaderModifier::default(),
                }),
            });
            for host in host_forms(&service.name, &service.namespace) {
                table.hosts.insert(host, entry.clone());
            }
            short_names.entry(service.name.to_ascii_lowercase()).or_default().push(entry);
        }
        // A bare service name is only unambiguous when one namespace has it.
        for (name, entries) in short_names {
            if let [only] = entries.as_slice() {
                table.hosts.entry(name).or_insert_with(|| only.clone());
            }
        }
        Ok(table)
    }
}

fn parent_services(
    route: &HttpRoute,
    namespace: &str,
    services: &HashMap<ServiceKey, Vec<BackendEndpoint>>,
) -> Result<Vec<ServiceKey>, (String, String)> {
    let parents = route.spec.parent_refs.clone().unwrap_or_default();
    if parents.is_empty() {
        return Err(("spec.parentRefs".into(), "attach the route to a Service with parentRefs".into()));
    }
    parents
        .iter()
        .enumerate()
        .map(|(i, parent)| {
            let kind = parent.kind.as_deref().unwrap_or("Gateway");
            let group = parent.group.as_deref().unwrap_or("gateway.networking.k8s.io");
            if kind != "Service" || !group.is_empty() {
                return Err((
                    format!("spec.parentRefs[{i}]"),
                    format!(
                        "meshproxy serves routes attached to a Service (group \"\", kind Service), not {group}/{kind}"
                    ),
                ));
            }
            let key = (parent.namespace.clone().unwrap_or_else(|| namespace.to_string()), parent.name.clone());
            if !services.contains_key(&key) {
                return Err((format!("spec.parentRefs[{i}].name"), format!("no Service {}/{}", key.0, key.1)));
            }
            Ok(key)
        })
        .collect()
}

/// The request and response header modifiers are distinct generated types with the same fields.
macro_rules! compile_modifier {
    ($modifier:expr, $name:literal) => {
        match $modifier {
            None => Err(format!("{} is missing", $name)),
            Some(m) => HeaderModifier::compile(
                m.set.iter().flatten().map(|h| (h.name.clone(), h.value.clone())),
                m.add.iter().flatten().map(|h| (h.name.clone(), h.value.clone())),
                m.remove.iter().flatten().cloned(),
            ),
        }
    };
}

fn compile_rule(
    spec: &HttpRouteRules,
    namespace: &str,
    route_name: &str,
    services: &HashMap<ServiceKey, Vec<BackendEndpoint>>,
) -> Result<Rule, (String, String)> {
    let mut backends = Vec::new();
    for (i, backend) in spec.backend_refs.iter().flatten().enumerate() {
        let kind = backend.kind.as_deref().unwrap_or("Service");
        if kind != "Service" || !backend.group.as_deref().unwrap_or("").is_empty() {
            return Err((format!("backendRefs[{i}].kind"), format!("only Services can be backends, not {kind}")));
        }
        if backend.filters.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err((format!("backendRefs[{i}].filters"), "per-backend filters are not supported yet".into()));
        }
        let weight = backend.weight.unwrap_or(1);
        if !(0..=1_000_000).contains(&weight) {
            return Err((format!("backendRefs[{i}].weight"), format!("{weight} is outside 0..=1000000")));
        }
        let key = (backend.namespace.clone().unwrap_or_else(|| namespace.to_string()), backend.name.clone());
        let Some(endpoints) = services.get(&key) else {
            return Err((format!("backendRefs[{i}].name"), format!("no Service {}/{}", key.0, key.1)));
        };
        backends.push(Arc::new(Backend::new(key.0, key.1, weight as u32, endpoints.clone())));
    }

    let mut request_headers = HeaderModifier::default();
    let mut response_headers = HeaderModifier::default();
    for (i, filter) in spec.filters.iter().flatten().enumerate() {
        let field = format!("filters[{i}]");
        match filter.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                let m = filter.request_header_modifier.as_ref();
                request_headers = compile_modifier!(m, "requestHeaderModifier").map_err(|e| (field.clone(), e))?;
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                let m = filter.response_header_modifier.as_ref();
                response_headers = compile_modifier!(m, "responseHeaderModifier").map_err(|e| (field.clone(), e))?;
            }
            ref other => {
                return Err((format!("{field}.type"), format!("filter {other:?} is not supported by meshproxy yet")));
            }
        }
    }

    let timeout = match spec.timeouts.as_ref().and_then(|t| t.request.as_deref()) {
        None => None,
        Some(text) => {
            let duration =
                serin_crds::duration::parse(text).map_err(|e| ("timeouts.request".to_string(), e.to_string()))?;
            (!duration.is_zero()).then_some(duration)
        }
    };

    Ok(Rule { route: format!("{namespace}/{route_name}"), backends, timeout, request_headers, response_headers })
}
