//! Revisions: what identifies "the version of the target", the id in `status.lastAppliedSpec` and
//! `status.lastPromotedSpec`. It is part of the API because clients compute it too: `kubectl serin
//! wait` waits for the rollout of the target's *current* revision, so it must name that revision
//! exactly as the controller does.
//!
//! A revision id is a hash of the target's pod template (as the user wrote it: without the
//! controller's scale-to-zero node selector) and the checksums of the ConfigMaps and Secrets it
//! uses, in one canonical JSON form (object keys sorted, no whitespace), so it is stable across
//! processes and platforms. Flagger hashes a Go spew dump of the template and compares the configs
//! separately; folding both into one id is what lets "reverted to the promoted revision" mean the
//! same thing for a template change and a config change.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The node selector that keeps a DaemonSet target's pods off every node while it is parked.
pub const SCALE_TO_ZERO_LABEL: &str = "serin.dev/scale-to-zero";

/// The id of a pod template (any JSON) with the checksums of the configs it uses, keyed by
/// [`ConfigRef::key`].
pub fn revision_id(pod_template: &Value, tracked_configs: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    // serde_json's Map is a BTreeMap (no `preserve_order`), so keys serialize sorted.
    hasher.update(serde_json::to_vec(pod_template).expect("a JSON value always serializes"));
    for (name, checksum) in tracked_configs {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(checksum.as_bytes());
    }
    short_hex(&hasher.finalize())
}

/// A workload's pod template as its revision sees it: without the scale-to-zero selector.
pub fn user_template(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(spec) = template.spec.as_mut()
        && let Some(selector) = spec.node_selector.as_mut()
    {
        selector.remove(SCALE_TO_ZERO_LABEL);
        if selector.is_empty() {
            spec.node_selector = None;
        }
    }
    template
}

/// A config the pods use: `configmap/<name>` or `secret/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigRef {
    ConfigMap(String),
    Secret(String),
}

impl ConfigRef {
    /// How it is named in `status.trackedConfigs` and in the revision.
    pub fn key(&self) -> String {
        match self {
            ConfigRef::ConfigMap(name) => format!("configmap/{name}"),
            ConfigRef::Secret(name) => format!("secret/{name}"),
        }
    }
}

/// Every ConfigMap and Secret the template refers to: volumes, `envFrom` and `valueFrom`, in every
/// container and init container.
pub fn referenced(template: &PodTemplateSpec) -> BTreeSet<ConfigRef> {
    let mut found = BTreeSet::new();
    let Some(spec) = &template.spec else { return found };
    for volume in spec.volumes.iter().flatten() {
        if let Some(config_map) = &volume.config_map {
            found.insert(ConfigRef::ConfigMap(config_map.name.clone()));
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            found.insert(ConfigRef::Secret(name));
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(config_map) = &source.config_map {
                found.insert(ConfigRef::ConfigMap(config_map.name.clone()));
            }
            if let Some(secret) = &source.secret {
                found.insert(ConfigRef::Secret(secret.name.clone()));
            }
        }
    }
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for from in container.env_from.iter().flatten() {
            if let Some(config_map) = &from.config_map_ref {
                found.insert(ConfigRef::ConfigMap(config_map.name.clone()));
            }
            if let Some(secret) = &from.secret_ref {
                found.insert(ConfigRef::Secret(secret.name.clone()));
            }
        }
        for value_from in container.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(key) = &value_from.config_map_key_ref {
                found.insert(ConfigRef::ConfigMap(key.name.clone()));
            }
            if let Some(key) = &value_from.secret_key_ref {
                found.insert(ConfigRef::Secret(key.name.clone()));
            }
        }
    }
    found
}

/// A checksum of a ConfigMap's data (text and binary), stable across processes.
pub fn config_map_checksum(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in config_map.data.iter().flatten() {
        hash_entry(&mut hasher, key, value.as_bytes());
    }
    for (key, value) in config_map.binary_data.iter().flatten() {
        hash_entry(&mut hasher, key, &value.0);
    }
    short_hex(&hasher.finalize())
}

/// A checksum of a Secret's data.
pub fn secret_checksum(secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in secret.data.iter().flatten() {
        hash_entry(&mut hasher, key, &value.0);
    }
    short_hex(&hasher.finalize())
}

/// The checksum of a config's data given as text (standalone mode's configs).
pub fn config_checksum(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(data).expect("a string map always serializes"));
    short_hex(&hasher.finalize())
}

fn hash_entry(hasher: &mut Sha256, key: &str, value: &[u8]) {
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(value);
    hasher.update([0]);
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
        assert_eq!(revision_id(&a, &BTreeMap::new()), revision_id(&b, &BTreeMap::new()));
    }

    #[test]
    fn template_and_config_changes_both_change_the_revision() {
        let template = json!({"spec": {"containers": [{"image": "v1"}]}});
        let base = revision_id(&template, &BTreeMap::new());
        let new_image = revision_id(&json!({"spec": {"containers": [{"image": "v2"}]}}), &BTreeMap::new());
        let configs = BTreeMap::from([("configmap/app".to_string(), "abc".to_string())]);
        let new_config = revision_id(&template, &configs);
        assert_ne!(base, new_image);
        assert_ne!(base, new_config);
        assert_eq!(base.len(), 16);
    }

    #[test]
    fn the_scale_to_zero_selector_is_not_part_of_the_template() {
        let parked: PodTemplateSpec = serde_json::from_value(json!({"spec": {
            "nodeSelector": {SCALE_TO_ZERO_LABEL: "true"}, "containers": [{"name": "a"}]}}))
        .unwrap();
        let running: PodTemplateSpec =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(user_template(&parked), running);
    }
}
