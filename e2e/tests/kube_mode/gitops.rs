//! `examples/gitops/` judged by the libraries Argo CD and Flux judge with: the Argo CD health check
//! run by gopher-lua and kstatus's verdict, on Canaries read live from the rig in every phase a
//! rollout goes through (`gitops-verdicts`, built by the rig from `e2e/rig/modules/`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::{TestNamespace, eventually, rig_tool};
use super::{acted_on, initialized_behind_a_promotion_gate, request, set_image, wait_for_phase};

const GITOPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gitops");

#[tokio::test]
async fn argo_cd_and_flux_judge_live_canaries_in_every_phase_as_documented() {
    let (ns, controller, _) = initialized_behind_a_promotion_gate("gitops").await;
    let recorder = Recorder::start(&ns);

    // v2 runs and holds at the closed promotion gate; an operator pauses and resumes it there,
    // then opens the gate: it is promoted. v3 is aborted mid-run: rolled back.
    set_image(&ns, "serin-testapp:v2").await;
    wait_for_phase(&ns, CanaryPhase::WaitingPromotion, Duration::from_secs(120)).await;
    request(&ns, r#"{"id":"hold","action":"pause"}"#).await;
    recorder.until_seen(&ns, "WaitingPromotion paused").await;
    request(&ns, r#"{"id":"go-on","action":"resume"}"#).await;
    // "WaitingPromotion" was seen before the pause: wait for the resume itself.
    acted_on(&ns, "go-on").await;
    request(&ns, r#"{"id":"approve","action":"open-gate","gate":"promotion"}"#).await;
    wait_for_phase(&ns, CanaryPhase::Succeeded, Duration::from_secs(120)).await;
    recorder.until_seen(&ns, "Succeeded").await;
    set_image(&ns, "serin-testapp:v3").await;
    // Progressing was seen with v2 already: wait for v3's own.
    wait_for_phase(&ns, CanaryPhase::Progressing, Duration::from_secs(120)).await;
    request(&ns, r#"{"id":"stop","action":"abort"}"#).await;
    wait_for_phase(&ns, CanaryPhase::Failed, Duration::from_secs(120)).await;
    recorder.until_seen(&ns, "Failed").await;
    controller.abort();
    let seen = recorder.stop().await;

    // What each tool must say, by phase (and whether paused).
    let expected: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        ("Initialized", ("Healthy", "Current")),
        ("Progressing", ("Progressing", "InProgress")),
        ("WaitingPromotion", ("Progressing", "InProgress")),
        ("WaitingPromotion paused", ("Suspended", "InProgress")),
        ("Promoting", ("Progressing", "InProgress")),
        ("Finalising", ("Progressing", "InProgress")),
        ("Succeeded", ("Healthy", "Current")),
        ("Failed", ("Degraded", "Failed")),
    ]);
    let script = health_script();
    for (state, object) in &seen {
        let (argo, flux) = expected.get(state.as_str()).unwrap_or_else(|| panic!("no expectation for {state}"));
        let health = verdict(&["argocd-health", &script], object);
        assert_eq!(health["status"], *argo, "Argo CD on {state}: {health} for {object:#}");
        let kstatus = verdict(&["kstatus"], object);
        assert_eq!(kstatus["status"], *flux, "kstatus on {state}: {kstatus} for {object:#}");
    }
    for state in ["Initialized", "Progressing", "WaitingPromotion", "WaitingPromotion paused", "Succeeded", "Failed"] {
        assert!(seen.contains_key(state), "{state} never seen: {:?}", seen.keys());
    }
    let failed = verdict(&["argocd-health", &script], &seen["Failed"]);
    assert!(failed["message"].as_str().unwrap().starts_with("Failed"), "{failed}");

    // A spec the controller has not observed yet is in progress for both, whatever the phase says.
    let mut unobserved = seen["Succeeded"].clone();
    unobserved["metadata"]["generation"] = json!(unobserved["status"]["observedGeneration"].as_i64().unwrap() + 1);
    let health = verdict(&["argocd-health", &script], &unobserved);
    assert_eq!(health["status"], "Progressing", "{health}");
    assert!(health["message"].as_str().unwrap().contains("observe generation"), "{health}");
    assert_eq!(verdict(&["kstatus"], &unobserved)["status"], "InProgress");

    ns.delete().await;
}

/// `examples/gitops/argocd/health.lua`, after checking that the ConfigMap beside it embeds the
/// very same script.
fn health_script() -> String {
    let path = format!("{GITOPS}/argocd/health.lua");
    let script = std::fs::read_to_string(&path).unwrap();
    let config_map: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(format!("{GITOPS}/argocd/argocd-cm.yaml")).unwrap()).unwrap();
    let embedded = config_map["data"]["resource.customizations.health.serin.dev_Canary"].as_str().unwrap();
    assert_eq!(embedded, script, "argocd-cm.yaml embeds a different script than health.lua");
    path
}

/// What `gitops-verdicts ARGS` says about `object`.
fn verdict(args: &[&str], object: &Value) -> Value {
    let mut child = Command::new(rig_tool("gitops-verdicts"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitops-verdicts (built by `rig up`)");
    child.stdin.take().unwrap().write_all(object.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gitops-verdicts {args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Reads the Canary, as the apiserver serves it, every 200 ms and keeps the latest object of each
/// state it was seen in: its phase, and "paused" when an operator holds it.
struct Recorder {
    seen: std::sync::Arc<tokio::sync::Mutex<BTreeMap<String, Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    fn start(ns: &TestNamespace) -> Recorder {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::erase::<Canary>(&()));
        let seen = std::sync::Arc::new(tokio::sync::Mutex::new(BTreeMap::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(object) = api.get("podinfo").await {
                    let object = serde_json::to_value(object).unwrap();
                    let status = &object["status"];
                    if let Some(phase) = status["phase"].as_str() {
                        let paused = if status["paused"] == json!(true) { " paused" } else { "" };
                        sink.lock().await.insert(format!("{phase}{paused}"), object.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Recorder { seen, task }
    }

    async fn until_seen(&self, ns: &TestNamespace, state: &str) {
        eventually(
            &format!("Canary podinfo in {ns_name} seen {state}", ns_name = ns.name),
            Duration::from_secs(60),
            || async {
                let seen = self.seen.lock().await;
                if seen.contains_key(state) { Ok(()) } else { Err(format!("seen {:?}", seen.keys())) }
            },
        )
        .await;
    }

    async fn stop(self) -> BTreeMap<String, Value> {
        self.task.abort();
        let _ = self.task.await;
        std::mem::take(&mut *self.seen.lock().await)
    }
}

/// The app of `examples/gitops/app` is accepted by the apiserver as Argo CD or Flux would apply it
/// (server-side, dry run, into a namespace of the test's own), the Canary against Serin's schema.
#[tokio::test]
async fn the_gitops_example_app_is_accepted_by_the_apiserver() {
    let ns = super::namespace_with_crds("gitops-app").await;
    let mut applied = Vec::new();
    for file in ["deployment.yaml", "hpa.yaml", "canary.yaml"] {
        let text = std::fs::read_to_string(format!("{GITOPS}/app/{file}")).unwrap();
        let mut object: Value = serde_saphyr::from_str(&text).unwrap();
        object["metadata"]["namespace"] = json!(ns.name);
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        let types = object.types.clone().unwrap();
        let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, _) = kube::discovery::pinned_kind(&ns.client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
        let name = object.metadata.name.clone().unwrap();
        let params = PatchParams::apply("serin-e2e").dry_run();
        api.patch(&name, &params, &Patch::Apply(&object)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        applied.push(format!("{}/{name}", types.kind));
    }
    assert_eq!(applied, ["Deployment/podinfo", "HorizontalPodAutoscaler/podinfo", "Canary/podinfo"]);
    ns.delete().await;
}
