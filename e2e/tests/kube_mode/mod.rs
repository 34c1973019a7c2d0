//! Kubernetes mode on the rig: the controller, run in the test against the rig's apiserver, takes a
//! Canary from bootstrap to a promoted new image, with the pods played by the pod runner.
//!
//! Included by `tests/rig.rs`, so it runs inside the rig like the other rig tests.

use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Patch, PatchParams};

use serde_json::json;
use serin_controller::analysis::MetricSources;
use serin_controller::outbound::Outbound;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::support::{TestNamespace, apply, eventually, http_get, rig_client};

mod chart;
mod daemon_set;
mod gitops;
mod in_cluster;
mod lifecycle;
mod namespaces;
mod operator_api;
mod plugin;
mod strategies;
mod waypoint;
use super::app_deployment;
use super::support::cluster::{install_crds, install_httproute_crd};

#[tokio::test]
async fn the_controller_bootstraps_a_canary_and_promotes_a_new_image() {
    let ns = namespace_with_target("kube-mode").await;
    apply(
        &ns.api::<Canary>(),
        &canary(&ns, json!({"interval": "1s", "threshold": 2, "stepWeight": 50, "maxWeight": 50})),
    )
    .await;

    let (controller, context) = start_controller_with_context(&ns);

    // Bootstrap: the primary runs the target's revision, the Services and the route exist, all
    // traffic goes to the primary and the target is scaled to zero.
    let initialized = wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    // Without revertOnDeletion there is nothing to restore, so no finalizer that would hold the
    // Canary (and its namespace) once the controller is gone.
    assert_eq!(initialized.metadata.finalizers, None);
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v1");
    assert_eq!(primary.status.as_ref().and_then(|s| s.ready_replicas), Some(2), "{:?}", primary.status);
    let selector = primary.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
    assert_eq!(selector.get("app").map(String::as_str), Some("podinfo-primary"));
    // The apex Service moves in the tick that decides Initialized, so it shows a moment later.
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        let wanted = if name == "podinfo-canary" { "podinfo" } else { "podinfo-primary" };
        eventually(&format!("Service {name} selecting {wanted}"), Duration::from_secs(30), || async {
            let service = ns.api::<Service>().get(name).await.map_err(|e| e.to_string())?;
            let selects = service.spec.unwrap_or_default().selector.unwrap_or_default();
            if selects.get("app").map(String::as_str) == Some(wanted) { Ok(()) } else { Err(format!("{selects:?}")) }
        })
        .await;
    }
    settles_at_weights(&ns, (100, 0)).await;
    settles_at_replicas(&ns, "podinfo", 0).await;

    // A new image: the canary is scaled up, takes half the traffic, and is promoted.
    set_image(&ns, "serin-testapp:v2").await;
    eventually("the route at 50/50", Duration::from_secs(120), || async {
        let now = weights(&ns).await;
        if now == (50, 50) { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    let done = wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(180)).await;
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2", "the primary runs the new image");
    settles_at_weights(&ns, (100, 0)).await;
    settles_at_replicas(&ns, "podinfo", 0).await;
    let status = done.status.unwrap();
    assert_eq!(status.canary_weight, 0);
    assert!(status.conditions.iter().any(|c| c.type_ == "Promoted" && c.status == "True"), "{:?}", status.conditions);

    // The controller's metrics, served as `serin-controller kubernetes` serves them.
    let telemetry = context.clone();
    let api = serin_controller::api::Api {
        gates: None,
        gate_check: None,
        status: None,
        metrics: Some(Arc::new(move || telemetry.telemetry.render())),
        requests: None,
        canaries: None,
    };
    let address = serin_controller::api::start("127.0.0.1:0".parse().unwrap(), Arc::new(api)).await.unwrap();
    let (code, text) = http_get(std::net::Ipv4Addr::LOCALHOST, address.port(), "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let ns_name = &ns.name;
    for line in [
        format!(
            "serin_canary_successes_total{{name=\"podinfo\",namespace=\"{ns_name}\",deployment_strategy=\"canary\",analysis_status=\"completed\"}} 1"
        ),
        format!("serin_canary_weight{{workload=\"podinfo-primary\",namespace=\"{ns_name}\"}} 100"),
        format!("serin_canary_status{{name=\"podinfo\",namespace=\"{ns_name}\"}} 1"),
        format!("serin_canary_total{{namespace=\"{ns_name}\"}} 1"),
        format!(
            "serin_canary_phase_duration_seconds_count{{name=\"podinfo\",namespace=\"{ns_name}\",phase=\"Progressing\"}} 1"
        ),
    ] {
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    let gates = http_get(std::net::Ipv4Addr::LOCALHOST, address.port(), "/gates/x/y/promotion").await.unwrap();
    assert_eq!(gates.0, 404, "no gates are kept here: in a cluster they go through the Kubernetes API");
    let opening = http_post(address.port(), "/gates/x/y/promotion/open").await;
    assert_eq!(opening, 404, "and nothing opens one without the Kubernetes API");

    // A deleted Canary's series go with it.
    ns.api::<Canary>().delete("podinfo", &Default::default()).await.unwrap();
    eventually("no series left of the deleted Canary", Duration::from_secs(60), || async {
        let (_, text) =
            http_get(std::net::Ipv4Addr::LOCALHOST, address.port(), "/metrics").await.map_err(|e| e.to_string())?;
        let left: Vec<&str> = text.lines().filter(|l| l.contains(&format!("namespace=\"{ns_name}\""))).collect();
        if left.iter().all(|l| l.starts_with("serin_canary_total")) { Ok(()) } else { Err(format!("{left:#?}")) }
    })
    .await;

    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_canary_whose_target_is_missing_is_stalled_until_the_target_appears() {
    let ns = namespace_with_crds("kube-missing").await;
    apply(&ns.api::<Canary>(), &canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}))).await;
    let controller = start_controller(&ns);

    let expected = format!("Deployment {}/podinfo not found", ns.name);
    eventually("Stalled, naming the target", Duration::from_secs(60), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled" && c.status == "True");
        match stalled {
            Some(c) if c.reason == "TargetNotFound" && status.message.contains(&expected) => Ok(()),
            _ => Err(format!("{status:?}")),
        }
    })
    .await;
    assert!(ns.api::<Deployment>().get_opt("podinfo-primary").await.unwrap().is_none(), "nothing was created");

    // The target's creation wakes the Canary, which initializes.
    let mut target = app_deployment("podinfo", "serin-testapp:v1", json!([]));
    target.metadata.namespace = Some(ns.name.clone());
    apply(&ns.api::<Deployment>(), &target).await;
    let ready = wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    let conditions = ready.status.unwrap().conditions;
    assert!(!conditions.iter().any(|c| c.type_ == "Stalled"), "{conditions:?}");
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn the_request_annotation_pauses_a_run_and_promotes_it() {
    let ns = namespace_with_target("kube-requests").await;
    apply(&ns.api::<Canary>(), &canary(&ns, json!({"interval": "2s", "stepWeight": 10, "maxWeight": 90}))).await;
    let controller = start_controller(&ns);
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;

    set_image(&ns, "serin-testapp:v2").await;
    eventually("the canary taking traffic", Duration::from_secs(120), || async {
        let (_, canary) = weights(&ns).await;
        if canary >= 10 { Ok(()) } else { Err(format!("canary weight {canary}")) }
    })
    .await;

    // A malformed request changes nothing and says why, on the Canary.
    request(&ns, r#"{"id":"typo","action":"puase"}"#).await;
    eventually("the refusal as an event", Duration::from_secs(30), || async {
        let events = ns
            .api::<k8s_openapi::api::events::v1::Event>()
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let refused = events.items.iter().find(|e| e.reason.as_deref() == Some("OperatorRequestRefused"));
        match refused.and_then(|e| e.note.clone()) {
            Some(note) if note.contains("action: \"puase\" is not one of") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    request(&ns, r#"{"id":"hold","action":"pause"}"#).await;
    let paused = eventually("the pause acted on", Duration::from_secs(60), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        if status.last_handled_request.as_deref() == Some("hold") { Ok(status) } else { Err(format!("{status:?}")) }
    })
    .await;
    assert!(paused.paused, "{paused:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = ns.api::<Canary>().get("podinfo").await.unwrap().status.unwrap();
    assert_eq!((still.phase, still.canary_weight), (CanaryPhase::Progressing, paused.canary_weight), "a pause holds");

    request(&ns, r#"{"id":"ship","action":"promote"}"#).await;
    let done = wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(180)).await;
    assert_eq!(done.status.unwrap().last_handled_request.as_deref(), Some("ship"));
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v2");
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_template_naming_a_missing_secret_stops_the_run_and_leaves_the_primary_serving() {
    let template = json!({"provider": {"type": "prometheus", "address": "http://127.0.0.1:1", "secretRef": {"name": "prom-auth"}}, "query": "vector(1)"});
    let failed = run_with_broken_metric("kube-nosecret", template).await;
    assert!(failed.contains("secret \"prom-auth\" not found"), "{failed}");
}

#[tokio::test]
async fn an_unreachable_prometheus_stops_the_run_and_leaves_the_primary_serving() {
    let template = json!({"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"}, "query": "vector(1)"});
    let failed = run_with_broken_metric("kube-noprom", template).await;
    assert!(failed.contains("127.0.0.1:1"), "{failed}");
}

/// Rolls out v2 with one metric from the MetricTemplate `template` (which cannot be measured);
/// checks the run fails with the reason in its status and events while v1 keeps all traffic, and
/// returns the reason.
async fn run_with_broken_metric(prefix: &str, template: serde_json::Value) -> String {
    let client = rig_client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    let ns = TestNamespace::create(&client, prefix).await;
    let mut target = app_deployment("podinfo", "serin-testapp:v1", json!([]));
    target.metadata.namespace = Some(ns.name.clone());
    apply(&ns.api::<Deployment>(), &target).await;
    let template: serin_crds::MetricTemplate = serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": ns.name}, "spec": template,
    }))
    .unwrap();
    apply(&ns.api::<serin_crds::MetricTemplate>(), &template).await;
    let analysis = json!({"interval": "1s", "threshold": 2, "stepWeight": 50, "maxWeight": 50,
        "metrics": [{"name": "error-rate", "templateRef": {"name": "error-rate"}, "thresholdRange": {"max": 1}}]});
    apply(&ns.api::<Canary>(), &canary(&ns, analysis)).await;
    let controller = start_controller(&ns);
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;

    set_image(&ns, "serin-testapp:v2").await;
    let failed = wait_for_phase(&ns, CanaryPhase::Failed, Duration::from_secs(120)).await.status.unwrap();
    let reason = failed.metrics.first().and_then(|m| m.reason.clone()).unwrap_or_default();
    assert!(failed.last_failure_reason.as_deref().unwrap_or_default().contains(&reason), "{failed:?}");
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v1", "the primary keeps serving v1");
    settles_at_weights(&ns, (100, 0)).await;
    let events = ns.api::<k8s_openapi::api::events::v1::Event>().list(&Default::default()).await.unwrap().items;
    assert!(
        events
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.note.as_deref().unwrap_or_default().contains(&reason)),
        "no Warning event names {reason:?}: {:?}",
        events.iter().map(|e| e.note.clone()).collect::<Vec<_>>()
    );
    controller.abort();
    ns.delete().await;
    reason
}

#[tokio::test]
async fn deleting_a_canary_with_revert_on_deletion_gives_the_target_back() {
    let ns = namespace_with_target("kube-revert").await;
    let mut object = canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}));
    object.spec.revert_on_deletion = Some(true);
    apply(&ns.api::<Canary>(), &object).await;
    let controller = start_controller(&ns);
    let initialized = wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    assert!(initialized.metadata.finalizers.unwrap_or_default().contains(&"serin.dev/finalizer".to_string()));
    settles_at_replicas(&ns, "podinfo", 0).await;

    ns.api::<Canary>().delete("podinfo", &Default::default()).await.unwrap();
    eventually("the Canary gone", Duration::from_secs(120), || async {
        match ns.api::<Canary>().get_opt("podinfo").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(format!("{:?}", c.status.map(|s| (s.phase, s.message)))),
        }
    })
    .await;
    // The target runs again and the apex Service, now selecting its pods, is the user's to keep.
    let target = ns.api::<Deployment>().get("podinfo").await.unwrap();
    assert_eq!(target.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(target.status.as_ref().and_then(|s| s.ready_replicas), Some(2), "{:?}", target.status);
    let apex = ns.api::<Service>().get("podinfo").await.unwrap();
    assert!(apex.metadata.owner_references.unwrap_or_default().is_empty(), "the apex Service outlives the Canary");
    assert_eq!(apex.spec.unwrap().selector.unwrap_or_default().get("app").map(String::as_str), Some("podinfo"));
    // The generated objects go with the Canary.
    eventually("the primary garbage-collected", Duration::from_secs(60), || async {
        match ns.api::<Deployment>().get_opt("podinfo-primary").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_change_to_a_configmap_the_target_uses_is_rolled_out_and_the_primary_uses_its_copy() {
    let ns = namespace_with_crds("kube-config").await;
    let config = |message: &str| -> ConfigMap {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "podinfo-config", "namespace": ns.name}, "data": {"MESSAGE": message}}))
        .unwrap()
    };
    apply(&ns.api::<ConfigMap>(), &config("hello")).await;
    let env =
        json!([{"name": "MESSAGE", "valueFrom": {"configMapKeyRef": {"name": "podinfo-config", "key": "MESSAGE"}}}]);
    let mut target = app_deployment("podinfo", "serin-testapp:v1", env);
    target.metadata.namespace = Some(ns.name.clone());
    apply(&ns.api::<Deployment>(), &target).await;
    apply(&ns.api::<Canary>(), &canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}))).await;
    let controller = start_controller(&ns);
    let initialized = wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    let first_revision = initialized.status.unwrap().last_applied_spec;
    let copy = ns.api::<ConfigMap>().get("podinfo-config-primary").await.unwrap();
    assert_eq!(copy.data.unwrap()["MESSAGE"], "hello");
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    let uses = serde_json::to_string(&primary.spec.unwrap().template).unwrap();
    assert!(uses.contains("podinfo-config-primary"), "the primary reads the copy: {uses}");

    // Only the ConfigMap changes: a new revision, rolled out, and the copy follows at promotion.
    apply(&ns.api::<ConfigMap>(), &config("bonjour")).await;
    let done = eventually("the config change promoted", Duration::from_secs(180), || async {
        let canary = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?;
        let status = canary.status.clone().unwrap_or_default();
        if status.phase == CanaryPhase::Succeeded && status.last_applied_spec != first_revision {
            Ok(status)
        } else {
            Err(format!("{:?} {:?}", status.phase, status.last_applied_spec))
        }
    })
    .await;
    assert!(done.tracked_configs.contains_key("configmap/podinfo-config"), "{:?}", done.tracked_configs);
    let copy = ns.api::<ConfigMap>().get("podinfo-config-primary").await.unwrap();
    assert_eq!(copy.data.unwrap()["MESSAGE"], "bonjour");
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn an_image_that_never_runs_fails_on_the_progress_deadline_with_the_primary_untouched() {
    let (ns, controller) = initialized_with_deadline("kube-deadline", 10).await;
    // The pod runner cannot play this image: its pods wait in ErrImagePull and never become ready.
    set_image(&ns, "registry.invalid/podinfo:v9").await;
    fails_on_the_deadline_with_the_primary_untouched(&ns, 10, "container app: ErrImagePull").await;
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_version_that_crash_loops_fails_on_the_progress_deadline_with_the_primary_untouched() {
    let (ns, controller) = initialized_with_deadline("kube-crashloop", 15).await;
    // The program starts and exits at once (an invalid setting): its pods restart with back-off
    // and are never available, while the Deployment itself reports no failure.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "serin-testapp:v2",
        "env": [{"name": "TESTAPP_ERROR_RATE", "value": "7"}]}]}}}});
    ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    eventually("the new pods crash-looping", Duration::from_secs(60), || async {
        let pods =
            ns.api::<k8s_openapi::api::core::v1::Pod>().list(&Default::default()).await.map_err(|e| e.to_string())?;
        let restarted = pods.items.iter().any(|p| {
            let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
            statuses.iter().any(|c| c.image == "serin-testapp:v2" && c.restart_count > 0)
        });
        if restarted { Ok(()) } else { Err("no restart yet".to_string()) }
    })
    .await;
    fails_on_the_deadline_with_the_primary_untouched(&ns, 15, "container app: CrashLoopBackOff after").await;
    controller.abort();
    ns.delete().await;
}

/// A namespace whose Canary, with `progressDeadlineSeconds: deadline`, is initialized.
async fn initialized_with_deadline(prefix: &str, deadline: i32) -> (TestNamespace, tokio::task::JoinHandle<()>) {
    let ns = namespace_with_target(prefix).await;
    let mut object = canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}));
    object.spec.progress_deadline_seconds = Some(deadline);
    apply(&ns.api::<Canary>(), &object).await;
    let controller = start_controller(&ns);
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    (ns, controller)
}

/// The run fails on its progress deadline, the reason naming the pods' `cause`; the primary and
/// the route are as before it.
async fn fails_on_the_deadline_with_the_primary_untouched(ns: &TestNamespace, deadline: i32, cause: &str) {
    let failed = wait_for_phase(ns, CanaryPhase::Failed, Duration::from_secs(90)).await.status.unwrap();
    let reason = failed.last_failure_reason.unwrap_or_default();
    assert!(reason.contains(&format!("progressDeadlineSeconds {deadline}")), "{reason}");
    assert!(reason.contains(cause) && reason.contains("pod podinfo-"), "{reason}");
    let stalled = failed.conditions.iter().find(|c| c.type_ == "Stalled").map(|c| c.reason.clone());
    assert_eq!(stalled.as_deref(), Some("ProgressDeadlineExceeded"));
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    assert_eq!(image_of(&primary), "serin-testapp:v1");
    assert_eq!(primary.status.and_then(|s| s.ready_replicas), Some(2));
    settles_at_weights(ns, (100, 0)).await;
    settles_at_replicas(ns, "podinfo", 0).await;
}

#[tokio::test]
async fn a_confirm_promotion_gate_in_the_cluster_holds_until_opened_through_the_annotation() {
    let (ns, controller, address) = initialized_behind_a_promotion_gate("kube-gates").await;

    set_image(&ns, "serin-testapp:v2").await;
    wait_for_phase(&ns, CanaryPhase::WaitingPromotion, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = ns.api::<Canary>().get("podinfo").await.unwrap().status.unwrap();
    assert_eq!(held.phase, CanaryPhase::WaitingPromotion, "a closed gate holds");
    assert_eq!(
        http_get(std::net::Ipv4Addr::LOCALHOST, address.port(), &format!("/gates/{}/podinfo/promotion", ns.name))
            .await
            .unwrap()
            .0,
        403
    );

    request(&ns, r#"{"id":"approve","action":"open-gate","gate":"promotion"}"#).await;
    let done = wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(120)).await.status.unwrap();
    assert!(done.open_gates.contains("promotion"), "{:?}", done.open_gates);
    assert_eq!(done.last_handled_request.as_deref(), Some("approve"));
    let events = ns.api::<k8s_openapi::api::events::v1::Event>().list(&Default::default()).await.unwrap().items;
    assert!(events.iter().any(|e| e.reason.as_deref() == Some("GateOpened")), "no GateOpened event");
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn the_start_check_names_each_missing_kind_and_how_to_install_it() {
    let client = rig_client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    serin_controller::kube::preflight(&client, None, &serin_controller::kube::required_kinds()).await.unwrap();
    let missing = serin_controller::kube::RequiredKind {
        resource: kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("serin.dev", "v1alpha1", "Nothing"),
            "nothings",
        ),
        install: "apply its CRD",
    };
    let problems = serin_controller::kube::preflight(&client, Some("default"), &[missing]).await.unwrap_err();
    assert_eq!(problems, vec!["Nothing (serin.dev/v1alpha1) is not installed: apply its CRD".to_string()]);
}

#[tokio::test]
async fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_dies() {
    use serin_controller::kube::leader::LeaseConfig;
    let ns = namespace_with_target("kube-leader").await;
    let replica = |identity: &str| {
        let config = LeaseConfig {
            namespace: ns.name.clone(),
            name: "serin-controller".into(),
            identity: identity.into(),
            // Long enough that a busy machine's late renewal is not a takeover.
            duration: Duration::from_secs(6),
            renew_every: Duration::from_secs(1),
        };
        let context = start_controller_context(&ns);
        let api = context.clone();
        let replica = tokio::spawn(async move { serin_controller::kube::run_replica(context, &config).await });
        (replica, api)
    };
    let holder = || async {
        let lease = ns.api::<k8s_openapi::api::coordination::v1::Lease>().get_opt("serin-controller").await;
        lease.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity).unwrap_or_default()
    };
    let (a, _) = replica("replica-a");
    eventually("replica-a leading", Duration::from_secs(30), || async {
        let now = holder().await;
        if now == "replica-a" { Ok(()) } else { Err(now) }
    })
    .await;
    let (b, b_context) = replica("replica-b");
    apply(&ns.api::<Canary>(), &canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}))).await;
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(holder().await, "replica-a", "a live leader keeps its lease");
    // The Service sends gate checks to either replica: the one waiting answers them too (a closed
    // gate, 403), not "no such Canary" (404).
    let standby = serve_api(&b_context, false).await;
    let path = format!("/gates/{}/podinfo/promotion", ns.name);
    let code = eventually("the standby answering a gate check", Duration::from_secs(30), || async {
        match super::support::http_get([127, 0, 0, 1].into(), standby.port(), &path).await {
            Ok((403, _)) => Ok(403),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(code, 403);

    // The leader dies without a word; the other takes over once the lease runs out, and carries on.
    a.abort();
    eventually("replica-b leading", Duration::from_secs(30), || async {
        let now = holder().await;
        if now == "replica-b" { Ok(()) } else { Err(now) }
    })
    .await;
    set_image(&ns, "serin-testapp:v2").await;
    wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(120)).await;
    b.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_users_own_apex_service_is_steered_not_owned_and_given_back() {
    let ns = namespace_with_crds("kube-takeover").await;
    let mut target = app_deployment("podinfo", "serin-testapp:v1", json!([]));
    target.metadata.namespace = Some(ns.name.clone());
    // GitOps tools claim objects by labels like these; the generated primary must not carry them.
    target.metadata.labels = Some(
        [("app.kubernetes.io/instance".to_string(), "shop".to_string()), ("team".to_string(), "web".to_string())]
            .into(),
    );
    apply(&ns.api::<Deployment>(), &target).await;
    let mut own = super::app_service("podinfo");
    own.metadata.namespace = Some(ns.name.clone());
    apply(&ns.api::<Service>(), &own).await;
    let mut object = canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}));
    object.spec.revert_on_deletion = Some(true);
    apply(&ns.api::<Canary>(), &object).await;
    let controller = start_controller(&ns);
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;

    // The apex Service is steered in the tick that decides Initialized, so it shows a moment later.
    let steered = eventually("the user's Service steered", Duration::from_secs(30), || async {
        let service = ns.api::<Service>().get("podinfo").await.map_err(|e| e.to_string())?;
        let steered =
            service.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("serin.dev/original-selector"));
        if steered { Ok(service) } else { Err(format!("{:?}", service.metadata.annotations)) }
    })
    .await;
    assert!(
        steered.metadata.owner_references.clone().unwrap_or_default().is_empty(),
        "the user's Service is not the Canary's"
    );
    let annotations = steered.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("serin.dev/original-selector").map(String::as_str), Some(r#"{"app":"podinfo"}"#));
    assert_eq!(annotations.get("kustomize.toolkit.fluxcd.io/reconcile").map(String::as_str), Some("disabled"));
    assert_eq!(
        steered.spec.unwrap().selector.unwrap_or_default().get("app").map(String::as_str),
        Some("podinfo-primary")
    );
    let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
    let labels = primary.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("web"));
    assert!(!labels.contains_key("app.kubernetes.io/instance"), "{labels:?}");

    ns.api::<Canary>().delete("podinfo", &Default::default()).await.unwrap();
    eventually("the Canary gone", Duration::from_secs(120), || async {
        match ns.api::<Canary>().get_opt("podinfo").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    let given_back = ns.api::<Service>().get("podinfo").await.unwrap();
    assert_eq!(given_back.spec.unwrap().selector.unwrap_or_default().get("app").map(String::as_str), Some("podinfo"));
    let annotations = given_back.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("serin.dev/original-selector"), "{annotations:?}");
    controller.abort();
    ns.delete().await;
}

#[tokio::test]
async fn an_autoscaled_target_gets_a_primary_autoscaler() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let ns = namespace_with_target("kube-hpa").await;
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "podinfo", "namespace": ns.name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }))
    .unwrap();
    apply(&ns.api::<HorizontalPodAutoscaler>(), &hpa).await;
    let mut object = canary(&ns, json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50}));
    object.spec.autoscaler_ref = Some(
        serde_json::from_value(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}),
        )
        .unwrap(),
    );
    apply(&ns.api::<Canary>(), &object).await;
    let controller = start_controller(&ns);
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;

    let primary = ns.api::<HorizontalPodAutoscaler>().get("podinfo-primary").await.unwrap();
    assert!(!primary.metadata.owner_references.unwrap_or_default().is_empty(), "owned by the Canary");
    let spec = primary.spec;
    assert_eq!(spec.scale_target_ref.name, "podinfo-primary");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 4));
    controller.abort();
    ns.delete().await;
}

/// A namespace whose Canary, with a confirm-promotion webhook asking the controller's API (at the
/// address returned), is initialized; the controller runs.
async fn initialized_behind_a_promotion_gate(
    prefix: &str,
) -> (TestNamespace, tokio::task::JoinHandle<()>, std::net::SocketAddr) {
    let ns = namespace_with_target(prefix).await;
    let (controller, context) = start_controller_with_context(&ns);
    let address = serve_api(&context, false).await;
    let url = format!("http://{address}/gates/{}/podinfo/promotion", ns.name);
    let analysis = json!({"interval": "1s", "stepWeight": 50, "maxWeight": 50,
        "webhooks": [{"type": "confirm-promotion", "name": "approval", "url": url}]});
    apply(&ns.api::<Canary>(), &canary(&ns, analysis)).await;
    wait_for_phase(&ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
    (ns, controller, address)
}

/// The controller's API as `serin-controller kubernetes` serves it for `context`: gate checks
/// from the Canaries' status and, with `requests`, operator requests with a bearer token.
async fn serve_api(context: &Arc<serin_controller::kube::Context>, requests: bool) -> std::net::SocketAddr {
    let gates = context.clone();
    let sink = serin_controller::kube::requests::ClusterRequests { context: context.clone() };
    let api = serin_controller::api::Api {
        gates: None,
        gate_check: Some(Arc::new(move |namespace, name, gate| gates.gate_is_open(namespace, name, gate))),
        status: None,
        metrics: None,
        requests: requests.then(|| serin_controller::api::RequestSink::Cluster(Arc::new(sink))),
        canaries: None,
    };
    serin_controller::api::start("127.0.0.1:0".parse().unwrap(), Arc::new(api)).await.unwrap()
}

/// A plain HTTP/1.1 POST with no body to 127.0.0.1:`port`; returns the status code.
async fn http_post(port: u16, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A namespace of the test's own on a rig with Serin's and the HTTPRoute CRDs installed.
async fn namespace_with_crds(prefix: &str) -> TestNamespace {
    let client = rig_client().await;
    install_crds(&client).await;
    install_httproute_crd(&client).await;
    TestNamespace::create(&client, prefix).await
}

/// A namespace of the test's own on a rig with the CRDs installed, holding the Deployment
/// `podinfo` at `serin-testapp:v1`.
async fn namespace_with_target(prefix: &str) -> TestNamespace {
    let ns = namespace_with_crds(prefix).await;
    let mut target = app_deployment("podinfo", "serin-testapp:v1", json!([]));
    target.metadata.namespace = Some(ns.name.clone());
    apply(&ns.api::<Deployment>(), &target).await;
    ns
}

/// The controller, watching this test's namespace only.
fn start_controller(ns: &TestNamespace) -> tokio::task::JoinHandle<()> {
    start_controller_with_context(ns).0
}

fn start_controller_with_context(
    ns: &TestNamespace,
) -> (tokio::task::JoinHandle<()>, Arc<serin_controller::kube::Context>) {
    let context = start_controller_context(ns);
    (tokio::spawn(serin_controller::kube::run(context.clone())), context)
}

/// A controller's context for this test's namespace, not yet running.
fn start_controller_context(ns: &TestNamespace) -> Arc<serin_controller::kube::Context> {
    Arc::new(controller_context(ns, None))
}

/// A controller's context for this test's namespace, reading `prometheus` if given.
fn controller_context(ns: &TestNamespace, prometheus: Option<String>) -> serin_controller::kube::Context {
    let metrics = MetricSources {
        client: Outbound::new(),
        prometheus,
        embedded: None,
        min_requests: 10,
        query_timeout: Duration::from_secs(5),
    };
    serin_controller::kube::Context::new(ns.client.clone(), Some(ns.name.clone()), metrics)
}

/// A Canary for the Deployment `podinfo` in `ns`, with `analysis` and no metrics.
fn canary(ns: &TestNamespace, analysis: serde_json::Value) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": ns.name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "targetPort": "http"},
            "progressDeadlineSeconds": 120,
            "analysis": analysis,
        },
    }))
    .unwrap()
}

/// `kubectl set image deployment/podinfo app=IMAGE`.
async fn set_image(ns: &TestNamespace, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
}

/// `kubectl annotate canary podinfo --overwrite serin.dev/request=VALUE`.
async fn request(ns: &TestNamespace, value: &str) {
    let patch = json!({"metadata": {"annotations": {serin_crds::operator_request::ANNOTATION: value}}});
    ns.api::<Canary>().patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Waits until the controller has acted on the request `id`. One annotation carries one request:
/// a request written before the last is acted on replaces it unread.
async fn acted_on(ns: &TestNamespace, id: &str) {
    eventually(&format!("request {id} acted on"), Duration::from_secs(60), || async {
        let status = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        match status.last_handled_request.as_deref() {
            Some(handled) if handled == id => Ok(()),
            other => Err(format!("last handled: {other:?}")),
        }
    })
    .await;
}

async fn wait_for_phase(ns: &TestNamespace, phase: CanaryPhase, limit: Duration) -> Canary {
    eventually(&format!("Canary podinfo {phase}"), limit, || async {
        let canary = ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?;
        match &canary.status {
            Some(status) if status.phase == phase => Ok(canary),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn image_of(deployment: &Deployment) -> String {
    let spec = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    spec.containers[0].image.clone().unwrap_or_default()
}

/// The status is written before the actions it decides: what they change shows a moment later.
async fn settles_at_weights(ns: &TestNamespace, wanted: (i32, i32)) {
    eventually(&format!("the route at {wanted:?}"), Duration::from_secs(30), || async {
        let now = weights(ns).await;
        if now == wanted { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
}

async fn settles_at_replicas(ns: &TestNamespace, name: &str, wanted: i32) {
    eventually(&format!("{name} at {wanted} replicas"), Duration::from_secs(30), || async {
        let now = replicas(ns, name).await;
        if now == wanted { Ok(()) } else { Err(format!("{now}")) }
    })
    .await;
}

async fn replicas(ns: &TestNamespace, name: &str) -> i32 {
    ns.api::<Deployment>().get(name).await.unwrap().spec.unwrap().replicas.unwrap_or(1)
}

/// The generated route's (primary, canary) weights.
async fn weights(ns: &TestNamespace) -> (i32, i32) {
    let route = ns.api::<HttpRoute>().get("podinfo").await.unwrap();
    let rule = route.spec.rules.unwrap().pop().unwrap();
    let weight =
        |name: &str| rule.backend_refs.iter().flatten().find(|b| b.name == name).and_then(|b| b.weight).unwrap_or(-1);
    (weight("podinfo-primary"), weight("podinfo-canary"))
}
