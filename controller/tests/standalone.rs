//! Standalone mode end to end: `serin-controller standalone` as a real process, meshproxy and
//! sample apps on loopback, steady traffic, metrics scraped from meshproxy. One test per strategy
//! and per way a rollout can end.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_crds::CanaryPhase;
use support::standalone::{Rig, canary_yaml};

const METRICS: &str = "    metrics:
      - {name: request-success-rate, interval: 10s, thresholdRange: {min: 95}}
      - {name: request-duration, interval: 10s, thresholdRange: {max: 150}}";

const LIMIT: Duration = Duration::from_secs(60);

async fn roll_out(
    analysis: &str,
    v2_error_rate: f64,
    v2_latency_ms: u64,
    header: Option<(&'static str, &'static str)>,
) -> Rig {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", v2_error_rate, v2_latency_ms).await;
    let rig = Rig::start(&canary_yaml(&format!("{analysis}\n{METRICS}")), v1).await;
    assert_eq!(rig.serving_version().await, "v1");
    rig.start_traffic(60, header);
    rig.point_canary_at(v2, "v2");
    rig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_release_steps_up_and_promotes_without_failing_a_request() {
    let rig = roll_out("    threshold: 3\n    stepWeight: 25\n    maxWeight: 50", 0.0, 0, None).await;
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    let weights: Vec<i32> = record.history.iter().map(|p| p.canary_weight).collect();
    assert!(weights.contains(&25) && weights.contains(&50), "weights went {weights:?}");
    assert_eq!(rig.serving_version().await, "v2");
    assert_eq!(
        rig.traffic.server_errors.load(Ordering::Relaxed) + rig.traffic.transport_errors.load(Ordering::Relaxed),
        0
    );
    assert!(rig.traffic.sent.load(Ordering::Relaxed) > 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_requests_is_rolled_back_and_v1_keeps_serving() {
    let rig = roll_out("    threshold: 2\n    stepWeight: 20\n    maxWeight: 60", 0.5, 0, None).await;
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    let status = record.status.unwrap();
    assert_eq!(status.phase, CanaryPhase::Failed);
    assert_eq!(status.canary_weight, 0);
    assert!(status.last_failure_reason.as_deref().unwrap_or_default().contains("request-success-rate"), "{status:#?}");
    assert_eq!(record.routes.map(|r| (r.primary, r.canary)), Some((100, 0)));
    assert_eq!(rig.serving_version().await, "v1");
    assert!(record.events.iter().any(|e| e.kind == "Warning"), "{:#?}", record.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_is_rolled_back_on_latency() {
    let rig = roll_out("    threshold: 2\n    stepWeight: 20\n    maxWeight: 60", 0.0, 400, None).await;
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    let status = record.status.unwrap();
    assert_eq!(status.phase, CanaryPhase::Failed);
    assert!(status.last_failure_reason.as_deref().unwrap_or_default().contains("request-duration"), "{status:#?}");
    assert_eq!(rig.serving_version().await, "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_test_routes_matching_requests_and_promotes() {
    let analysis = "    threshold: 3\n    iterations: 3\n    match:\n      - headers: {x-canary: {exact: insider}}";
    let rig = roll_out(analysis, 0.0, 0, Some(("x-canary", "insider"))).await;
    let running = rig.wait_for(&[CanaryPhase::Progressing], LIMIT).await;
    assert_eq!(running.status.unwrap().phase, CanaryPhase::Progressing);
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    assert!(record.history.iter().any(|p| p.phase == "Progressing" && p.metrics.contains_key("request-success-rate")));
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_release_with_mirroring_promotes() {
    let rig = roll_out("    threshold: 3\n    iterations: 3\n    mirror: true", 0.0, 0, None).await;
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    // Blue/green keeps the canary at 0 while it is judged (on mirrored copies, here), then
    // switches everything at once.
    let progressing: Vec<_> = record.history.iter().filter(|p| p.phase == "Progressing").collect();
    assert!(progressing.iter().all(|p| p.canary_weight == 0 || p.canary_weight == 100), "{progressing:#?}");
    assert!(
        progressing
            .iter()
            .any(|p| p.canary_weight == 0 && p.metrics.get("request-success-rate").is_some_and(|m| m.0.is_some())),
        "mirrored requests gave the canary data at weight 0: {progressing:#?}"
    );
    assert_eq!(rig.serving_version().await, "v2");
}

/// A healthy v2 rolling out under `analysis` (lines ending in a newline), held before promotion by a
/// confirm-promotion gate on the controller's own API.
async fn roll_out_behind_promotion_gate(analysis: &str) -> Rig {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let with_hooks = |hooks: &str| canary_yaml(&format!("{analysis}{hooks}{METRICS}"));
    let rig = Rig::start(&with_hooks(""), v1).await;
    // The gate is on the controller's own API, whose port is known once it runs.
    let gate = format!(
        "    webhooks:\n      - {{type: confirm-promotion, name: approval, url: \"http://{}/gates/test/podinfo/promotion\"}}\n",
        rig.api
    );
    std::fs::write(rig.manifests().join("canary.yaml"), with_hooks(&gate)).unwrap();
    rig.start_traffic(60, None);
    rig.point_canary_at(v2, "v2");
    rig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_promotion_gate_holds_until_opened_through_the_api() {
    let rig = roll_out_behind_promotion_gate("    threshold: 3\n    stepWeight: 50\n    maxWeight: 50\n").await;
    let waiting = rig.wait_for(&[CanaryPhase::WaitingPromotion], LIMIT).await;
    assert_eq!(waiting.status.unwrap().canary_weight, 50);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.phase(), Some(CanaryPhase::WaitingPromotion), "a closed gate holds");
    assert_eq!(rig.post("/gates/test/podinfo/promotion/open").await, 200);
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.unwrap().phase, CanaryPhase::Succeeded);
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_pins_each_client_to_the_version_that_first_answered_it() {
    let rig = roll_out_behind_promotion_gate(
        "    threshold: 3\n    stepWeight: 30\n    maxWeight: 30\n    sessionAffinity: {cookieName: canary-session, primaryCookieName: primary-session, maxAge: 600}\n",
    )
    .await;
    let waiting = rig.wait_for(&[CanaryPhase::WaitingPromotion], LIMIT).await;
    let status = waiting.status.unwrap();
    let canary_cookie = status.session_affinity_cookie.clone().expect("a run with session affinity has a cookie");
    let primary_cookie = status.primary_session_affinity_cookie.clone().expect("and one for the primary");

    // New clients land by weight, and each answer sets the cookie of the version that gave it.
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (version, set_cookies) = rig.version_with_cookie(None).await;
        let expected = if version == "v2" { &canary_cookie } else { &primary_cookie };
        assert!(
            set_cookies.iter().any(|c| c.starts_with(&format!("{expected}; Max-Age=600"))),
            "{version}: {set_cookies:?}"
        );
        *seen.entry(version).or_insert(0) += 1;
    }
    assert!(seen.len() == 2, "both versions answer new clients at weight 30: {seen:?}");
    // A client holding a cookie stays where it was, whatever the weights say.
    for _ in 0..15 {
        assert_eq!(rig.version_with_cookie(Some(&format!("theme=dark; {canary_cookie}"))).await.0, "v2");
        assert_eq!(rig.version_with_cookie(Some(&primary_cookie)).await.0, "v1");
    }

    assert_eq!(rig.post("/gates/test/podinfo/promotion/open").await, 200);
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded);
    // After the run, the old canary cookie is expired on the client that still sends it.
    let (version, set_cookies) = rig.version_with_cookie(Some(&canary_cookie)).await;
    assert_eq!(version, "v2", "the primary now runs v2");
    assert!(set_cookies.iter().any(|c| c.starts_with(&format!("{canary_cookie}; Max-Age=-1"))), "{set_cookies:?}");
}

fn status_of(record: &serin_controller::standalone::state::CanaryRecord) -> &serin_crds::CanaryStatus {
    record.status.as_ref().expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_requests_on_the_api_pause_resume_and_promote_a_run() {
    let rig = roll_out("    threshold: 3\n    stepWeight: 10\n    maxWeight: 80", 0.0, 0, None).await;
    rig.wait_until("progressing at 10%", LIMIT, |r| {
        status_of(r).phase == CanaryPhase::Progressing && status_of(r).canary_weight >= 10
    })
    .await;

    assert_eq!(rig.post("/canaries/test/podinfo/pause?id=hold-1").await, 202);
    let paused =
        rig.wait_until("paused", LIMIT, |r| status_of(r).last_handled_request.as_deref() == Some("hold-1")).await;
    assert!(status_of(&paused).paused, "{:#?}", status_of(&paused));
    assert!(paused.events.iter().any(|e| e.reason == "Paused"), "{:#?}", paused.events);
    let held = status_of(&paused).canary_weight;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = rig.record().unwrap();
    assert_eq!((status_of(&still).phase, status_of(&still).canary_weight), (CanaryPhase::Progressing, held));

    assert_eq!(rig.post("/canaries/test/podinfo/resume").await, 202);
    rig.wait_until("stepping on after resume", LIMIT, |r| status_of(r).canary_weight > held).await;

    assert_eq!(rig.post("/canaries/test/podinfo/promote?id=ship-it").await, 202);
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(status_of(&record).phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    assert_eq!(status_of(&record).last_handled_request.as_deref(), Some("ship-it"));
    assert!(record.events.iter().any(|e| e.reason == "Promote"), "{:#?}", record.events);
    assert!(status_of(&record).canary_weight < 80, "promoted before the last step");
    assert_eq!(rig.serving_version().await, "v2");
    assert_eq!(rig.traffic.transport_errors.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_retry_on_the_api_and_bad_requests_refused_by_name() {
    let rig = roll_out("    threshold: 3\n    stepWeight: 10\n    maxWeight: 30", 0.0, 0, None).await;
    // Bad requests change nothing and say why.
    assert_eq!(rig.post("/canaries/test/podinfo/promte").await, 400);
    assert_eq!(rig.post("/canaries/test/nothing/pause").await, 404);
    assert_eq!(rig.post("/canaries/test/podinfo/open-gate").await, 400);
    assert_eq!(rig.post("/canaries/test/podinfo/open-gate/merge").await, 400);
    // A gate request changes the gate at once.
    assert_eq!(rig.post("/canaries/test/podinfo/open-gate/promotion").await, 200);
    assert_eq!(rig.post("/gates/test/podinfo/promotion").await, 200, "the gate reads open");
    assert_eq!(rig.post("/canaries/test/podinfo/close-gate/promotion").await, 200);
    assert_eq!(rig.post("/gates/test/podinfo/promotion").await, 403, "and closed again");

    rig.wait_until("progressing at 10%", LIMIT, |r| {
        status_of(r).phase == CanaryPhase::Progressing && status_of(r).canary_weight >= 10
    })
    .await;
    assert_eq!(rig.post("/canaries/test/podinfo/abort?id=stop").await, 202);
    let failed = rig.wait_for(&[CanaryPhase::Failed, CanaryPhase::Succeeded], LIMIT).await;
    assert_eq!(status_of(&failed).phase, CanaryPhase::Failed);
    assert!(status_of(&failed).last_failure_reason.as_deref().unwrap_or_default().contains("aborted by operator"));
    assert_eq!(rig.serving_version().await, "v1");

    // Retry runs the failed revision again; healthy, it is promoted this time.
    assert_eq!(rig.post("/canaries/test/podinfo/retry?id=again").await, 202);
    let record = rig
        .wait_until("promoted after the retry", LIMIT, |r| {
            status_of(r).last_handled_request.as_deref() == Some("again")
                && status_of(r).phase == CanaryPhase::Succeeded
        })
        .await;
    assert!(record.events.iter().any(|e| e.reason == "Retry"), "{:#?}", record.events);
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_accepted_just_before_a_crash_is_acted_on_after_the_restart() {
    // A long interval: the request cannot be acted on before the controller is killed.
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let yaml = canary_yaml(&format!("    threshold: 3\n    stepWeight: 10\n    maxWeight: 50\n{METRICS}"))
        .replace("interval: 1s", "interval: 8s");
    let mut rig = Rig::start(&yaml, v1).await;
    rig.start_traffic(60, None);
    rig.point_canary_at(v2, "v2");
    rig.wait_until("progressing", Duration::from_secs(60), |r| status_of(r).phase == CanaryPhase::Progressing).await;
    assert_eq!(rig.post("/canaries/test/podinfo/abort?id=before-crash").await, 202);
    rig.kill_controller();
    let kept = rig.manifests().join(".serin/requests/test/podinfo.json");
    assert!(kept.exists(), "the accepted request is on disk at the crash");
    assert_ne!(status_of(&rig.record().unwrap()).last_handled_request.as_deref(), Some("before-crash"));

    rig.start_controller();
    let record = rig
        .wait_until("the request acted on after the restart", LIMIT, |r| {
            status_of(r).last_handled_request.as_deref() == Some("before-crash")
        })
        .await;
    assert_eq!(status_of(&record).phase, CanaryPhase::Failed);
    assert!(status_of(&record).last_failure_reason.as_deref().unwrap_or_default().contains("aborted by operator"));
    // Dropped once the tick that acted on it is over, which is after its status is written.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while kept.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!kept.exists(), "a request acted on is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_analysis_resumes_the_same_rollout() {
    let mut rig = roll_out("    threshold: 3\n    stepWeight: 10\n    maxWeight: 50", 0.0, 0, None).await;
    // Kill it once the canary takes traffic, in the middle of the analysis.
    let deadline = std::time::Instant::now() + LIMIT;
    while rig
        .record()
        .and_then(|r| r.status)
        .is_none_or(|s| s.phase != CanaryPhase::Progressing || s.canary_weight < 20)
    {
        assert!(std::time::Instant::now() < deadline, "the rollout never reached 20%");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.kill_controller();
    let at_kill = rig.record().unwrap();
    let weight_at_kill = at_kill.status.as_ref().unwrap().canary_weight;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.record().unwrap().status, at_kill.status, "nothing moves while the controller is down");

    rig.start_controller();
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    // It went on from where it was, not from the start.
    let after: Vec<i32> = record.history.iter().skip(at_kill.history.len()).map(|p| p.canary_weight).collect();
    assert!(after.iter().take_while(|w| **w > 0).all(|w| *w >= weight_at_kill), "weights after the restart: {after:?}");
    let promotions = record.events.iter().filter(|e| e.message.starts_with("Promotion completed")).count();
    assert!(promotions <= 1, "{:#?}", record.events);
    assert_eq!(rig.serving_version().await, "v2");
    assert_eq!(rig.traffic.transport_errors.load(Ordering::Relaxed), 0);
}

/// Metrics with the controller's defaults: no `onNoData`, so no data counts as a failed check.
const DEFAULT_POLICY_METRICS: &str = "    metrics:
      - {name: request-success-rate, interval: 10s, thresholdRange: {min: 95}}
      - {name: request-duration, interval: 10s, thresholdRange: {max: 500}}";

/// Starts a healthy v2 rollout under the controller's default flags and `requests_per_second`.
async fn healthy_rollout_with_defaults(analysis: &str, requests_per_second: u32) -> Rig {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let yaml = canary_yaml(&format!("{analysis}\n{DEFAULT_POLICY_METRICS}"));
    let rig = Rig::start_with_defaults(&yaml, v1).await;
    rig.start_traffic(requests_per_second, None);
    rig.point_canary_at(v2, "v2");
    rig
}

/// Not one failed check anywhere in the run's history, or the events that say why.
fn assert_no_failed_check(record: &serin_controller::standalone::state::CanaryRecord) {
    let counted: Vec<i32> = record.history.iter().map(|p| p.failed_checks).filter(|n| *n > 0).collect();
    let warnings: Vec<&str> =
        record.events.iter().filter(|e| e.kind == "Warning").map(|e| e.message.as_str()).collect();
    assert!(counted.is_empty() && warnings.is_empty(), "a healthy canary counted failures: {warnings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkills_during_a_healthy_rollout_never_count_against_it() {
    let mut rig = healthy_rollout_with_defaults("    threshold: 1\n    stepWeight: 10\n    maxWeight: 50", 60).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    for kill in 0..3 {
        // Each kill lands while the canary takes traffic and its analysis runs.
        while rig
            .record()
            .and_then(|r| r.status)
            .is_none_or(|s| s.phase != CanaryPhase::Progressing || s.canary_weight < 10)
        {
            assert!(std::time::Instant::now() < deadline, "kill {kill}: the rollout never got under way");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1200 + 400 * kill)).await;
        if rig.phase() != Some(CanaryPhase::Progressing) {
            break;
        }
        rig.kill_controller();
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.start_controller();
    }
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], Duration::from_secs(120)).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    assert_no_failed_check(&record);
    let restarts = rig.logs().matches("serin standalone controller running").count();
    assert!(restarts >= 2, "the controller was restarted mid-run: {restarts} starts");
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_on_thin_traffic_waits_for_evidence_instead_of_failing() {
    // 10 % of 50 req/s is about 5 requests a second to the canary against a floor of 10: right
    // after each shift the window holds too few. One counted check would roll it back.
    let rig = healthy_rollout_with_defaults("    threshold: 1\n    stepWeight: 10\n    maxWeight: 30", 50).await;
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], Duration::from_secs(90)).await;
    assert_eq!(record.status.as_ref().unwrap().phase, CanaryPhase::Succeeded, "{:#?}", record.events);
    assert_no_failed_check(&record);
    let weights: Vec<i32> = record.history.iter().map(|p| p.canary_weight).collect();
    assert!(weights.contains(&10) && weights.contains(&30), "weights went {weights:?}");
    assert_eq!(rig.serving_version().await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_manifest_is_reported_by_file_and_field_and_the_last_good_set_keeps_running() {
    let v1 = support::app("v1", 0.0, 0).await;
    let v2 = support::app("v2", 0.0, 0).await;
    let good = canary_yaml(&format!("    threshold: 3\n    stepWeight: 50\n{METRICS}"));
    let rig = Rig::start(&good, v1).await;
    rig.start_traffic(60, None);

    // An unknown field: the whole set is refused, so the repointed group is not seen either.
    let broken = good.replace("stepWeight: 50", "stepWieght: 50");
    std::fs::write(rig.manifests().join("canary.yaml"), &broken).unwrap();
    rig.point_canary_at(v2, "v2");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rig.phase(), Some(CanaryPhase::Initialized), "nothing moves on a refused change");
    let logs = rig.logs();
    let refusal = logs.lines().find(|l| l.contains("manifest refused")).expect("the refusal is logged");
    assert!(
        refusal.contains("canary.yaml") && refusal.contains("Canary") && refusal.contains("stepWieght"),
        "{refusal}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(refusal).is_ok(), "logs are JSON lines: {refusal}");
    assert_eq!(rig.serving_version().await, "v1");

    // Fixed: the rollout of v2 goes ahead.
    std::fs::write(rig.manifests().join("canary.yaml"), &good).unwrap();
    let record = rig.wait_for(&[CanaryPhase::Succeeded, CanaryPhase::Failed], LIMIT).await;
    assert_eq!(record.status.unwrap().phase, CanaryPhase::Succeeded);

    // `status` prints what the state file holds.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_serin-controller"))
        .args(["status", "podinfo", "--state"])
        .arg(rig.manifests())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("test/podinfo") && text.contains("Succeeded"), "{text}");
    // The events of the tick that wrote Succeeded may land a moment after it, so look at earlier ones.
    assert!(text.contains("request-success-rate") && text.contains("Initialization done!"), "{text}");
}

#[test]
fn a_controller_started_on_a_broken_folder_names_every_problem_and_exits() {
    let folder = support::TempDir::new("broken");
    std::fs::write(
        folder.path().join("services.yaml"),
        "services:\n  - name: podinfo-canary\n    endpoints: [{address: nowhere}]\n",
    )
    .unwrap();
    std::fs::write(
        folder.path().join("canary.yaml"),
        canary_yaml("    stepWeight: 10\n    metrics:\n      - {name: error-rate, thresholdRange: {max: 1}}"),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_serin-controller"))
        .args(["standalone", "--manifests"])
        .arg(folder.path())
        .args(["--api", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("services.yaml: services[0].endpoints[0].address: \"nowhere\" is not an IP:port address"),
        "{text}"
    );
    assert!(text.contains("canary.yaml: document 1: Canary \"podinfo\": spec.analysis.metrics[0]"), "{text}");
}
