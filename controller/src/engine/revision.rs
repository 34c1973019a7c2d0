//! Revisions: what identifies "the version of the target" across ticks and restarts.
//!
//! A revision id is a hash of the target's pod template and the checksums of the ConfigMaps and
//! Secrets it uses, in one canonical JSON form (object keys sorted, no whitespace), so it is stable
//! across processes and platforms. Flagger hashes a Go spew dump of the template and compares the
//! configs separately; folding both into one id is what lets "reverted to the promoted revision"
//! mean the same thing for a template change and a config change.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

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
        let mut hasher = Sha256::new();
        // serde_json's Map is a BTreeMap (no `preserve_order`), so keys serialize sorted.
        hasher.update(serde_json::to_vec(pod_template).expect("a JSON value always serializes"));
        for (name, checksum) in &tracked_configs {
            hasher.update([0]);
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(checksum.as_bytes());
        }
        Revision { id: short_hex(&hasher.finalize()), tracked_configs }
    }

    /// A revision with a given id (simulation and tests).
    pub fn named(id: &str) -> Revision {
        Revision { id: id.to_string(), tracked_configs: BTreeMap::new() }
    }
}

/// The checksum of a ConfigMap's or Secret's data, as kept in `status.trackedConfigs`.
pub fn config_checksum(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(data).expect("a string map always serializes"));
    short_hex(&hasher.finalize())
}

fn short_hex(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_revision() {
        let a: Value =
            serde_json::from_str(r#"{"spec":{"containers":[{"name":"app","image":"v1"}]},"metadata":{}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"metadata":{},"spec":{"containers":[{"image":"v1","name":"app"}]}}"#).unwrap();
        assert_eq!(Revision::of(&a, BTreeMap::new()).id, Revision::of(&b, BTreeMap::new()).id);
    }

    #[test]
    fn template_and_config_changes_both_change_the_revision() {
        let template = json!({"spec": {"containers": [{"image": "v1"}]}});
        let base = Revision::of(&template, BTreeMap::new());
        let new_image = Revision::of(&json!({"spec": {"containers": [{"image": "v2"}]}}), BTreeMap::new());
        let configs = BTreeMap::from([("configmap/app".to_string(), "abc".to_string())]);
        let new_config = Revision::of(&template, configs);
        assert_ne!(base.id, new_image.id);
        assert_ne!(base.id, new_config.id);
        assert_eq!(base.id.len(), 16);
    }
}
