//! Revisions: what identifies "the version of the target" across ticks and restarts. The id is
//! computed as `serin_crds::revision` defines it, the same for every client.

use std::collections::BTreeMap;

use serde_json::Value;

pub use serin_crds::revision::config_checksum;

/// The identity of one version of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Short hex hash of the pod template and tracked configs.
    pub id: String,
    /// `configmap/<name>` or `secret/<name>` to the checksum of its data.
    pub tracked_configs: BTreeMap<String, String>,
}

impl Revision {
    /// The revision of a pod template (any JSON) and the configs it uses.
    pub fn of(pod_template: &Value, tracked_configs: BTreeMap<String, String>) -> Revision {
        Revision { id: serin_crds::revision::revision_id(pod_template, &tracked_configs), tracked_configs }
    }

    /// A revision with a given id (simulation and tests).
    pub fn named(id: &str) -> Revision {
        Revision { id: id.to_string(), tracked_configs: BTreeMap::new() }
    }
}
