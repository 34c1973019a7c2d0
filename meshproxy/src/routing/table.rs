use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::{HttpRoute, HttpRouteRules, HttpRouteRulesFilters};
use serin_meshproxy_api::config::{ProxyConfig, UpstreamProtocol};

use super::backend::Backend;
use super::backend_ref::{BackendRef, pick_weighted};
use super::endpoint::BackendEndpoint;
use super::filters::{ResolveBackend, RuleFilters};
use super::host::{host_forms, normalize_host};
use super::matching::{Precedence, RequestFacts, RequestMatch};
use crate::config_error::ConfigError;
use crate::metrics::Label;
use crate::policy::ServicePolicy;
use crate::state::RuntimeState;

type ServiceKey = (String, String);

/// A service's endpoints with the ports they serve, before a backendRef picks a port.
struct ServiceEndpoints {
    ports: Vec<u16>,
    endpoints: Vec<BackendEndpoint>,
}

impl ServiceEndpoints {
    /// The endpoints serving `port` (a backendRef's), or the service's only port when none is
    /// named; an error is (field, message) for a port the service lacks or a choice left open.
    fn for_port(&self, service: &str, port: Option<i32>) -> Result<Vec<BackendEndpoint>, (String, String)> {
        let port = match (port, self.ports.as_slice()) {
            (_, []) => return Ok(self.endpoints.clone()),
            (None, [only]) => *only,
            (None, ports) => {
                return Err(("port".into(), format!("Service {service} has ports {ports:?}; name one with port")));
            }
            (Some(port), ports) => match u16::try_from(port).ok().filter(|p| ports.contains(p)) {
                Some(port) => port,
                None => {
                    return Err(("port".into(), format!("Service {service} has no port {port} (it has {ports:?})")));
                }
            },
        };
        Ok(self.endpoints.iter().filter(|e| e.service_port.is_none_or(|p| p == port)).cloned().collect())
    }
}

/// A match attached to a service, with what orders it: its precedence, then its place in the
/// config (earlier routes and rules first).
type AttachedMatch = (Precedence, usize, RequestMatch, Arc<Rule>);

/// A service as the proxy knows it: its endpoints, and its rules in precedence order.
#[derive(Debug)]
pub struct ServiceEntry {
    pub namespace: Label,
    pub name: Label,
    /// Rules of the HTTPRoutes attached to this service. Empty: requests go to the service's own
    /// endpoints, as to a plain Kubernetes Service.
    rules: Vec<(RequestMatch, Arc<Rule>)>,
    direct: (RequestMatch, Arc<Rule>),
    /// The TrafficPolicy attached to this service: applies to requests addressed to it whose
    /// backend has no policy of its own.
    pub policy: Option<Arc<ServicePolicy>>,
}

/// One HTTPRoute rule, compiled.
#[derive(Debug)]
pub struct Rule {
    /// `namespace/name` of the HTTPRoute, or `-` for direct traffic to a service.
    pub route: Label,
    pub backends: Vec<BackendRef>,
    pub timeout: Option<Duration>,
    pub filters: RuleFilters,
}

impl Rule {
    pub fn pick_backend(&self) -> Option<&BackendRef> {
        pick_weighted(&self.backends)
    }
}

/// Everything a request needs to be routed, built from one config.
#[derive(Debug, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<ServiceEntry>>,
}

impl ServiceEntry {
    /// The rule for a request with the match that chose it, or None when the service has routes
    /// and none matches (404).
    pub fn rule_for(&self, request: &RequestFacts<'_>) -> Option<(&RequestMatch, &Arc<Rule>)> {
        if self.rules.is_empty() {
            return Some((&self.direct.0, &self.direct.1));
        }
        self.rules.iter().find(|(m, _)| m.matches(request)).map(|(m, rule)| (m, rule))
    }
}

impl RouteTable {
    /// The service a Host header or `:authority` names.
    pub fn service(&self, authority: &str) -> Option<&Arc<ServiceEntry>> {
        self.hosts.get(&*normalize_host(authority))
    }

    /// Compiles a config. Endpoint and service state comes from `state`, so what the proxy has
    /// learnt about an endpoint survives the swap.
    pub fn compile(config: &ProxyConfig, state: &RuntimeState) -> Result<RouteTable, ConfigError> {
        let endpoints: HashMap<ServiceKey, ServiceEndpoints> = config
            .services
            .iter()
            .map(|service| {
                let list = service
                    .endpoints
                    .iter()
                    .filter_map(|e| {
                        let version = e.labels.get("version").or_else(|| service.labels.get("version"));
                        let address: std::net::SocketAddr = e.address.parse().ok()?;
                        Some(BackendEndpoint {
                            address,
                            authority: address.to_string().parse().ok()?,
                            version: Arc::new(version.cloned().unwrap_or_default()),
                            service_port: e.service_port,
                            // Checked with the services: an unknown value never gets here.
                            protocol: e
                                .app_protocol
                                .as_deref()
                                .or(service.app_protocol.as_deref())
                                .and_then(UpstreamProtocol::parse)
                                .unwrap_or_default(),
                            state: state.endpoint(address),
                        })
                    })
                    .collect();
                (service.key(), ServiceEndpoints { ports: service.ports.clone(), endpoints: list })
            })
            .collect();

        let policies = compile_policies(config, &endpoints, state)?;
        let resolve = |namespace: &str, name: &str, port: Option<i32>| -> Result<Arc<Backend>, (String, String)> {
            let key = (namespace.to_string(), name.to_string());
            let service =
                endpoints.get(&key).ok_or_else(|| ("name".to_string(), format!("no Service {namespace}/{name}")))?;
            let list = service.for_port(&format!("{namespace}/{name}"), port)?;
            let policy = policies.get(&key).cloned();
            Ok(Arc::new(Backend::new(Arc::new(key.0), Arc::new(key.1), list, policy)))
        };

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
                let rule = compile_rule(spec, &namespace, &name, &resolve)
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
            // Requests to a service without routes go to its first port's endpoints.
            let first_port = service.ports.first().map(|p| i32::from(*p));
            let own = resolve(&service.namespace, &service.name, first_port)
                .map_err(|(_, e)| ConfigError::new("config", "services", e))?;
            let entry = Arc::new(ServiceEntry {
                namespace: Arc::new(service.namespace.clone()),
                name: Arc::new(service.name.clone()),
                rules: rules.into_iter().map(|(_, _, m, r)| (m, r)).collect(),
                direct: (
                    RequestMatch::compile(None).expect("the empty match compiles"),
                    Arc::new(Rule {
                        route: Arc::new("-".to_string()),
                        backends: vec![BackendRef { backend: own, weight: 1, filters: RuleFilters::default() }],
                        timeout: None,
                        filters: RuleFilters::default(),
                    }),
                ),
                policy: policies.get(&key).cloned(),
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
    services: &HashMap<ServiceKey, ServiceEndpoints>,
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

fn compile_rule(
    spec: &HttpRouteRules,
    namespace: &str,
    route_name: &str,
    resolve: &ResolveBackend<'_>,
) -> Result<Rule, (String, String)> {
    let prefix_matches_only = spec
        .matches
        .iter()
        .flatten()
        .all(|m| RequestMatch::compile(Some(m)).is_ok_and(|m| m.matched_prefix().is_some()));
    let mut backends = Vec::new();
    for (i, backend) in spec.backend_refs.iter().flatten().enumerate() {
        let kind = backend.kind.as_deref().unwrap_or("Service");
        if kind != "Service" || !backend.group.as_deref().unwrap_or("").is_empty() {
            return Err((format!("backendRefs[{i}].kind"), format!("only Services can be backends, not {kind}")));
        }
        let weight = backend.weight.unwrap_or(1);
        if !(0..=1_000_000).contains(&weight) {
            return Err((format!("backendRefs[{i}].weight"), format!("{weight} is outside 0..=1000000")));
        }
        let backend_namespace = backend.namespace.as_deref().unwrap_or(namespace);
        let resolved = resolve(backend_namespace, &backend.name, backend.port)
            .map_err(|(field, e)| (format!("backendRefs[{i}].{field}"), e))?;
        // The backendRef's filters have the rule filters' schema under another generated type.
        let filters: Vec<HttpRouteRulesFilters> = backend
            .filters
            .as_ref()
            .map(|f| serde_json::to_value(f).and_then(serde_json::from_value))
            .transpose()
            .map_err(|e| (format!("backendRefs[{i}].filters"), e.to_string()))?
            .unwrap_or_default();
        let filters = RuleFilters::compile(&filters, namespace, resolve, prefix_matches_only)
            .map_err(|(field, message)| (format!("backendRefs[{i}].{field}"), message))?;
        backends.push(BackendRef { backend: resolved, weight: weight as u32, filters });
    }
    let filters =
        RuleFilters::compile(spec.filters.as_deref().unwrap_or_default(), namespace, resolve, prefix_matches_only)?;
    let timeout = crate::policy::optional_duration(
        spec.timeouts.as_ref().and_then(|t| t.request.as_deref()),
        "timeouts.request",
    )?;
    Ok(Rule { route: Arc::new(format!("{namespace}/{route_name}")), backends, timeout, filters })
}

/// Each TrafficPolicy compiled, by the Service it targets; at most one per Service.
fn compile_policies(
    config: &ProxyConfig,
    services: &HashMap<ServiceKey, ServiceEndpoints>,
    state: &RuntimeState,
) -> Result<HashMap<ServiceKey, Arc<ServicePolicy>>, ConfigError> {
    let mut policies: HashMap<ServiceKey, Arc<ServicePolicy>> = HashMap::new();
    for policy in &config.traffic_policies {
        let namespace = policy.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let object = format!("TrafficPolicy {namespace}/{name}");
        let key = (namespace.clone(), policy.spec.target_ref.name.clone());
        if !services.contains_key(&key) {
            return Err(ConfigError::new(object, "spec.targetRef.name", format!("no Service {}/{}", key.0, key.1)));
        }
        if let Some(earlier) = policies.get(&key) {
            return Err(ConfigError::new(
                object,
                "spec.targetRef.name",
                format!("Service {}/{} already has {}; merge the two", key.0, key.1, earlier.object),
            ));
        }
        let service_state = state.service(&key.0, &key.1);
        let compiled = ServicePolicy::compile(object.clone(), &policy.spec, service_state)
            .map_err(|(field, message)| ConfigError::new(&object, field, message))?;
        policies.insert(key, Arc::new(compiled));
    }
    Ok(policies)
}
