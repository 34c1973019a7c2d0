//! Endpoint groups: standalone mode's services. A file lists groups of `host:port` endpoints by
//! name, in meshproxy's `services` format. The user points `<target>-canary` at a new version; the
//! controller owns `<target>-primary` and keeps it in the state file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointGroup {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Labels of every endpoint; `version` shows up in meshproxy's metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<GroupEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupEndpoint {
    /// `host:port`.
    pub address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    services: Vec<EndpointGroup>,
}

impl EndpointGroup {
    /// The same endpoints under another name (the primary is a copy of the canary).
    pub fn renamed(&self, name: &str) -> EndpointGroup {
        EndpointGroup { name: name.to_string(), ..self.clone() }
    }

    /// What identifies the version it runs: its labels and endpoints, not its name.
    pub fn revision_source(&self) -> serde_json::Value {
        serde_json::json!({"labels": self.labels, "endpoints": self.endpoints})
    }

    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().filter_map(|e| e.address.parse().ok()).collect()
    }
}

/// Reads and checks a groups file; errors name the file and the field.
pub fn load(path: &Path) -> Result<Vec<EndpointGroup>, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| format!("{file}: not valid YAML: {e}"))?;
    let groups: GroupsFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        format!("{file}: {at}: {}", e.into_inner())
    })?;
    let mut seen = BTreeMap::new();
    for (i, group) in groups.services.iter().enumerate() {
        if group.name.is_empty() {
            return Err(format!("{file}: services[{i}].name: must not be empty"));
        }
        if let Some(first) = seen.insert((group.namespace.clone(), group.name.clone()), i) {
            return Err(format!(
                "{file}: services[{i}]: {}/{} is already defined at services[{first}]",
                group.namespace, group.name
            ));
        }
        for (j, endpoint) in group.endpoints.iter().enumerate() {
            if endpoint.address.parse::<SocketAddr>().is_err() {
                return Err(format!(
                    "{file}: services[{i}].endpoints[{j}].address: {:?} is not an IP:port address",
                    endpoint.address
                ));
            }
        }
    }
    Ok(groups.services)
}
