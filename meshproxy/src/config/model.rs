use std::collections::BTreeMap;

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

/// A service and its group of endpoints (in Kubernetes: a Service and its EndpointSlices).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels every endpoint of the service carries unless it says otherwise (e.g. `version`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One address requests can be sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// `ip:port`.
    pub address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

pub fn default_namespace() -> String {
    "default".to_string()
}

impl ServiceSpec {
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}
