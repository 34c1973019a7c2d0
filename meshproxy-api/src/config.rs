//! meshproxy's configuration: services with their endpoints, Gateway API HTTPRoutes, and Serin
//! TrafficPolicies. The same value is read from a file, PUT through the admin API, or built from
//! a cluster's objects.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gateway_api::apis::standard::httproutes::HttpRoute;
use serde::{Deserialize, Serialize};
use serin_crds::TrafficPolicy;

/// Everything meshproxy routes by.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    /// The services clients address (by host name) and the endpoints behind each.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Gateway API HTTPRoutes, attached to a service by `parentRefs` (GAMMA style).
    #[serde(default)]
    pub routes: Vec<HttpRoute>,
    /// Serin TrafficPolicies, attached to a service by `targetRef`.
    #[serde(default)]
    pub traffic_policies: Vec<TrafficPolicy>,
}

/// Equal when every service, route and policy is (a policy by its metadata and spec, which is all
/// that meshproxy reads of it).
impl PartialEq for ProxyConfig {
    fn eq(&self, other: &ProxyConfig) -> bool {
        self.services == other.services
            && self.routes == other.routes
            && self.traffic_policies.len() == other.traffic_policies.len()
            && self
                .traffic_policies
                .iter()
                .zip(&other.traffic_policies)
                .all(|(a, b)| a.metadata == b.metadata && a.spec == b.spec)
    }
}

/// A service and its group of endpoints (in Kubernetes: a Service and its EndpointSlices; in
/// standalone mode: an endpoint group of the services file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels every endpoint of the service carries unless it says otherwise (e.g. `version`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The service's ports (a Kubernetes Service's `port`s). With more than one, a route's
    /// `backendRef.port` picks which; empty (an endpoint group of the services file) means each
    /// endpoint's own address is the only port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The protocol its endpoints speak, as a Service port's `appProtocol` names it (see
    /// [`UpstreamProtocol::parse`]); HTTP/1.1 when unset. What the client spoke does not matter:
    /// an HTTP/2 client's request goes to an HTTP/1.1 endpoint as HTTP/1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One address requests can be sent to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// `ip:port`.
    pub address: String,
    /// The service port this address serves (in Kubernetes, the Service port whose targetPort
    /// it is); None: every port of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The protocol this address speaks, when it differs from the service's `appProtocol` (in
    /// Kubernetes, the `appProtocol` of the Service port it serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// The protocol meshproxy speaks to an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, what every HTTP server speaks: the default.
    #[default]
    Http1,
    /// HTTP/2 over clear text with prior knowledge (gRPC servers, h2c-only servers).
    H2c,
}

impl UpstreamProtocol {
    /// The `appProtocol` values understood, as Kubernetes (`kubernetes.io/h2c`, `kubernetes.io/ws`)
    /// and Istio (`http2`, `grpc`) spell them.
    pub const KNOWN: &str = "http, kubernetes.io/ws, kubernetes.io/h2c, h2c, http2, grpc";

    /// The protocol an `appProtocol` value means; None for one meshproxy cannot speak.
    pub fn parse(app_protocol: &str) -> Option<UpstreamProtocol> {
        match app_protocol.to_ascii_lowercase().as_str() {
            "http" | "http/1.1" | "kubernetes.io/ws" => Some(UpstreamProtocol::Http1),
            "kubernetes.io/h2c" | "h2c" | "http2" | "grpc" => Some(UpstreamProtocol::H2c),
            _ => None,
        }
    }
}

/// Namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

pub fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

impl ServiceSpec {
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }

    /// The same endpoints under another name (a primary is a copy of its canary).
    pub fn renamed(&self, name: &str) -> ServiceSpec {
        ServiceSpec { name: name.to_string(), ..self.clone() }
    }

    /// The endpoints' addresses that parse as `ip:port`.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().filter_map(|e| e.address.parse().ok()).collect()
    }
}
