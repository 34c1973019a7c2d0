//! The admin API's request bodies, after the body is read: `PUT /config` (YAML or JSON) and
//! `PUT /routes/{namespace}/{name}/weights` (JSON). The first input byte picks the endpoint; for
//! weights the first line is `namespace/name`. Every change is all or nothing: a refused one
//! leaves the generation and the config in use as they were, an accepted one moves the generation
//! on by one and, for weights, sets exactly the weights asked for.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serin_meshproxy::admin::{Admin, Writes};
use serin_meshproxy::config::{ProxyConfig, parse_config};
use serin_meshproxy::metrics::ProxyMetrics;
use serin_meshproxy::store::ConfigStore;

const CONFIG: &str = r#"
services:
  - {name: podinfo, namespace: test}
  - {name: podinfo-primary, namespace: test, labels: {version: "1"}, endpoints: [{address: "127.0.0.1:9898"}]}
  - {name: podinfo-canary, namespace: test, labels: {version: "2"}, endpoints: [{address: "127.0.0.1:9899"}]}
routes:
  - apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: podinfo, namespace: test}
    spec:
      parentRefs: [{group: "", kind: Service, name: podinfo}]
      rules:
        - matches: [{headers: [{name: x-canary, value: insider}]}]
          backendRefs: [{name: podinfo-canary, port: 9898}]
        - backendRefs:
            - {name: podinfo-primary, port: 9898, weight: 90}
            - {name: podinfo-canary, port: 9898, weight: 10}
"#;

fn fixture() -> &'static ProxyConfig {
    static CONFIG_IN_USE: OnceLock<ProxyConfig> = OnceLock::new();
    CONFIG_IN_USE.get_or_init(|| parse_config("fuzz fixture", CONFIG).unwrap())
}

fn weights_of(config: &ProxyConfig, namespace: &str, name: &str) -> Vec<(String, Option<i32>)> {
    let route = config
        .routes
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name) && r.metadata.namespace.as_deref() == Some(namespace));
    route
        .into_iter()
        .flat_map(|r| r.spec.rules.iter().flatten())
        .flat_map(|rule| rule.backend_refs.iter().flatten())
        .map(|b| (b.name.clone(), b.weight))
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let Some((&endpoint, body)) = input.split_first() else { return };
    let Ok(body) = std::str::from_utf8(body) else { return };
    let store = Arc::new(ConfigStore::new(fixture().clone()).unwrap());
    let admin = Admin { metrics: Arc::new(ProxyMetrics::new(store.state.clone())), store, writes: Writes::Allowed };
    let before = serde_json::to_value(&admin.store.load().config).unwrap();

    let (outcome, weights_asked) = if endpoint % 2 == 0 {
        (admin.replace_config(body), None)
    } else {
        let (route, body) = body.split_once('\n').unwrap_or(("test/podinfo", body));
        let (namespace, name) = route.split_once('/').unwrap_or(("test", route));
        let asked: Option<std::collections::BTreeMap<String, i32>> = serde_json::from_str(body).ok();
        (admin.set_route_weights(namespace, name, body), asked.map(|a| (namespace.to_string(), name.to_string(), a)))
    };

    let after = admin.store.load();
    match outcome {
        Err(why) => {
            assert!(!why.is_empty());
            assert_eq!(after.generation, 1, "a refused change moved the generation: {why}");
            assert_eq!(serde_json::to_value(&after.config).unwrap(), before, "a refused change changed the config");
        }
        Ok(generation) => {
            assert_eq!((generation, after.generation), (2, 2));
            if let Some((namespace, name, asked)) = weights_asked {
                let now = weights_of(&after.config, &namespace, &name);
                let was = weights_of(fixture(), &namespace, &name);
                assert_eq!(now.len(), was.len());
                for ((backend, weight), (_, old)) in now.iter().zip(&was) {
                    let expected = asked.get(backend).copied().map(Some).unwrap_or(*old);
                    assert_eq!(*weight, expected, "{backend} in {namespace}/{name}");
                }
            }
        }
    }
});
