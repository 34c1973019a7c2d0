//! The Helm chart (`chart/`) with helm itself (built by the rig from its Go module): lint and the
//! values schema, then an install whose controller, waypoint and bundled Prometheus pods the pod
//! runner plays, a rollout judged on real traffic through the installed parts, and an uninstall
//! that leaves nothing of the release behind.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::cluster::{prometheus_query, traffic_report};
use super::super::support::{TestNamespace, eventually, rig_tool};
use super::waypoint::{Stage, only_version_from_now_on};
use super::{image_of, namespace_with_target, set_image};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../chart");

/// `helm ARGS`, with the rig's kubeconfig; its exit code and what it printed.
fn helm(args: &[&str]) -> (i32, String) {
    let output = Command::new(rig_tool("helm")).args(args).output().expect("helm (built by `rig up`)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn the_chart_lints_and_its_schema_refuses_bad_values_naming_them() {
    let (code, out) = helm(&["lint", "--strict", CHART]);
    assert_eq!(code, 0, "{out}");
    // As a dependency of an umbrella chart it gets `global` (and maybe `enabled`) from Helm.
    let (code, out) = helm(&["template", "serin", CHART, "--set", "global.imageRegistry=x", "--set", "enabled=true"]);
    assert_eq!(code, 0, "{out}");
    // Every template, each option on, renders to well-formed objects (no duplicate keys either).
    let (code, out) = helm(&[
        "template",
        "serin",
        CHART,
        "--set",
        "controller.replicas=2",
        "--set",
        "controller.watchNamespace=apps",
        "--set",
        "waypoint.namespaces={apps,shop}",
        "--set",
        "prometheus.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "serviceMonitor.enabled=true",
    ]);
    assert_eq!(code, 0, "{out}");
    let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let kinds: std::collections::BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in ["Deployment", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PodMonitor", "ConfigMap"] {
        assert!(kinds.contains(kind), "no {kind} rendered: {kinds:?}");
    }
    for (value, named) in [
        ("controller.replica=2", "additional properties 'replica' not allowed"),
        ("controller.replicas=0", "/controller/replicas"),
        ("waypoint.namespaces={Not_A_Namespace}", "/waypoint/namespaces/0"),
        ("controller.prometusURL=http://prometheus:9090", "'prometusURL' not allowed"),
        ("prometheus.image.tag=", "/prometheus/image/tag"),
    ] {
        let (code, out) = helm(&["template", "serin", CHART, "--set", value]);
        assert_ne!(code, 0, "{value} was accepted:\n{out}");
        assert!(out.contains(named), "{value}: the error does not name {named:?}:\n{out}");
    }
}

/// `deploy/` is the chart's no-Helm twin: the rights it grants are the chart's, rule for rule.
#[test]
fn the_plain_manifests_in_deploy_grant_what_the_chart_grants() {
    let rules = |documents: &[serde_json::Value], kind: &str, name_ends: &str| -> Vec<String> {
        let mut rules: Vec<String> = documents
            .iter()
            .filter(|d| d["kind"] == kind && d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(name_ends)))
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .map(|rule| rule.to_string())
            .collect();
        rules.sort();
        rules
    };
    let (code, rendered) = helm(&[
        "template",
        "serin",
        CHART,
        "--namespace",
        "serin-system",
        "--set",
        "controller.replicas=2",
        "--set",
        "waypoint.namespaces={apps}",
    ]);
    assert_eq!(code, 0, "{rendered}");
    let chart: Vec<serde_json::Value> = serde_saphyr::from_multiple(&rendered).unwrap();
    let read = |file: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(format!("{CHART}/../deploy/{file}")).unwrap();
        serde_saphyr::from_multiple(&text).unwrap()
    };
    let mut chart_controller = rules(&chart, "ClusterRole", "-controller");
    chart_controller.extend(rules(&chart, "Role", "-controller-leader-election"));
    chart_controller.sort();
    assert_eq!(rules(&read("controller.yaml"), "ClusterRole", "serin-controller"), chart_controller);
    assert_eq!(rules(&read("waypoint.yaml"), "Role", "serin-waypoint"), rules(&chart, "Role", "-waypoint"));
}

#[tokio::test]
async fn the_chart_installs_runs_a_rollout_on_real_traffic_and_uninstalls_without_a_trace() {
    let ns = namespace_with_target("chart").await;
    let release = format!("serin-{}", ns.name.rsplit('-').next().unwrap());
    let n = ns.name.clone();
    let (code, out) = helm(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &n,
        "--set",
        &format!("controller.watchNamespace={n}"),
        "--set",
        &format!("waypoint.namespaces={{{n}}}"),
        "--set",
        "controller.image.repository=serin-controller",
        "--set",
        "waypoint.image.repository=serin-meshproxy",
        "--set",
        "prometheus.enabled=true",
        "--set",
        "prometheus.image.repository=serin-prometheus",
        "--set",
        "prometheus.scrapeInterval=2s",
        "--set",
        "networkPolicy.enabled=true",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert_eq!(code, 0, "helm install:\n{out}");
    assert!(out.contains(&format!("The controller runs the Canaries of namespace {n}")), "{out}");

    // The bundled Prometheus is what the installed controller judges with.
    let prometheus = pod_ip(&ns, "app.kubernetes.io/name=serin-prometheus").await;
    let stage = Stage::without_waypoint(ns, prometheus).await;
    let (client, before) = stage.client("client", &[]).await;
    let analysis = json!({
        "interval": "5s", "threshold": 2, "stepWeights": [30, 60],
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
    });
    super::super::support::apply(&stage.ns.api::<Canary>(), &super::canary(&stage.ns, analysis)).await;
    stage.initialized().await;
    set_image(&stage.ns, "serin-testapp:v2").await;
    let status = stage.outcome(Duration::from_secs(240)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");
    let judged = status.metrics.iter().find(|m| m.name == "request-success-rate").and_then(|m| m.value);
    assert_eq!(judged, Some(100.0), "{status:?}");
    let primary = stage.ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2");
    only_version_from_now_on(client, "v2").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");
    let query = format!("sum(meshproxy_requests_total{{namespace=\"{n}\",backend=\"podinfo-canary\"}})");
    let served = prometheus_query(prometheus, &query).await.unwrap();
    assert!(!served.is_empty(), "the bundled Prometheus has no canary requests from the waypoint");

    // The next version, aborted mid-run: the rollback is counted too.
    set_image(&stage.ns, "serin-testapp:v3").await;
    eventually("v3 under analysis", Duration::from_secs(120), || async {
        let canary = stage.ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?;
        let phase = canary.status.map(|s| s.phase).unwrap_or_default();
        if phase == CanaryPhase::Progressing { Ok(()) } else { Err(format!("{phase}")) }
    })
    .await;
    super::request(&stage.ns, r#"{"id":"stop","action":"abort"}"#).await;
    assert_eq!(stage.outcome(Duration::from_secs(120)).await.phase, CanaryPhase::Failed);

    // Every query of the chart's dashboard returns data from that Prometheus.
    dashboard_queries_return_data(prometheus, &n).await;

    // Uninstalled: nothing labelled with the release is left, here or cluster-wide.
    let ns = &stage.ns;
    let selector = format!("app.kubernetes.io/instance={release}");
    let installed = release_objects(ns, &selector).await;
    for kind in ["Deployment/", "Service/", "ClusterRole/", "ClusterRoleBinding/", "Role/", "NetworkPolicy/", "Pod/"] {
        assert!(installed.iter().any(|o| o.starts_with(kind)), "no {kind} of the release found: {installed:?}");
    }
    let (code, out) = helm(&["uninstall", &release, "--namespace", &n, "--wait", "--timeout", "2m"]);
    assert_eq!(code, 0, "helm uninstall:\n{out}");
    eventually("nothing of the release left", Duration::from_secs(60), || async {
        let left = release_objects(ns, &selector).await;
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;
    stage.finish().await;
}

/// Runs each panel's query and each variable's of `chart/dashboards/serin.json` (the variables
/// set to `namespace` and the Canary, target and Service `podinfo`) until every one returns data.
async fn dashboard_queries_return_data(prometheus: Ipv4Addr, namespace: &str) {
    let text = std::fs::read_to_string(format!("{CHART}/dashboards/serin.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push((panel["title"].as_str().unwrap().to_string(), target["expr"].as_str().unwrap().to_string()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(SELECTOR, LABEL) has data when SELECTOR has.
            let selector = query.trim_start_matches("label_values(").rsplit_once(',').unwrap().0;
            queries.push((format!("variable {}", variable["name"]), selector.to_string()));
        }
    }
    assert!(queries.len() >= 12, "{queries:?}");
    let fill = |expr: &str| {
        let values =
            [("$namespace", namespace), ("$canary", "podinfo"), ("$target", "podinfo"), ("$service", "podinfo")];
        let filled = values.iter().fold(expr.to_string(), |e, (variable, value)| e.replace(variable, value));
        filled.replace("$__rate_interval", "1m")
    };
    eventually("every dashboard query returning data", Duration::from_secs(60), || async {
        let mut empty = Vec::new();
        for (title, expr) in &queries {
            let result = prometheus_query(prometheus, &fill(expr)).await?;
            if result.is_empty() {
                empty.push(format!("{title}: {}", fill(expr)));
            }
        }
        if empty.is_empty() { Ok(()) } else { Err(format!("no data for {empty:#?}")) }
    })
    .await;
}

/// Every object labelled `selector` of the kinds the chart makes, in `ns` and cluster-wide.
async fn release_objects(ns: &TestNamespace, selector: &str) -> Vec<String> {
    let mut found = Vec::new();
    found.extend(names(ns.api::<Deployment>(), selector, "Deployment").await);
    found.extend(names(ns.api::<Service>(), selector, "Service").await);
    found.extend(names(ns.api::<ServiceAccount>(), selector, "ServiceAccount").await);
    found.extend(names(ns.api::<Role>(), selector, "Role").await);
    found.extend(names(ns.api::<RoleBinding>(), selector, "RoleBinding").await);
    found.extend(names(ns.api::<PodDisruptionBudget>(), selector, "PodDisruptionBudget").await);
    found.extend(names(ns.api::<k8s_openapi::api::core::v1::ConfigMap>(), selector, "ConfigMap").await);
    found.extend(names(ns.api::<k8s_openapi::api::networking::v1::NetworkPolicy>(), selector, "NetworkPolicy").await);
    found.extend(names(ns.api::<Pod>(), selector, "Pod").await);
    found.extend(names(Api::<ClusterRole>::all(ns.client.clone()), selector, "ClusterRole").await);
    found.extend(names(Api::<ClusterRoleBinding>::all(ns.client.clone()), selector, "ClusterRoleBinding").await);
    found
}

async fn names<K>(api: Api<K>, selector: &str, kind: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default().labels(selector)).await.unwrap();
    list.items.iter().filter_map(|o| o.meta().name.clone()).map(|name| format!("{kind}/{name}")).collect()
}

async fn pod_ip(ns: &TestNamespace, selector: &str) -> Ipv4Addr {
    eventually(&format!("a ready pod {selector}"), Duration::from_secs(60), || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
        pods.items
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
            .next()
            .ok_or_else(|| format!("{} pods, none with an IP", pods.items.len()))
    })
    .await
}
