//! Each strategy with real traffic through the waypoint: rollbacks on errors and on latency judged
//! by the real Prometheus, A/B by header and by cookie, blue/green with and without mirroring.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;

use super::super::support::cluster::{traffic_after, traffic_report};
use super::super::support::{TestNamespace, eventually, http_get};
use super::waypoint::{Stage, only_version_from_now_on};
use super::{image_of, set_image, settles_at_replicas, settles_at_weights, wait_for_phase};

#[tokio::test]
async fn a_canary_that_fails_requests_and_then_one_that_is_slow_are_each_rolled_back() {
    let mut stage = Stage::new("rollback").await;
    let (client, before) = stage.client("client", &[]).await;
    stage
        .canary(json!({
            "interval": "5s", "threshold": 2, "stepWeight": 20, "maxWeight": 60,
            "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"},
                {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "10s"},
            ],
        }))
        .await;
    let ns = &stage.ns;

    for (image, fault, metric) in [
        ("serin-testapp:v2", [("TESTAPP_ERROR_RATE", "0.5"), ("TESTAPP_LATENCY_MS", "0")], "request-success-rate"),
        ("serin-testapp:v3", [("TESTAPP_ERROR_RATE", "0"), ("TESTAPP_LATENCY_MS", "800")], "request-duration"),
    ] {
        let version = image.rsplit(':').next().unwrap();
        set_image_with_env(ns, image, fault).await;
        wait_for_phase(ns, CanaryPhase::Progressing, Duration::from_secs(120)).await;
        let status = stage.outcome(Duration::from_secs(180)).await;
        assert_eq!(status.phase, CanaryPhase::Failed, "{version}: {status:?}");

        // The reason is in the events (published as the rollback's actions, just after its
        // status); the route, the replicas and the primary are as before.
        eventually(
            &format!("{version}: the halt naming {metric} and the failure in events"),
            Duration::from_secs(30),
            || async {
                let notes = ns.event_notes().await?;
                let halted = notes.iter().any(|n| n.starts_with("Halt advancement") && n.contains(metric));
                // v3's failure is the second one.
                let failures = notes.iter().filter(|n| n.starts_with("Canary failed!")).count();
                let failed = failures > usize::from(metric == "request-duration");
                if halted && failed { Ok(()) } else { Err(format!("{notes:#?}")) }
            },
        )
        .await;
        settles_at_weights(ns, (100, 0)).await;
        settles_at_replicas(ns, "podinfo", 0).await;
        let primary = ns.api::<Deployment>().get("podinfo-primary").await.unwrap();
        assert_eq!(image_of(&primary), "serin-testapp:v1");
        only_version_from_now_on(client, "v1").await;
    }

    // The new versions did get traffic and did fail it; the primary never failed a request.
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert!(whole.by_version.get("v2").is_some_and(|n| *n > 0), "{whole:?}");
    assert!(whole.by_version.get("v3").is_some_and(|n| *n > 0), "{whole:?}");
    assert!(whole.server_errors() > 0, "{whole:?}");
    assert!(
        whole.recent_failures.iter().all(|f| f.contains("from version v2")),
        "only the failing canary's answers failed: {:#?}",
        whole.recent_failures
    );
    stage.finish().await;
}

#[tokio::test]
async fn an_ab_test_sends_only_requests_with_the_header_or_the_cookie_to_the_new_version() {
    let mut stage = Stage::new("ab").await;
    let (plain, plain_before) = stage.client("plain", &[]).await;
    let (insider, insider_before) = stage.client("insider", &["x-canary: insider"]).await;
    let (cookie, cookie_before) = stage.client("cookie", &["cookie: theme=dark; canary=always"]).await;
    stage
        .canary(json!({
            "interval": "5s", "threshold": 2, "iterations": 4,
            "match": [
                {"headers": {"x-canary": {"exact": "insider"}}},
                {"headers": {"cookie": {"regex": "^(.*?;\\s*)?(canary=always)(;.*)?$"}}},
            ],
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
        }))
        .await;
    let ns = &stage.ns;
    set_image(ns, "serin-testapp:v2").await;

    // Once the new version serves, matching requests go to it and the rest stay on the primary.
    only_version_from_now_on(insider, "v2").await;
    let (start_plain, start_cookie) = (traffic_report(plain).await.unwrap(), traffic_report(cookie).await.unwrap());
    let during_plain = traffic_after(plain, &start_plain, 80).await;
    let during_cookie = traffic_after(cookie, &start_cookie, 80).await;
    let phase = ns.api::<Canary>().get("podinfo").await.unwrap().status.unwrap().phase;
    assert_eq!(phase, CanaryPhase::Progressing, "measured during the analysis");
    assert_eq!(during_plain.by_version.keys().collect::<Vec<_>>(), ["v1"], "{during_plain:?}");
    assert_eq!(during_cookie.by_version.keys().collect::<Vec<_>>(), ["v2"], "{during_cookie:?}");

    let status = stage.outcome(Duration::from_secs(180)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");
    only_version_from_now_on(plain, "v2").await;
    for (client, before) in [(plain, plain_before), (insider, insider_before), (cookie, cookie_before)] {
        let whole = traffic_report(client).await.unwrap().since(&before);
        assert_eq!(whole.failed(), 0, "{whole:?}");
    }
    stage.finish().await;
}

#[tokio::test]
async fn blue_green_keeps_clients_on_the_old_version_while_the_new_one_sees_mirrored_copies() {
    let mut stage = Stage::new("bluegreen").await;
    let (client, before) = stage.client("client", &[]).await;
    stage.canary(json!({"interval": "5s", "threshold": 2, "iterations": 4, "mirror": true})).await;
    let ns = &stage.ns;

    for (image, mirrored) in [("serin-testapp:v2", true), ("serin-testapp:v3", false)] {
        let version = image.rsplit(':').next().unwrap();
        if !mirrored {
            let patch = json!({"spec": {"analysis": {"mirror": false}}});
            ns.api::<Canary>().patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
        set_image(ns, image).await;
        wait_for_phase(ns, CanaryPhase::Progressing, Duration::from_secs(120)).await;
        let new_pods = ready_target_pods(ns).await;
        if mirrored {
            eventually("the route mirroring to the canary", Duration::from_secs(60), || async {
                let route = ns.api::<HttpRoute>().get("podinfo").await.map_err(|e| e.to_string())?;
                let text = serde_json::to_string(&route.spec).unwrap_or_default();
                if text.contains("requestMirror") { Ok(()) } else { Err(text) }
            })
            .await;
        }
        let start = traffic_report(client).await.unwrap();
        let during = traffic_after(client, &start, 80).await;
        let phase = ns.api::<Canary>().get("podinfo").await.unwrap().status.unwrap().phase;
        assert_eq!(phase, CanaryPhase::Progressing, "{version}: measured during the analysis");
        assert!(!during.by_version.contains_key(version), "{version}: clients got the new version: {during:?}");
        let seen = served_by(&new_pods).await;
        if mirrored {
            assert!(seen >= 20.0, "{version}: the new version saw {seen} mirrored requests");
        } else {
            assert_eq!(seen, 0.0, "{version}: the new version got requests without mirroring");
        }
        let status = stage.outcome(Duration::from_secs(180)).await;
        assert_eq!(status.phase, CanaryPhase::Succeeded, "{version}: {status:?}");
        only_version_from_now_on(client, version).await;
    }
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");
    stage.finish().await;
}

/// `kubectl set image` plus environment variables on the target's container.
async fn set_image_with_env(ns: &TestNamespace, image: &str, vars: [(&str, &str); 2]) {
    let env: Vec<serde_json::Value> = vars.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image, "env": env}]}}}});
    ns.api::<Deployment>().patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
}

/// IPs of the target's (the new version's) ready pods, once there are any.
async fn ready_target_pods(ns: &TestNamespace) -> BTreeSet<Ipv4Addr> {
    eventually("the new version's pods ready", Duration::from_secs(90), || async {
        let pods =
            ns.api::<Pod>().list(&ListParams::default().labels("app=podinfo")).await.map_err(|e| e.to_string())?;
        let ready: BTreeSet<Ipv4Addr> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
            .collect();
        if ready.is_empty() { Err("none yet".to_string()) } else { Ok(ready) }
    })
    .await
}

/// Requests to `/` the pods counted themselves (the sample app's own metrics).
async fn served_by(pods: &BTreeSet<Ipv4Addr>) -> f64 {
    let mut total = 0.0;
    for pod in pods {
        let (_, metrics) = http_get(*pod, 9898, "/metrics").await.unwrap();
        total += metrics
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains("path=\"/\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}
