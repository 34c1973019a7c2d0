//! The waypoint: meshproxy pods in a Canary's namespace that enforce its HTTPRoute's weights.
//!
//! Clients call the apex Service. With a waypoint in the namespace, the apex Service selects the
//! waypoint's pods (on the waypoint's port), and the waypoint sends each request to the primary or
//! the canary Service's endpoints by the route's weights. Without one, the apex Service selects
//! the primary's pods: clients are served, but the weights are not enforced (as with Flagger's
//! plain Kubernetes provider), and the controller says so in an event.
//!
//! A waypoint is a Service labelled `serin.dev/waypoint: "true"`: its selector picks the meshproxy
//! pods and its first port's targetPort is where they take traffic.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, Client};

use super::KubeError;

/// The label that marks a waypoint's Service (and, by convention, its pods).
pub const WAYPOINT_LABEL: &str = "serin.dev/waypoint";

/// Where a namespace's waypoint takes traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Waypoint {
    /// The waypoint Service's name, for messages.
    pub name: String,
    /// Selects the waypoint's pods.
    pub selector: BTreeMap<String, String>,
    /// The waypoint pods' port, as the waypoint Service names it.
    pub target_port: IntOrString,
}

/// The namespace's waypoint, if it has one (the first by name when it has several).
pub async fn find(client: &Client, namespace: &str) -> Result<Option<Waypoint>, KubeError> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let listed = services
        .list(&ListParams::default().labels(&format!("{WAYPOINT_LABEL}=true")))
        .await
        .map_err(KubeError::api("listing", format!("waypoint Services in {namespace}")))?;
    let mut found: Vec<Waypoint> = listed.items.iter().filter_map(waypoint_of).collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found.into_iter().next())
}

fn waypoint_of(service: &Service) -> Option<Waypoint> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.clone().filter(|s| !s.is_empty())?;
    let port = spec.ports.as_ref()?.first()?;
    let target_port = port.target_port.clone().unwrap_or(IntOrString::Int(port.port));
    Some(Waypoint { name: service.metadata.name.clone()?, selector, target_port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_waypoint_is_its_selector_and_its_first_ports_target() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "serin-waypoint", "labels": {WAYPOINT_LABEL: "true"}},
            "spec": {"selector": {"app": "serin-waypoint"}, "ports": [{"port": 80, "targetPort": "proxy"}]},
        }))
        .unwrap();
        let waypoint = waypoint_of(&service).unwrap();
        assert_eq!(waypoint.target_port, IntOrString::String("proxy".into()));
        assert_eq!(waypoint.selector, BTreeMap::from([("app".to_string(), "serin-waypoint".to_string())]));

        let no_selector: Service = serde_json::from_value(json!({
            "metadata": {"name": "w"}, "spec": {"ports": [{"port": 80}]},
        }))
        .unwrap();
        assert_eq!(waypoint_of(&no_selector), None, "a Service without a selector picks no pods");
    }
}
