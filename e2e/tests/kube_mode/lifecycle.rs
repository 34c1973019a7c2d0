//! A rollout's life under traffic: a new revision mid-run, a revert to the promoted one, a retry
//! through the annotation, and the Canary deleted with `revertOnDeletion`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::cluster::traffic_report;
use super::super::support::{TestNamespace, eventually};
use super::waypoint::{Stage, only_version_from_now_on};
use super::{image_of, request, set_image, wait_for_phase};

fn analysis() -> serde_json::Value {
    json!({
        "interval": "4s", "threshold": 2, "stepWeight": 20, "maxWeight": 60,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
    })
}

#[tokio::test]
async fn a_new_revision_mid_run_restarts_a_revert_cancels_and_a_retry_runs_again() {
    let mut stage = Stage::new("lifecycle").await;
    let (client, before) = stage.client("client", &[]).await;
    stage.canary(analysis()).await;
    let ns = &stage.ns;

    // v2 gets traffic; v3 arrives mid-run: the run starts over at weight 0 and promotes v3.
    set_image(ns, "serin-testapp:v2").await;
    weight_reaches(ns, 40).await;
    set_image(ns, "serin-testapp:v3").await;
    eventually("the run restarted at weight 0", Duration::from_secs(60), || async {
        let status = status(ns).await?;
        if status.canary_weight == 0 && status.last_applied_spec.is_some() {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    let done = stage.outcome(Duration::from_secs(180)).await;
    assert_eq!(done.phase, CanaryPhase::Succeeded, "{done:?}");
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v3", "the newest revision is promoted, not the interrupted one");
    only_version_from_now_on(client, "v3").await;

    // v4 starts a run; setting the image back to v3, the promoted revision, cancels it.
    set_image(ns, "serin-testapp:v4").await;
    weight_reaches(ns, 20).await;
    set_image(ns, "serin-testapp:v3").await;
    eventually("the run cancelled", Duration::from_secs(60), || async {
        let status = status(ns).await?;
        let settled = matches!(status.phase, CanaryPhase::Succeeded | CanaryPhase::Initialized);
        if settled && status.canary_weight == 0 { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
    assert_eq!(image_of(&ns.api::<Deployment>().get("podinfo-primary").await.unwrap()), "serin-testapp:v3");
    only_version_from_now_on(client, "v3").await;

    // v5 fails; `retry` through the annotation runs it again (and it fails again).
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v5",
        "env": [{"name": "TESTAPP_ERROR_RATE", "value": "0.5"}]}]}}}});
    ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    wait_for_phase(ns, CanaryPhase::Progressing, Duration::from_secs(60)).await;
    assert_eq!(stage.outcome(Duration::from_secs(180)).await.phase, CanaryPhase::Failed);
    request(ns, r#"{"id":"again","action":"retry"}"#).await;
    wait_for_phase(ns, CanaryPhase::Progressing, Duration::from_secs(60)).await;
    let retried = stage.outcome(Duration::from_secs(180)).await;
    assert_eq!(retried.phase, CanaryPhase::Failed, "{retried:?}");
    assert_eq!(retried.last_handled_request.as_deref(), Some("again"));
    only_version_from_now_on(client, "v3").await;

    // Only v5's own answers failed.
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert!(whole.recent_failures.iter().all(|f| f.contains("from version v5")), "{:#?}", whole.recent_failures);
    assert_eq!(whole.unanswered, 0, "{whole:?}");
    stage.finish().await;
}

#[tokio::test]
async fn deleting_a_canary_with_revert_on_deletion_gives_clients_back_to_the_target_without_a_failed_request() {
    let mut stage = Stage::new("revert").await;
    let (client, before) = stage.client("client", &[]).await;
    let mut spec = analysis();
    spec["stepWeight"] = json!(50);
    stage.canary(spec).await;
    let ns = &stage.ns;
    let patch = json!({"spec": {"revertOnDeletion": true}});
    ns.api::<Canary>().patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    only_version_from_now_on(client, "v1").await;

    ns.api::<Canary>().delete("podinfo", &DeleteParams::default()).await.unwrap();
    eventually("the Canary gone", Duration::from_secs(120), || async {
        match ns.api::<Canary>().get_opt("podinfo").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The user's Service selects the target's pods again, and the target serves at full size.
    let selector = ns.api::<Service>().get("podinfo").await.unwrap().spec.unwrap().selector.unwrap_or_default();
    assert_eq!(selector.get("app").map(String::as_str), Some("podinfo"), "{selector:?}");
    let target = ns.api::<Deployment>().get("podinfo").await.unwrap();
    assert_eq!(target.spec.and_then(|s| s.replicas), Some(2));
    eventually("the generated primary removed", Duration::from_secs(60), || async {
        match ns.api::<Deployment>().get_opt("podinfo-primary").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|d| d.map(|d| d.metadata.deletion_timestamp)))),
        }
    })
    .await;
    only_version_from_now_on(client, "v1").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");
    stage.finish().await;
}

async fn status(ns: &TestNamespace) -> Result<serin_crds::CanaryStatus, String> {
    let canary = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?;
    canary.status.ok_or_else(|| "no status".to_string())
}

async fn weight_reaches(ns: &TestNamespace, weight: i32) {
    eventually(&format!("the canary at weight {weight}"), Duration::from_secs(120), || async {
        let status = status(ns).await?;
        if status.phase == CanaryPhase::Progressing && status.canary_weight >= weight {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn skip_analysis_promotes_a_new_version_without_judging_it() {
    let mut stage = Stage::new("skip").await;
    let (client, _) = stage.client("client", &[]).await;
    stage.canary(analysis()).await;
    let ns = &stage.ns;
    let patch = json!({"spec": {"skipAnalysis": true}});
    ns.api::<Canary>().patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    // A version that fails half its requests: with the analysis skipped, it is promoted anyway.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v2",
        "env": [{"name": "TESTAPP_ERROR_RATE", "value": "0.5"}]}]}}}});
    ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let status = stage.outcome(Duration::from_secs(180)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");
    assert!(status.metrics.is_empty(), "no metric was measured: {:?}", status.metrics);
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2");
    eventually("the client answered by v2", Duration::from_secs(60), || async {
        let report = traffic_report(client).await?;
        if report.by_version.contains_key("v2") { Ok(()) } else { Err(format!("{report:?}")) }
    })
    .await;
    stage.finish().await;
}
