//! The ConfigMaps and Secrets a target's pods use, tracked as part of its revision: a change to one
//! is a new revision, as in Flagger. The primary runs on `<name>-primary` copies made at
//! initialization and promotion, so a config change reaches the primary only through a promotion.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;

pub use serin_crds::revision::{ConfigRef, config_map_checksum, referenced, secret_checksum};

/// The name of a config's copy for the primary.
pub fn primary_name(name: &str) -> String {
    format!("{name}-primary")
}

/// Points every reference to a tracked config at its `-primary` copy.
pub fn use_primary_copies(template: &mut PodTemplateSpec, tracked: &BTreeSet<ConfigRef>) {
    let Some(spec) = &mut template.spec else { return };
    let rename_config_map = |name: &mut String| {
        if tracked.contains(&ConfigRef::ConfigMap(name.clone())) {
            *name = primary_name(name);
        }
    };
    let rename_secret = |name: &mut String| {
        if tracked.contains(&ConfigRef::Secret(name.clone())) {
            *name = primary_name(name);
        }
    };
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(config_map) = &mut volume.config_map {
            rename_config_map(&mut config_map.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            rename_secret(name);
        }
        for source in volume.projected.iter_mut().flat_map(|p| p.sources.iter_mut().flatten()) {
            if let Some(config_map) = &mut source.config_map {
                rename_config_map(&mut config_map.name);
            }
            if let Some(secret) = &mut source.secret {
                rename_secret(&mut secret.name);
            }
        }
    }
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        for from in container.env_from.iter_mut().flatten() {
            if let Some(config_map) = &mut from.config_map_ref {
                rename_config_map(&mut config_map.name);
            }
            if let Some(secret) = &mut from.secret_ref {
                rename_secret(&mut secret.name);
            }
        }
        for value_from in container.env.iter_mut().flatten().filter_map(|e| e.value_from.as_mut()) {
            if let Some(key) = &mut value_from.config_map_key_ref {
                rename_config_map(&mut key.name);
            }
            if let Some(key) = &mut value_from.secret_key_ref {
                rename_secret(&mut key.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({"spec": {
            "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}, {"name": "tls", "secret": {"secretName": "app-tls"}}],
            "containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "app-env"}}],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-token", "key": "token"}}}]}],
        }}))
        .unwrap()
    }

    #[test]
    fn every_kind_of_reference_is_found_and_pointed_at_the_primary_copy() {
        let mut template = template();
        let found = referenced(&template);
        let keys: Vec<String> = found.iter().map(ConfigRef::key).collect();
        assert_eq!(keys, ["configmap/app-config", "configmap/app-env", "secret/app-tls", "secret/app-token"]);
        use_primary_copies(&mut template, &found);
        let again: Vec<String> = referenced(&template).iter().map(ConfigRef::key).collect();
        assert_eq!(
            again,
            [
                "configmap/app-config-primary",
                "configmap/app-env-primary",
                "secret/app-tls-primary",
                "secret/app-token-primary"
            ]
        );
    }

    #[test]
    fn the_checksum_follows_the_data() {
        let config = |value: &str| -> ConfigMap {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}, "data": {"message": value}})).unwrap()
        };
        assert_eq!(config_map_checksum(&config("a")), config_map_checksum(&config("a")));
        assert_ne!(config_map_checksum(&config("a")), config_map_checksum(&config("b")));
    }
}
