//! What a cluster gives tests beyond the apiserver: client pods that send traffic to a Service by
//! name and report who answered, and Prometheus running as a pod.

use std::net::Ipv4Addr;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;
use serin_e2e::traffic::Report;

use super::{TestNamespace, apply, eventually, http_get};

/// Where a traffic pod serves its report.
pub const TRAFFIC_PORT: u16 = 8080;

/// A client pod sending `rate` requests per second to `url` (a Service by name), with `headers`
/// (`name: value`), for at most ten minutes.
pub fn traffic_pod(name: &str, url: &str, rate: u32, headers: &[&str]) -> Pod {
    let mut args = vec!["--url".to_string(), url.to_string(), "--rate".into(), rate.to_string()];
    args.extend(["--max-seconds".into(), "600".into()]);
    for header in headers {
        args.extend(["--header".to_string(), header.to_string()]);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "traffic",
                "image": "serin-traffic:latest",
                "args": args,
                "ports": [{ "name": "report", "containerPort": TRAFFIC_PORT }],
                "readinessProbe": { "httpGet": { "path": "/healthz", "port": TRAFFIC_PORT }, "periodSeconds": 1 },
            }],
        },
    }))
    .unwrap()
}

/// Starts a traffic pod and waits until it runs; returns its IP.
pub async fn start_traffic(ns: &TestNamespace, pod: &Pod) -> Ipv4Addr {
    apply(&ns.api::<Pod>(), pod).await;
    let name = pod.metadata.name.clone().unwrap();
    eventually(&format!("traffic pod {name} reporting"), Duration::from_secs(60), || async {
        let pod = ns.api::<Pod>().get(&name).await.map_err(|e| e.to_string())?;
        let ip: Ipv4Addr = pod.status.and_then(|s| s.pod_ip).and_then(|ip| ip.parse().ok()).ok_or("no pod IP yet")?;
        traffic_report(ip).await.map(|_| ip)
    })
    .await
}

/// What the traffic pod at `ip` has seen so far.
pub async fn traffic_report(ip: Ipv4Addr) -> Result<Report, String> {
    match http_get(ip, TRAFFIC_PORT, "/report").await {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|e| format!("report {body:?}: {e}")),
        other => Err(format!("GET {ip}:{TRAFFIC_PORT}/report: {other:?}")),
    }
}

/// Waits until the traffic pod has had at least `answers` more answers than in `since`; returns
/// what happened in between.
pub async fn traffic_after(ip: Ipv4Addr, since: &Report, answers: u64) -> Report {
    eventually(&format!("{answers} more answers at traffic pod {ip}"), Duration::from_secs(120), || async {
        let between = traffic_report(ip).await?.since(since);
        if between.answered >= answers { Ok(between) } else { Err(format!("{between:?}")) }
    })
    .await
}

/// Installs Prometheus as a pod (`e2e/manifests/prometheus.yaml`), once per rig, and waits until
/// it is ready; returns its Service's ClusterIP.
pub async fn install_prometheus(client: &Client) -> Ipv4Addr {
    apply_manifest_file(client, concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/prometheus.yaml"), None).await;
    let service = Api::<Service>::namespaced(client.clone(), "monitoring").get("prometheus").await.unwrap();
    let ip: Ipv4Addr = service.spec.and_then(|s| s.cluster_ip).and_then(|ip| ip.parse().ok()).expect("a ClusterIP");
    eventually("Prometheus ready behind its Service", Duration::from_secs(120), || async {
        match http_get(ip, 9090, "/-/ready").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ip
}

/// Applies every document of a YAML file server-side, as `kubectl apply --server-side -f` does;
/// namespaced objects without a namespace go to `namespace`.
pub async fn apply_manifest_file(client: &Client, path: &str, namespace: Option<&str>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    for document in documents {
        let in_namespace = document["metadata"]["namespace"].as_str().or(namespace).unwrap_or("default").to_string();
        let (c, ns) = (client.clone(), in_namespace.as_str());
        match document["kind"].as_str().unwrap_or_default() {
            "Namespace" => drop(apply(&Api::<Namespace>::all(c), &from(document)).await),
            "ClusterRole" => drop(apply(&Api::<ClusterRole>::all(c), &from(document)).await),
            "ClusterRoleBinding" => drop(apply(&Api::<ClusterRoleBinding>::all(c), &from(document)).await),
            "Role" => drop(apply(&Api::<Role>::namespaced(c, ns), &from(document)).await),
            "RoleBinding" => drop(apply(&Api::<RoleBinding>::namespaced(c, ns), &from(document)).await),
            "ServiceAccount" => drop(apply(&Api::<ServiceAccount>::namespaced(c, ns), &from(document)).await),
            "ConfigMap" => drop(apply(&Api::<ConfigMap>::namespaced(c, ns), &from(document)).await),
            "Deployment" => drop(apply(&Api::<Deployment>::namespaced(c, ns), &from(document)).await),
            "Service" => drop(apply(&Api::<Service>::namespaced(c, ns), &from(document)).await),
            other => panic!("{path}: no test support for kind {other:?}"),
        }
    }
}

fn from<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).unwrap()
}

/// Runs an instant PromQL query against the Prometheus at `ip`; returns the result vector.
pub async fn prometheus_query(ip: Ipv4Addr, query: &str) -> Result<Vec<serde_json::Value>, String> {
    let encoded: String = query
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    match http_get(ip, 9090, &format!("/api/v1/query?query={encoded}")).await {
        Ok((200, body)) => {
            let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{body}: {e}"))?;
            Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
        }
        other => Err(format!("query {query:?}: {other:?}")),
    }
}

/// Installs Serin's CRDs (`crds/`) and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            install_crd(&api, &crd).await;
        }
    }
}

/// Applies a CRD and waits until the apiserver serves it.
pub async fn install_crd(api: &Api<CustomResourceDefinition>, crd: &CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap();
    apply(api, crd).await;
    eventually(&format!("CRD {name} established"), Duration::from_secs(30), || async {
        let crd = api.get(&name).await.map_err(|e| e.to_string())?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established { Ok(()) } else { Err("not established".into()) }
    })
    .await;
}

/// Installs the Gateway API HTTPRoute CRD (as generated from the types Serin uses).
pub async fn install_httproute_crd(client: &Client) {
    let mut crd = HttpRoute::crd();
    // The upstream CRDs carry this; the apiserver refuses a *.k8s.io group without it.
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("api-approved.kubernetes.io".into(), "https://github.com/kubernetes-sigs/gateway-api/pull/891".into());
    install_crd(&Api::<CustomResourceDefinition>::all(client.clone()), &crd).await;
}

/// Applies `deploy/waypoint.yaml` in the namespace and waits for its pods.
pub async fn install_waypoint(ns: &TestNamespace) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/waypoint.yaml");
    apply_manifest_file(&ns.client, path, Some(&ns.name)).await;
    ready_deployment(ns, "serin-waypoint").await;
}

pub async fn ready_deployment(ns: &TestNamespace, deployment: &str) {
    eventually(&format!("Deployment {deployment} ready"), Duration::from_secs(90), || async {
        let object = ns.api::<Deployment>().get(deployment).await.map_err(|e| e.to_string())?;
        let status = object.status.unwrap_or_default();
        let wanted = object.spec.and_then(|s| s.replicas).unwrap_or(1);
        if status.ready_replicas == Some(wanted) { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
}
