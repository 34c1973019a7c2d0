//! One controller, two namespaces: each Canary runs on its own, one promoted while the other is
//! rolled back, at the same time.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use serin_crds::CanaryPhase;

use super::super::support::cluster::traffic_report;
use super::waypoint::{Stage, only_version_from_now_on};
use super::{controller_context, image_of, set_image};

#[tokio::test]
async fn canaries_in_two_namespaces_progress_independently_under_one_controller() {
    let (healthy, failing) = tokio::join!(Stage::new("ns-a"), Stage::new("ns-b"));
    let ((client_a, before_a), (client_b, _)) =
        tokio::join!(healthy.client("client", &[]), failing.client("client", &[]));
    // One controller for every namespace, limited to this test's Canaries by its instance label
    // (the rig is shared with other tests).
    let instance = format!("test-{}", healthy.ns.name);
    let analysis = json!({
        "interval": "5s", "threshold": 2, "stepWeight": 25, "maxWeight": 50,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
    });
    healthy.apply_canary_for(analysis.clone(), &instance).await;
    failing.apply_canary_for(analysis, &instance).await;
    let mut context = controller_context(&healthy.ns, Some(format!("http://{}:9090", healthy.prometheus)));
    context.namespace = None;
    context.instance = Some(instance);
    let controller = tokio::spawn(serin_controller::kube::run(Arc::new(context)));
    tokio::join!(healthy.initialized(), failing.initialized());

    set_image(&healthy.ns, "serin-testapp:v2").await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v2",
        "env": [{"name": "TESTAPP_ERROR_RATE", "value": "0.5"}]}]}}}});
    failing.ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();

    let (a, b) = tokio::join!(healthy.outcome(Duration::from_secs(240)), failing.outcome(Duration::from_secs(240)));
    assert_eq!((a.phase, b.phase), (CanaryPhase::Succeeded, CanaryPhase::Failed), "{a:?}\n{b:?}");
    let primary = |stage: &Stage| {
        let api = stage.ns.api::<Deployment>();
        async move { image_of(&api.get("podinfo-primary").await.unwrap()) }
    };
    assert_eq!(primary(&healthy).await, "serin-testapp:v2");
    assert_eq!(primary(&failing).await, "serin-testapp:v1");
    only_version_from_now_on(client_a, "v2").await;
    only_version_from_now_on(client_b, "v1").await;
    let whole_a = traffic_report(client_a).await.unwrap().since(&before_a);
    assert_eq!(whole_a.failed(), 0, "{whole_a:?}");
    controller.abort();
    healthy.finish().await;
    failing.finish().await;
}
