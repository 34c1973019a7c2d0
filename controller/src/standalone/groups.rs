//! Endpoint groups: standalone mode's services. A file lists groups of `host:port` endpoints by
//! name, in meshproxy's `services` format. The user points `<target>-canary` at a new version; the
//! controller owns `<target>-primary` and keeps it in the state file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serin_meshproxy_api::ServiceSpec;
use serin_meshproxy_api::config::UpstreamProtocol;

use super::error::ManifestProblem;
pub use serin_meshproxy_api::config::DEFAULT_NAMESPACE;

/// An endpoint group is a meshproxy service: one type for both, from the contract.
pub type EndpointGroup = ServiceSpec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    services: Vec<EndpointGroup>,
}

/// What identifies the version a group runs: its labels and endpoints, not its name.
pub fn revision_source(group: &EndpointGroup) -> serde_json::Value {
    #[derive(Serialize)]
    struct RevisionSource<'a> {
        labels: &'a BTreeMap<String, String>,
        endpoints: &'a [serin_meshproxy_api::Endpoint],
    }
    serde_json::to_value(RevisionSource { labels: &group.labels, endpoints: &group.endpoints })
        .expect("a group serializes")
}

/// Reads and checks a groups file; errors name the file and the field.
pub fn load(path: &Path) -> Result<Vec<EndpointGroup>, ManifestProblem> {
    let file = path.display();
    let problem = |message: String| ManifestProblem::in_file(&file, message);
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| problem(format!("not valid YAML: {e}")))?;
    let groups: GroupsFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        problem(format!("{at}: {}", e.into_inner()))
    })?;
    let mut seen = BTreeMap::new();
    for (i, group) in groups.services.iter().enumerate() {
        if group.name.is_empty() {
            return Err(problem(format!("services[{i}].name: must not be empty")));
        }
        if let Some(first) = seen.insert((group.namespace.clone(), group.name.clone()), i) {
            return Err(problem(format!(
                "services[{i}]: {}/{} is already defined at services[{first}]",
                group.namespace, group.name
            )));
        }
        let app_protocol = |field: String, value: &Option<String>| match value {
            Some(value) if UpstreamProtocol::parse(value).is_none() => Err(problem(format!(
                "{field}: {value:?} is not a protocol meshproxy speaks ({})",
                UpstreamProtocol::KNOWN
            ))),
            _ => Ok(()),
        };
        app_protocol(format!("services[{i}].appProtocol"), &group.app_protocol)?;
        for (j, endpoint) in group.endpoints.iter().enumerate() {
            if endpoint.address.parse::<SocketAddr>().is_err() {
                return Err(problem(format!(
                    "services[{i}].endpoints[{j}].address: {:?} is not an IP:port address",
                    endpoint.address
                )));
            }
            app_protocol(format!("services[{i}].endpoints[{j}].appProtocol"), &endpoint.app_protocol)?;
        }
    }
    Ok(groups.services)
}
