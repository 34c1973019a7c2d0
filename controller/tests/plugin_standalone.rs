//! `kubectl serin --standalone URL` against a real standalone controller: every command that reads
//! or steers a rollout, and each exit code of `wait`, as a user runs them (the plugin's binary).
//!
//! The plugin is the `kubectl-serin` binary beside this test's (`cargo test --workspace` builds it).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serin_crds::CanaryPhase;
use support::standalone::{Rig, canary_yaml};

const METRICS: &str = "    metrics:
      - {name: request-success-rate, interval: 10s, thresholdRange: {min: 95}}";

const LIMIT: Duration = Duration::from_secs(60);

fn plugin_binary() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let binary = test.parent().and_then(|deps| deps.parent()).unwrap().join("kubectl-serin");
    assert!(
        binary.is_file(),
        "{} is not built: `cargo test --workspace` builds it, or `cargo build -p kubectl-serin`",
        binary.display()
    );
    binary
}

/// Runs `kubectl-serin --standalone http://API ARGS` in namespace `test`; its exit code and what it
/// printed (stdout, then stderr).
async fn plugin(rig: &Rig, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(plugin_binary())
        .args(["--standalone", &format!("http://{}", rig.api), "-n", "test"])
        .args(args)
        .env_remove("SERIN_STANDALONE")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_status_and_wait_follow_a_standalone_rollout_and_never_pass_on_an_earlier_success() {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let v3 = support::app("v3", 0.6, 0).await;
    let analysis = format!("    threshold: 2\n    stepWeight: 25\n    maxWeight: 50\n{METRICS}");
    let mut rig = Rig::start(&canary_yaml(&analysis), v1).await;

    let (code, out) = plugin(&rig, &["get"]).await;
    assert_eq!(code, 0, "{out}");
    let header = out.lines().next().unwrap_or_default();
    assert!(header.starts_with("NAME") && header.contains("PHASE"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("podinfo") && l.contains("Initialized")), "{out}");
    let (code, out) = plugin(&rig, &["list", "-A", "-o", "json"]).await;
    assert_eq!(code, 0, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["items"][0]["metadata"]["namespace"], "test", "{out}");
    assert_eq!(list["items"][0]["status"]["phase"], "Initialized", "{out}");

    // v1 is promoted (Initialized). The wait starts the moment v2 is written, before the
    // controller's reload can notice it: it must wait for v2, not pass on v1.
    rig.start_traffic(60, None);
    rig.point_canary_at(v2, "v2");
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "90s"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("promoted"), "{out}");
    let record = rig.record().unwrap();
    assert_eq!(record.status.as_ref().map(|s| s.phase), Some(CanaryPhase::Succeeded), "{out}");
    assert_eq!(rig.serving_version().await, "v2");
    let first_look = out.lines().next().unwrap_or_default();
    assert!(!first_look.contains("promoted"), "the first look already passed: {out}");

    let (code, view) = plugin(&rig, &["status", "podinfo", "--no-color"]).await;
    assert_eq!(code, 0, "{view}");
    assert!(view.contains("Canary test/podinfo  (canary)"), "{view}");
    assert!(view.lines().any(|l| l.starts_with("  primary  version=v2 at 127.0.0.1:")), "{view}");
    assert!(view.lines().any(|l| l.starts_with("  canary   version=v2 at 127.0.0.1:")), "{view}");
    assert!(view.contains("  phase    Succeeded"), "{view}");
    assert!(view.contains("request-success-rate"), "{view}");
    assert!(view.contains("  events\n"), "{view}");

    // A failing v3: exit 1 with the reason, v2 keeps serving.
    rig.point_canary_at(v3, "v3");
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "90s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed: ") && out.contains("request-success-rate"), "{out}");
    assert_eq!(rig.serving_version().await, "v2");

    // Not a verdict on the rollout: exit 4, named.
    let (code, out) = plugin(&rig, &["wait", "nosuch", "--timeout", "10s"]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("no Canary test/nosuch"), "{out}");
    // Manifests that do not load (an edit half done): the revision to wait for is unknown, so the
    // wait asks again, and says why when it gives up; the controller runs on with the last good set.
    let good = std::fs::read_to_string(rig.manifests().join("canary.yaml")).unwrap();
    std::fs::write(rig.manifests().join("canary.yaml"), good.replace("stepWeight: 25", "stepWeight: [25]")).unwrap();
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "3s"]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("the manifests on disk do not load") && out.contains("canary.yaml"), "{out}");
    assert!(out.contains("stepWeight"), "the problem names the field: {out}");
    let (code, out) = plugin(&rig, &["get", "podinfo"]).await;
    assert!(code == 0 && out.contains("Failed"), "the last good set still runs: {out}");

    rig.kill_controller();
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "3s"]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("could not be read until the timeout") && out.contains("does not answer"), "{out}");
    let (code, out) = plugin(&rig, &["get", "podinfo"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("the standalone controller at http://{} does not answer", rig.api)), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_holds_wait_until_opened_through_the_plugin() {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let analysis = |hooks: &str| {
        canary_yaml(&format!("    threshold: 3\n    stepWeight: 50\n    maxWeight: 50\n{hooks}{METRICS}"))
    };
    let rig = Rig::start(&analysis(""), v1).await;
    let gate = format!(
        "    webhooks:\n      - {{type: confirm-promotion, name: approval, url: \"http://{}/gates/test/podinfo/promotion\"}}\n",
        rig.api
    );
    std::fs::write(rig.manifests().join("canary.yaml"), analysis(&gate)).unwrap();
    rig.start_traffic(60, None);
    rig.point_canary_at(v2, "v2");
    rig.wait_for(&[CanaryPhase::WaitingPromotion], LIMIT).await;

    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "3s"]).await;
    assert_eq!(code, 2, "held at a closed gate, --for promoted times out: {out}");
    assert!(out.contains("timed out after 3s"), "{out}");
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--for", "paused", "--timeout", "30s"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("waiting for approval: WaitingPromotion"), "{out}");
    let (_, view) = plugin(&rig, &["status", "podinfo"]).await;
    assert!(view.contains("promotion (approval): closed, the run waits for it"), "{view}");

    let (code, out) = plugin(&rig, &["gate", "open", "promotion", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("gate promotion of Canary test/podinfo is open"), "{out}");
    let (code, out) = plugin(&rig, &["wait", "podinfo", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_retry_and_promote_through_the_plugin() {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let analysis = format!("    threshold: 3\n    stepWeight: 10\n    maxWeight: 90\n{METRICS}");
    let rig = Rig::start(&canary_yaml(&analysis), v1).await;
    rig.start_traffic(60, None);
    rig.point_canary_at(v2, "v2");
    let status = |r: &serin_controller::standalone::state::CanaryRecord| r.status.clone().unwrap_or_default();
    rig.wait_until("progressing", LIMIT, |r| {
        status(r).phase == CanaryPhase::Progressing && status(r).canary_weight >= 10
    })
    .await;

    let (code, out) = plugin(&rig, &["pause", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pause requested for Canary test/podinfo"), "{out}");
    assert!(out.contains("the controller acted on it: Progressing") && out.contains(", paused;"), "{out}");
    let (code, out) = plugin(&rig, &["resume", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the controller acted on it: Progressing") && !out.contains(", paused;"), "{out}");

    let (code, out) = plugin(&rig, &["abort", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the controller acted on it: Failed, canary weight 0%"), "{out}");
    assert_eq!(rig.serving_version().await, "v1");

    let (code, out) = plugin(&rig, &["retry", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the controller acted on it: Progressing"), "{out}");
    let (code, out) = plugin(&rig, &["promote", "podinfo"]).await;
    assert_eq!(code, 0, "{out}");
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.map(|s| s.phase), Some(CanaryPhase::Succeeded), "{out}");
    assert_eq!(rig.serving_version().await, "v2");

    let (code, out) = plugin(&rig, &["promote", "nosuch"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no Canary test/nosuch"), "{out}");
}
