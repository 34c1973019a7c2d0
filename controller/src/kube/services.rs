//! The Services a Canary needs: the apex (what clients call), `<apex>-primary` and `<apex>-canary`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use serin_crds::CanarySpec;

/// A ClusterIP Service `name` selecting `selector`, on the Canary's port.
pub fn service(
    name: &str,
    namespace: &str,
    selector: BTreeMap<String, String>,
    port: i32,
    spec: &CanarySpec,
) -> Service {
    let target_port = spec
        .service
        .target_port
        .clone()
        .map_or(serde_json::json!(port), |p| serde_json::to_value(p).unwrap_or(serde_json::json!(port)));
    let port_name = spec.service.port_name.clone().unwrap_or_else(|| "http".into());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{
                "name": port_name,
                "port": port,
                "targetPort": target_port,
                "protocol": "TCP",
                "appProtocol": spec.service.app_protocol,
            }],
        },
    }))
    .expect("a Service")
}
