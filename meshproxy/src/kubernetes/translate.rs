//! Cluster objects to the config meshproxy routes by: the same `ProxyConfig` a file gives, built
//! from Services, their EndpointSlices, the HTTPRoutes attached to Services and TrafficPolicies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serin_crds::TrafficPolicy;
use serin_meshproxy_api::config::UpstreamProtocol;

use crate::config::{Endpoint, ProxyConfig, ServiceSpec};

/// Pod labels that name an endpoint's version in metrics, in order of preference.
const VERSION_LABELS: [&str; 2] = ["version", "app.kubernetes.io/version"];

/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label on a waypoint's own pods. A Service whose traffic the waypoint serves selects them,
/// so they are never endpoints the waypoint sends to: that would loop.
pub const WAYPOINT_LABEL: &str = "serin.dev/waypoint";

/// What meshproxy reads from a pod's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub version: Option<String>,
    pub is_waypoint: bool,
}

impl PodFacts {
    pub fn of(labels: &BTreeMap<String, String>) -> PodFacts {
        PodFacts {
            version: VERSION_LABELS.iter().find_map(|key| labels.get(*key).cloned()),
            is_waypoint: labels.contains_key(WAYPOINT_LABEL),
        }
    }
}

/// What the watches hold when the config is built.
pub struct ClusterObjects<'a> {
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
    pub routes: &'a [Arc<HttpRoute>],
    pub policies: &'a [Arc<TrafficPolicy>],
    /// What a pod's labels say, by (namespace, name).
    pub pod_facts: &'a dyn Fn(&str, &str) -> Option<PodFacts>,
}

/// Builds the config, in a stable order so that an unchanged cluster gives an equal config.
pub fn build_config(objects: &ClusterObjects<'_>) -> ProxyConfig {
    let mut slices_by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in objects.slices {
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        slices_by_service.entry((namespace, service.clone())).or_default().push(slice);
    }

    let mut services: Vec<ServiceSpec> = objects
        .services
        .iter()
        .filter(|s| s.spec.as_ref().is_some_and(|spec| spec.type_.as_deref() != Some("ExternalName")))
        .map(|service| {
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let name = service.metadata.name.clone().unwrap_or_default();
            let slices = slices_by_service.get(&(namespace.clone(), name.clone())).map(Vec::as_slice).unwrap_or(&[]);
            service_spec(service, namespace, name, slices, objects.pod_facts)
        })
        .collect();
    services.sort_by_key(ServiceSpec::key);

    let mut routes: Vec<HttpRoute> =
        objects.routes.iter().filter(|r| attaches_to_a_service(r)).map(|r| without_bookkeeping(r)).collect();
    routes.sort_by_key(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()));
    let mut traffic_policies: Vec<TrafficPolicy> = objects
        .policies
        .iter()
        .map(|p| {
            let mut policy = TrafficPolicy::new(p.metadata.name.as_deref().unwrap_or_default(), p.spec.clone());
            policy.metadata.namespace = p.metadata.namespace.clone();
            policy
        })
        .collect();
    traffic_policies.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    ProxyConfig { services, routes, traffic_policies }
}

/// A Service with the ready endpoints of its slices, each tagged with the Service port it serves.
fn service_spec(
    service: &Service,
    namespace: String,
    name: String,
    slices: &[&EndpointSlice],
    pod_facts: &dyn Fn(&str, &str) -> Option<PodFacts>,
) -> ServiceSpec {
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut endpoints = BTreeSet::new();
    for slice in slices {
        for slice_port in slice.ports.iter().flatten() {
            let slice_port_name = slice_port.name.clone().unwrap_or_default();
            // A slice's port carries its Service port's name; the number is the target port.
            let Some(service_port) = ports.iter().find(|p| p.name.clone().unwrap_or_default() == slice_port_name)
            else {
                continue;
            };
            let Some(target_port) = slice_port.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            for endpoint in slice.endpoints.iter().flatten() {
                let conditions = endpoint.conditions.clone().unwrap_or_default();
                // Unknown readiness counts as ready, as the EndpointSlice API says consumers should.
                if conditions.ready == Some(false) {
                    continue;
                }
                let facts = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| pod_facts(r.namespace.as_deref().unwrap_or(&namespace), r.name.as_deref()?))
                    .unwrap_or_default();
                if facts.is_waypoint {
                    continue;
                }
                let version = facts.version;
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<std::net::IpAddr>() else { continue };
                    let address = std::net::SocketAddr::new(ip, target_port).to_string();
                    endpoints.insert((
                        address,
                        u16::try_from(service_port.port).ok(),
                        version.clone(),
                        app_protocol(service_port.app_protocol.as_deref()),
                    ));
                }
            }
        }
    }
    ServiceSpec {
        name,
        namespace,
        labels: BTreeMap::new(),
        ports: ports.iter().filter_map(|p| u16::try_from(p.port).ok()).collect(),
        app_protocol: None,
        endpoints: endpoints
            .into_iter()
            .map(|(address, service_port, version, app_protocol)| Endpoint {
                address,
                service_port,
                labels: version.map(|v| BTreeMap::from([("version".to_string(), v)])).unwrap_or_default(),
                app_protocol,
            })
            .collect(),
    }
}

/// A Service port's `appProtocol`, when it is one meshproxy speaks. Any other (`https`, `tcp`, a
/// vendor's) is left out, and the endpoint is spoken to in HTTP/1.1: one odd Service must not
/// make the whole cluster's config refused.
fn app_protocol(value: Option<&str>) -> Option<String> {
    let value = value?;
    if UpstreamProtocol::parse(value).is_none() {
        tracing::debug!(app_protocol = value, "appProtocol meshproxy does not speak; using HTTP/1.1");
        return None;
    }
    Some(value.to_string())
}

/// Whether any parentRef of the route is a Service (GAMMA); routes for Gateways are not ours.
fn attaches_to_a_service(route: &HttpRoute) -> bool {
    route
        .spec
        .parent_refs
        .iter()
        .flatten()
        .any(|p| p.kind.as_deref() == Some("Service") && p.group.as_deref() == Some(""))
}

/// The route without what meshproxy never reads (managed fields, annotations, status), so that
/// the config stays small and a status write does not look like a change.
fn without_bookkeeping(route: &HttpRoute) -> HttpRoute {
    let mut route = route.clone();
    route.metadata.managed_fields = None;
    route.metadata.annotations = None;
    route.metadata.resource_version = None;
    route.metadata.generation = None;
    route.metadata.uid = None;
    route.metadata.creation_timestamp = None;
    route.metadata.owner_references = None;
    route.metadata.labels = None;
    route.status = None;
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, ports: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "test"},
                "spec": {"ports": ports},
            }))
            .unwrap(),
        )
    }

    fn slice(service: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{service}-abc"), "namespace": "test",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn route(parent_kind: &str) -> Arc<HttpRoute> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "7",
                             "managedFields": [{"manager": "serin"}]},
                "spec": {
                    "parentRefs": [{"group": if parent_kind == "Service" { "" } else { "gateway.networking.k8s.io" },
                                    "kind": parent_kind, "name": "podinfo"}],
                    "rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898}]}],
                },
            }))
            .unwrap(),
        )
    }

    fn build(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], routes: &[Arc<HttpRoute>]) -> ProxyConfig {
        let facts = |_: &str, pod: &str| match pod {
            "podinfo-primary-1" => Some(PodFacts::of(&BTreeMap::from([("version".to_string(), "v1".to_string())]))),
            "waypoint-1" => Some(PodFacts::of(&BTreeMap::from([(WAYPOINT_LABEL.to_string(), "true".to_string())]))),
            _ => None,
        };
        build_config(&ClusterObjects { services, slices, routes, policies: &[], pod_facts: &facts })
    }

    #[test]
    fn ready_endpoints_but_the_waypoints_own_take_the_target_port_and_the_pods_version() {
        let services = [service("podinfo-primary", json!([{"name": "http", "port": 9898, "targetPort": "web"}]))];
        let slices = [slice(
            "podinfo-primary",
            json!([{"name": "http", "port": 8080}]),
            json!([
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "podinfo-primary-1", "namespace": "test"}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false}},
                {"addresses": ["10.244.0.7"]},
                {"addresses": ["10.244.0.8"], "targetRef": {"kind": "Pod", "name": "waypoint-1", "namespace": "test"}},
            ]),
        )];
        let config = build(&services, &slices, &[]);
        let spec = &config.services[0];
        assert_eq!(spec.ports, vec![9898]);
        let endpoints: Vec<(&str, Option<u16>, Option<&String>)> =
            spec.endpoints.iter().map(|e| (e.address.as_str(), e.service_port, e.labels.get("version"))).collect();
        let v1 = "v1".to_string();
        assert_eq!(endpoints, vec![("10.244.0.5:8080", Some(9898), Some(&v1)), ("10.244.0.7:8080", Some(9898), None)]);
    }

    #[test]
    fn each_slice_port_maps_to_its_service_port_by_name() {
        let services = [service("app", json!([{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]))];
        let slices = [slice(
            "app",
            json!([{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]),
            json!([{"addresses": ["10.244.0.5"]}]),
        )];
        let config = build(&services, &slices, &[]);
        let endpoints: Vec<(&str, Option<u16>)> =
            config.services[0].endpoints.iter().map(|e| (e.address.as_str(), e.service_port)).collect();
        assert_eq!(endpoints, vec![("10.244.0.5:8080", Some(80)), ("10.244.0.5:9090", Some(9000))]);
    }

    #[test]
    fn each_endpoint_speaks_its_service_ports_app_protocol_when_meshproxy_speaks_it() {
        let ports = json!([
            {"name": "grpc", "port": 50051, "appProtocol": "kubernetes.io/h2c"},
            {"name": "web", "port": 80},
            {"name": "tls", "port": 443, "appProtocol": "https"},
        ]);
        let services = [service("app", ports)];
        let slices = [slice(
            "app",
            json!([{"name": "grpc", "port": 9000}, {"name": "web", "port": 8080}, {"name": "tls", "port": 8443}]),
            json!([{"addresses": ["10.244.0.5"]}]),
        )];
        let config = build(&services, &slices, &[]);
        let protocols: Vec<(Option<u16>, Option<&str>)> =
            config.services[0].endpoints.iter().map(|e| (e.service_port, e.app_protocol.as_deref())).collect();
        assert_eq!(protocols, vec![(Some(80), None), (Some(443), None), (Some(50051), Some("kubernetes.io/h2c"))]);
        crate::config::validate(&config).unwrap();
    }

    #[test]
    fn only_routes_attached_to_services_are_kept_without_their_bookkeeping() {
        let services =
            [service("podinfo", json!([{"port": 9898}])), service("podinfo-primary", json!([{"port": 9898}]))];
        let config = build(&services, &[], &[route("Service"), route("Gateway")]);
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0].metadata.resource_version, None);
        assert_eq!(config.routes[0].metadata.managed_fields, None);
        crate::config::validate(&config).unwrap();
    }
}
