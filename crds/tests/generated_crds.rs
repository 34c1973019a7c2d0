//! The CRD YAML committed under `crds/` and `chart/crds/` must be what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "chart/crds"] {
        for (name, generated) in serin_crds::crdgen::all_crd_files() {
            let path = root.join(dir).join(name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{dir}/{name} is stale: run `cargo run -p serin-crds --bin crdgen -- --write` and commit the result"
            );
        }
    }
}

#[test]
fn canary_crd_enforces_one_strategy_and_weight_ranges() {
    let yaml = &serin_crds::crdgen::all_crd_files()[0].1;
    let crd: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let analysis =
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["analysis"];
    let one_of: Vec<String> = analysis["oneOf"]
        .as_array()
        .expect("analysis has oneOf")
        .iter()
        .map(|branch| branch["required"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(one_of, ["stepWeight", "stepWeights", "iterations"]);
    for field in ["stepWeight", "maxWeight", "mirrorWeight", "stepWeightPromotion"] {
        assert_eq!(analysis["properties"][field]["maximum"], 100.0, "{field}");
        assert_eq!(analysis["properties"][field]["minimum"], 0.0, "{field}");
    }
    assert_eq!(analysis["properties"]["stepWeights"]["items"]["maximum"], 100.0);
    assert!(analysis["properties"]["interval"]["pattern"].as_str().unwrap().starts_with('^'));
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("priority").is_none())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Status", "Weight", "FailedChecks", "LastTransitionTime"]);
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["observedGeneration"]["type"], "integer");
    assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], serde_json::json!({}));
}

/// Walks every schema node of every generated CRD.
fn each_schema_node(
    value: &serde_json::Value,
    path: &str,
    visit: &mut dyn FnMut(&str, &serde_json::Map<String, serde_json::Value>),
) {
    match value {
        serde_json::Value::Object(map) => {
            visit(path, map);
            for (key, child) in map {
                each_schema_node(child, &format!("{path}.{key}"), visit);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                each_schema_node(child, &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn schemas_hold_only_what_an_api_server_accepts() {
    // Found by applying the CRDs to a real kube-apiserver: a default outside its enum makes the whole
    // CRD invalid, and unsigned formats draw warnings on every apply.
    for (name, yaml) in serin_crds::crdgen::all_crd_files() {
        let crd: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        let mut problems = Vec::new();
        each_schema_node(&crd["spec"]["versions"], name, &mut |path, node| {
            if let (Some(default), Some(allowed)) = (node.get("default"), node.get("enum").and_then(|e| e.as_array()))
                && !allowed.contains(default)
            {
                problems.push(format!("{path}: default {default} is not one of {allowed:?}"));
            }
            if let Some(format) = node.get("format").and_then(|f| f.as_str())
                && !["int32", "int64", "float", "double", "date-time", "byte", "int-or-string"].contains(&format)
            {
                problems.push(format!("{path}: format {format:?} is unknown to Kubernetes"));
            }
        });
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
