//! Swapping in a config built from the cluster without letting one bad object hold back the rest.
//!
//! A file is one author's: a mistake in it refuses the whole file. A cluster's routes and policies
//! come from many authors, and one HTTPRoute naming a missing Service must not freeze every other
//! route's weights. So an object the config check names is left out, with a warning naming it and
//! the field, and the rest is swapped in.

use crate::config::{ConfigError, ProxyConfig};
use crate::store::ConfigStore;

/// What became of one config.
#[derive(Debug, Default)]
pub struct Applied {
    /// The new generation, or None when nothing changed (or nothing could be swapped in).
    pub generation: Option<u64>,
    /// The objects left out, each with why.
    pub left_out: Vec<ConfigError>,
}

/// Swaps `config` in unless it equals the one in use, leaving out each route or policy the check
/// refuses. A refusal naming no route or policy (a Service) cannot be narrowed down: the config in
/// use keeps serving and the error is returned in `left_out`.
pub fn apply(store: &ConfigStore, mut config: ProxyConfig) -> Applied {
    let mut applied = Applied::default();
    // Each pass removes one object, so this ends.
    loop {
        if store.load().config == config {
            return applied;
        }
        match store.replace(config.clone()) {
            Ok(generation) => {
                applied.generation = Some(generation);
                return applied;
            }
            Err(error) => {
                let removed = remove_object(&mut config, &error.object);
                applied.left_out.push(error.from_source("Kubernetes"));
                if !removed {
                    return applied;
                }
            }
        }
    }
}

/// Removes the route or policy named `HTTPRoute ns/name` or `TrafficPolicy ns/name`; false when the
/// name is neither or nothing matched.
fn remove_object(config: &mut ProxyConfig, object: &str) -> bool {
    let Some((kind, key)) = object.split_once(' ') else { return false };
    let Some((namespace, name)) = key.split_once('/') else { return false };
    let named = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name)
    };
    let before = config.routes.len() + config.traffic_policies.len();
    match kind {
        "HTTPRoute" => config.routes.retain(|r| !named(&r.metadata)),
        "TrafficPolicy" => config.traffic_policies.retain(|p| !named(&p.metadata)),
        _ => return false,
    }
    config.routes.len() + config.traffic_policies.len() < before
}
