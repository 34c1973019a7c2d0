//! A DaemonSet target: one pod per node, scaled to zero by a node selector no node carries, rolled
//! out through the waypoint like a Deployment.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::app_deployment;
use super::super::support::cluster::{install_prometheus, prometheus_query, traffic_report};
use super::super::support::{TestNamespace, apply, eventually, rig_client};
use super::waypoint::{Stage, only_version_from_now_on};
use super::{canary, namespace_with_crds};

#[tokio::test]
async fn a_daemon_set_target_rolls_out_through_the_waypoint() {
    let prometheus = install_prometheus(&rig_client().await).await;
    let ns = namespace_with_crds("daemonset").await;
    apply(&ns.api::<DaemonSet>(), &daemon_set(&ns, "serin-testapp:v1")).await;
    daemon_set_settles(&ns, "podinfo", "serin-testapp:v1", 2).await;
    let mut stage = Stage::around(ns, prometheus).await;
    let (client, before) = stage.client("client", &[]).await;
    let mut object = canary(
        &stage.ns,
        json!({
            "interval": "5s", "threshold": 2, "stepWeight": 50, "maxWeight": 50,
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
        }),
    );
    object.spec.target_ref.kind = Some("DaemonSet".into());
    stage.canary_object(object).await;
    let ns = &stage.ns;

    // Initialized: the primary DaemonSet runs on every node, the target on none.
    daemon_set_settles(ns, "podinfo-primary", "serin-testapp:v1", 2).await;
    daemon_set_settles(ns, "podinfo", "serin-testapp:v1", 0).await;
    only_version_from_now_on(client, "v1").await;

    // A new image: the canary DaemonSet comes back on every node, takes half the traffic, and is
    // promoted; then it is parked again.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v2"}]}}}});
    ns.api::<DaemonSet>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let during = eventually("v2 serving part of the traffic", Duration::from_secs(120), || async {
        let report = traffic_report(client).await?.since(&before);
        let from_v2 = report.by_version.get("v2").copied().unwrap_or(0);
        if from_v2 >= 20 { Ok(report) } else { Err(format!("{report:?}")) }
    })
    .await;
    assert!(during.by_version.get("v1").copied().unwrap_or(0) > 0, "{during:?}");
    let status = stage.outcome(Duration::from_secs(180)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");
    daemon_set_settles(ns, "podinfo-primary", "serin-testapp:v2", 2).await;
    daemon_set_settles(ns, "podinfo", "serin-testapp:v2", 0).await;
    only_version_from_now_on(client, "v2").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");

    // The analysis judged the canary DaemonSet's requests, read from the waypoint through Prometheus.
    let query = format!("sum(meshproxy_requests_total{{namespace=\"{}\",backend=\"podinfo-canary\"}})", ns.name);
    let served = prometheus_query(stage.prometheus, &query).await.unwrap();
    let count: f64 = served.first().and_then(|s| s["value"][1].as_str()?.parse().ok()).unwrap_or(0.0);
    assert!(count > 20.0, "Prometheus saw {count} canary requests at the waypoint: {served:?}");
    eventually("the promotion's event", Duration::from_secs(30), || async {
        let notes = ns.event_notes().await?;
        if notes.iter().any(|n| n.starts_with("Promotion completed!")) { Ok(()) } else { Err(format!("{notes:#?}")) }
    })
    .await;
    let canary = ns.api::<Canary>().get("podinfo").await.unwrap();
    assert_eq!(canary.status.unwrap().canary_weight, 0);
    stage.finish().await;
}

/// The sample app as a DaemonSet `podinfo` at `image`.
fn daemon_set(ns: &TestNamespace, image: &str) -> DaemonSet {
    let spec = app_deployment("podinfo", image, json!([])).spec.unwrap();
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "podinfo", "namespace": ns.name},
        "spec": {"selector": spec.selector, "template": spec.template},
    }))
    .unwrap()
}

/// Waits until the DaemonSet runs `image` on `nodes` nodes, every pod updated and available.
async fn daemon_set_settles(ns: &TestNamespace, name: &str, image: &str, nodes: i32) {
    eventually(&format!("DaemonSet {name} at {image} on {nodes} nodes"), Duration::from_secs(120), || async {
        let daemon_set = ns.api::<DaemonSet>().get(name).await.map_err(|e| e.to_string())?;
        let spec = daemon_set.spec.clone().unwrap_or_default().template.spec.unwrap_or_default();
        let status = daemon_set.status.clone().unwrap_or_default();
        let settled = spec.containers[0].image.as_deref() == Some(image)
            && status.observed_generation == daemon_set.metadata.generation
            && status.desired_number_scheduled == nodes
            && status.current_number_scheduled == nodes
            && status.number_available.unwrap_or(0) == nodes
            && status.updated_number_scheduled.unwrap_or(0) == nodes;
        if settled { Ok(()) } else { Err(format!("{:?} {status:?}", spec.containers[0].image)) }
    })
    .await;
}
