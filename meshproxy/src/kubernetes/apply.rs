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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn config(extra_routes: &str) -> ProxyConfig {
        let text = format!(
            r#"
services:
  - {{name: a, namespace: test}}
  - {{name: a-primary, namespace: test, endpoints: [{{address: "127.0.0.1:1"}}]}}
  - {{name: b, namespace: test}}
  - {{name: b-primary, namespace: test, endpoints: [{{address: "127.0.0.1:2"}}]}}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {{name: a, namespace: test}}
    spec:
      parentRefs: [{{group: "", kind: Service, name: a}}]
      rules: [{{backendRefs: [{{name: a-primary, weight: 100}}]}}]
{extra_routes}
"#
        );
        parse_config("test", &text).unwrap()
    }

    #[test]
    fn a_route_the_check_refuses_is_left_out_and_the_rest_is_swapped_in() {
        let store = ConfigStore::new(ProxyConfig::default()).unwrap();
        let before = store.load().generation;
        // Route b names a backend no Service has: only it is left out.
        let good = config(
            r#"  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: b, namespace: test}
    spec:
      parentRefs: [{group: "", kind: Service, name: b}]
      rules: [{backendRefs: [{name: b-primary, weight: 100}]}]"#,
        );
        let mut broken = good.clone();
        broken.routes[1].spec.rules.as_mut().unwrap()[0].backend_refs.as_mut().unwrap()[0].name = "b-missing".into();
        let applied = apply(&store, broken);
        assert_eq!(applied.left_out.len(), 1, "{:?}", applied.left_out);
        assert_eq!(applied.left_out[0].object, "HTTPRoute test/b");
        assert!(applied.left_out[0].to_string().contains("b-missing"), "{}", applied.left_out[0]);
        assert!(applied.generation.is_some_and(|g| g > before));
        let live = store.load();
        assert_eq!(live.config.routes.len(), 1, "route a stays");
        assert_eq!(live.config.routes[0].metadata.name.as_deref(), Some("a"));

        // Once fixed, the route comes in.
        let applied = apply(&store, good);
        assert!(applied.left_out.is_empty(), "{:?}", applied.left_out);
        assert_eq!(store.load().config.routes.len(), 2);
        // The same config again changes nothing.
        assert_eq!(apply(&store, store.load().config.clone()).generation, None);
    }
}
