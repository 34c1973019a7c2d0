//! The controller as users run it: a pod from `deploy/controller.yaml`, with its service account
//! and RBAC, reading the rig's Prometheus by its Service name.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::cluster::{ready_deployment, traffic_report};
use super::super::support::{TestNamespace, apply, eventually};
use super::operator_api::{post_to, token_for};
use super::waypoint::{Stage, only_version_from_now_on};
use super::{canary, image_of, set_image};

#[tokio::test]
async fn the_controller_pod_deleted_mid_run_is_replaced_and_the_run_ends_with_one_promotion() {
    let stage = Stage::new("controller-pod").await;
    let (client, before) = stage.client("client", &[]).await;
    let ns = &stage.ns;
    install_controller_pod(ns).await;
    refuses_requests_from_whom_rbac_does_not_allow(ns).await;
    let analysis = json!({
        "interval": "5s", "threshold": 2, "stepWeights": [20, 40, 60],
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
    });
    apply(&ns.api::<Canary>(), &canary(ns, analysis)).await;
    stage.initialized().await;

    // Mid-run, the controller's pod goes; its Deployment starts another, which finishes the run.
    set_image(ns, "serin-testapp:v2").await;
    eventually("the run past its first step", Duration::from_secs(120), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        if status.phase == CanaryPhase::Progressing && status.canary_weight >= 20 {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    let first = controller_pods(ns).await;
    assert_eq!(first.len(), 1, "{first:?}");
    ns.api::<Pod>().delete(&first[0], &DeleteParams::default()).await.unwrap();
    let status = stage.outcome(Duration::from_secs(240)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");
    let second = controller_pods(ns).await;
    assert!(!second.contains(&first[0]), "the run was finished by a new pod: {second:?}");

    // Exactly one promotion, the primary on the new image, and no request failed meanwhile.
    let promotions = || async {
        let notes = ns.event_notes().await?;
        Ok::<_, String>(notes.iter().filter(|n| n.starts_with("Promotion completed!")).count())
    };
    eventually("the promotion's event", Duration::from_secs(30), || async {
        match promotions().await? {
            0 => Err("no promotion event yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2");
    only_version_from_now_on(client, "v2").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");
    assert_eq!(promotions().await.unwrap(), 1, "{:#?}", ns.event_notes().await);
    let _ = Api::<ClusterRoleBinding>::all(ns.client.clone())
        .delete(&format!("serin-controller-{}", ns.name), &DeleteParams::default())
        .await;
    stage.finish().await;
}

/// The controller of `deploy/controller.yaml`, run in the test's namespace and watching only it
/// (the rig is shared with other tests): its service account, its ClusterRole bound to that
/// account, and its Deployment with `--namespace`.
async fn install_controller_pod(ns: &TestNamespace) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/controller.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let client = ns.client.clone();
    for mut document in documents {
        match document["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                document["metadata"]["namespace"] = json!(ns.name);
                apply(&ns.api::<ServiceAccount>(), &serde_json::from_value(document).unwrap()).await;
            }
            "ClusterRole" => {
                apply(&Api::<ClusterRole>::all(client.clone()), &serde_json::from_value(document).unwrap()).await;
            }
            "ClusterRoleBinding" => {
                document["metadata"]["name"] = json!(format!("serin-controller-{}", ns.name));
                document["subjects"][0]["namespace"] = json!(ns.name);
                apply(&Api::<ClusterRoleBinding>::all(client.clone()), &serde_json::from_value(document).unwrap())
                    .await;
            }
            "Service" => {
                document["metadata"]["namespace"] = json!(ns.name);
                apply(&ns.api::<Service>(), &serde_json::from_value(document).unwrap()).await;
            }
            "Deployment" => {
                document["metadata"]["namespace"] = json!(ns.name);
                let args = &mut document["spec"]["template"]["spec"]["containers"][0]["args"];
                args.as_array_mut().unwrap().push(json!(format!("--namespace={}", ns.name)));
                apply(&ns.api::<Deployment>(), &serde_json::from_value(document).unwrap()).await;
            }
            _ => {}
        }
    }
    ready_deployment(ns, "serin-controller").await;
}

/// With the RBAC of the manifest, the controller's pod can review tokens and permissions: a
/// request from an account that may not patch Canaries is refused naming it (not a 503).
async fn refuses_requests_from_whom_rbac_does_not_allow(ns: &TestNamespace) {
    let viewer = token_for(ns, "viewer", false).await;
    let pod = controller_pods(ns).await.remove(0);
    let ip: std::net::Ipv4Addr =
        ns.api::<Pod>().get(&pod).await.unwrap().status.unwrap().pod_ip.unwrap().parse().unwrap();
    let (code, body) = post_to(ip, 8080, &format!("/canaries/{}/podinfo/promote", ns.name), Some(&viewer)).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(&format!("system:serviceaccount:{}:viewer may not patch", ns.name)), "{body}");
}

async fn controller_pods(ns: &TestNamespace) -> Vec<String> {
    eventually("one running controller pod", Duration::from_secs(60), || async {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels("app.kubernetes.io/name=serin-controller"))
            .await
            .map_err(|e| e.to_string())?;
        let running: Vec<String> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if running.is_empty() { Err(format!("{:?}", pods.items.len())) } else { Ok(running) }
    })
    .await
}
