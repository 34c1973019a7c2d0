//! What the rig gives pods as a cluster does: ClusterIPs that answer (kube-proxy), names that
//! resolve (CoreDNS), volumes, and Prometheus running as a pod that finds other pods through the
//! apiserver. Included by `tests/rig.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::support::cluster::{
    install_prometheus, prometheus_query, start_traffic, traffic_after, traffic_pod, traffic_report,
};
use super::support::{TestNamespace, apply, eventually, http_get, rig_client};
use super::{APP_PORT, app_deployment, app_service, ready_pod_ips};

#[tokio::test]
async fn a_client_pod_reaches_a_service_by_its_short_name_through_the_cluster_ip() {
    let client = rig_client().await;
    let ns = TestNamespace::create(&client, "e2e-svc").await;
    apply(&ns.api::<Deployment>(), &app_deployment("app", "serin-testapp:v1", json!([]))).await;
    apply(&ns.api::<Service>(), &app_service("app")).await;
    let pods = ready_pod_ips(&ns, "app", 2).await;

    // `app` resolves through the pod's resolv.conf search path to app.<ns>.svc.cluster.local, and
    // its ClusterIP is spread over both pods by kube-proxy.
    let traffic = start_traffic(&ns, &traffic_pod("client", &format!("http://app:{APP_PORT}/"), 40, &[])).await;
    let start = traffic_report(traffic).await.unwrap();
    let seen = traffic_after(traffic, &start, 80).await;
    assert_eq!(seen.failed(), 0, "{seen:?}");
    assert_eq!(seen.by_version.keys().collect::<Vec<_>>(), ["v1"], "{seen:?}");
    // The pods' own counts cover every answer (which pod a keep-alive connection lands on is
    // kube-proxy's choice, per connection).
    let answered = traffic_report(traffic).await.unwrap().answered as f64;
    let mut served = 0.0;
    for pod in &pods {
        let (code, metrics) = http_get(*pod, APP_PORT, "/metrics").await.unwrap();
        assert_eq!(code, 200);
        served += metrics
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains("path=\"/\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(served >= answered, "the pods served {served} of the {answered} answers the client got");

    // Fully qualified, and from a pod in another namespace.
    let other = TestNamespace::create(&client, "e2e-svc-client").await;
    let fqdn = format!("http://app.{}.svc.cluster.local:{APP_PORT}/", ns.name);
    let far = start_traffic(&other, &traffic_pod("client", &fqdn, 20, &[])).await;
    let seen = traffic_after(far, &traffic_report(far).await.unwrap(), 20).await;
    assert_eq!((seen.failed(), seen.by_version.get("v1").copied().unwrap_or(0) >= 20), (0, true), "{seen:?}");
    other.delete().await;
    ns.delete().await;
}

#[tokio::test]
async fn prometheus_in_a_pod_discovers_annotated_pods_and_scrapes_them() {
    let client = rig_client().await;
    let prometheus = install_prometheus(&client).await;
    let ns = TestNamespace::create(&client, "e2e-prom").await;
    let mut deployment = app_deployment("app", "serin-testapp:v3", json!([]));
    let template = deployment.spec.as_mut().unwrap().template.metadata.as_mut().unwrap();
    template.annotations = Some(
        [("prometheus.io/scrape", "true"), ("prometheus.io/port", "9898")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    apply(&ns.api::<Deployment>(), &deployment).await;
    apply(&ns.api::<Service>(), &app_service("app")).await;
    ready_pod_ips(&ns, "app", 2).await;
    let traffic = start_traffic(&ns, &traffic_pod("client", &format!("http://app:{APP_PORT}/"), 20, &[])).await;
    traffic_after(traffic, &traffic_report(traffic).await.unwrap(), 20).await;

    // Both pods are found through the apiserver and scraped; their series carry the pod labels.
    let query = format!("sum by (pod, version) (http_requests_total{{namespace=\"{}\", app=\"app\"}})", ns.name);
    let series = eventually("both pods' request counts in Prometheus", Duration::from_secs(90), || async {
        let result = prometheus_query(prometheus, &query).await?;
        let pods: BTreeSet<String> =
            result.iter().filter_map(|s| s["metric"]["pod"].as_str().map(String::from)).collect();
        if pods.len() == 2 { Ok(result) } else { Err(format!("{result:?}")) }
    })
    .await;
    for sample in &series {
        assert_eq!(sample["metric"]["version"], "v3", "{sample}");
    }
    ns.delete().await;
}
