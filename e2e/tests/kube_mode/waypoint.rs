//! Canaries behind the namespace's waypoint: real traffic from a client pod calling the Service by
//! name, weights enforced by meshproxy as a waypoint, and the analysis reading the real Prometheus
//! that scrapes it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use serin_crds::CanaryPhase;
use serin_crds::canary::Canary;
use serin_e2e::traffic::Report;

use super::super::app_service;
use super::super::support::cluster::{
    install_prometheus, install_waypoint, prometheus_query, ready_deployment, start_traffic, traffic_after,
    traffic_pod, traffic_report,
};
use super::super::support::{TestNamespace, apply, eventually, http_get};
use super::{canary, namespace_with_target, set_image, wait_for_phase, weights};

/// Requests per second the client pod sends.
const RATE: u32 = 40;

/// A namespace as users have it before a Canary: the Deployment `podinfo` (v1), their own Service
/// `podinfo` in front of it, the namespace's waypoint, and the rig's Prometheus.
pub(super) struct Stage {
    pub ns: TestNamespace,
    pub prometheus: Ipv4Addr,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Stage {
    pub async fn new(prefix: &str) -> Stage {
        let prometheus = install_prometheus(&super::super::support::rig_client().await).await;
        let stage = Stage::around(namespace_with_target(prefix).await, prometheus).await;
        ready_deployment(&stage.ns, "podinfo").await;
        stage
    }

    /// The stage around `ns`, which holds the target `podinfo` already: the waypoint and the
    /// user's own Service `podinfo` selecting `app=podinfo`.
    pub async fn around(ns: TestNamespace, prometheus: Ipv4Addr) -> Stage {
        install_waypoint(&ns).await;
        Stage::without_waypoint(ns, prometheus).await
    }

    /// The stage around `ns` with the user's Service only: the waypoint comes from elsewhere
    /// (the chart).
    pub async fn without_waypoint(ns: TestNamespace, prometheus: Ipv4Addr) -> Stage {
        let mut own = app_service("podinfo");
        own.metadata.namespace = Some(ns.name.clone());
        apply(&ns.api::<Service>(), &own).await;
        Stage { ns, prometheus, controller: None }
    }

    /// A client pod calling `http://podinfo:9898/` with `headers`; returns its IP once it gets
    /// answers without failures, and the tally at that moment.
    pub async fn client(&self, name: &str, headers: &[&str]) -> (Ipv4Addr, Report) {
        let client = start_traffic(&self.ns, &traffic_pod(name, "http://podinfo:9898/", RATE, headers)).await;
        // Until kube-proxy has the Service's endpoints the client is refused; from the first
        // answer on, nothing may fail.
        eventually("the client answered through the Service", Duration::from_secs(60), || async {
            let report = traffic_report(client).await?;
            if report.answered > 0 { Ok(()) } else { Err(format!("{report:?}")) }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = traffic_report(client).await.unwrap();
        let steady = traffic_after(client, &before, 40).await;
        assert_eq!(steady.failed(), 0, "{steady:?}");
        (client, before)
    }

    /// Applies the Canary with `analysis`, starts the controller (reading the rig's Prometheus),
    /// and waits until the apex Service sends clients to the waypoint.
    pub async fn canary(&mut self, analysis: serde_json::Value) {
        self.canary_object(canary(&self.ns, analysis)).await;
    }

    /// Applies `object`, starts the controller and waits as [`Stage::canary`] does.
    pub async fn canary_object(&mut self, object: Canary) {
        apply(&self.ns.api::<Canary>(), &object).await;
        self.controller = Some(start_controller_with_prometheus(&self.ns, &format!("http://{}:9090", self.prometheus)));
        self.initialized().await;
    }

    /// Applies the Canary with `analysis`, labelled for the controller `instance`, without starting
    /// a controller for it.
    pub async fn apply_canary_for(&self, analysis: serde_json::Value, instance: &str) {
        let mut object = canary(&self.ns, analysis);
        object.metadata.labels =
            Some([(serin_crds::CONTROLLER_INSTANCE_LABEL.to_string(), instance.to_string())].into_iter().collect());
        apply(&self.ns.api::<Canary>(), &object).await;
    }

    /// Waits until the Canary is initialized and its apex Service sends clients to the waypoint.
    pub async fn initialized(&self) {
        wait_for_phase(&self.ns, CanaryPhase::Initialized, Duration::from_secs(120)).await;
        let ns = &self.ns;
        eventually("the apex Service selecting the waypoint", Duration::from_secs(30), || async {
            let apex = ns.api::<Service>().get("podinfo").await.map_err(|e| e.to_string())?.spec.unwrap_or_default();
            let selects = apex.selector.unwrap_or_default();
            let port = apex.ports.unwrap_or_default().first().and_then(|p| p.target_port.clone());
            let wanted = Some(IntOrString::String("proxy".into()));
            if selects.get("app.kubernetes.io/name").map(String::as_str) == Some("serin-waypoint") && port == wanted {
                Ok(())
            } else {
                Err(format!("selector {selects:?}, targetPort {port:?}"))
            }
        })
        .await;
    }

    /// Waits for the run to end; returns its last status.
    pub async fn outcome(&self, limit: Duration) -> serin_crds::CanaryStatus {
        eventually("the run to end", limit, || async {
            let canary = self.ns.api::<Canary>().get("podinfo").await.map_err(|e| e.to_string())?;
            match canary.status {
                Some(status) if matches!(status.phase, CanaryPhase::Succeeded | CanaryPhase::Failed) => Ok(status),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    pub async fn finish(mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
        self.ns.delete().await;
    }
}

#[tokio::test]
async fn step_weights_shift_real_traffic_through_the_waypoint_and_promote_without_a_failed_request() {
    let mut stage = Stage::new("waypoint").await;
    let (client, before) = stage.client("client", &[]).await;
    let steps = [10, 20, 30, 40, 50];
    stage
        .canary(json!({
            "interval": "6s", "threshold": 2, "stepWeights": steps,
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "10s"}],
        }))
        .await;
    let (ns, prometheus) = (&stage.ns, stage.prometheus);

    // A new image: record what the client got at each weight, until the run succeeds.
    set_image(ns, "serin-testapp:v2").await;
    let shares = shares_per_weight(ns, client, Duration::from_secs(240)).await;
    let status = stage.outcome(Duration::from_secs(10)).await;
    assert_eq!(status.phase, CanaryPhase::Succeeded, "{status:?}");

    for step in steps {
        let report = shares.get(&step).unwrap_or_else(|| panic!("no traffic measured at weight {step}: {shares:?}"));
        let canary_share = report.version_shares().get("v2").copied().unwrap_or(0.0);
        println!("weight {step}: {} answers, {canary_share:.1}% from v2", report.answered);
        assert!(report.answered >= 100, "weight {step}: only {} answers", report.answered);
        assert!((canary_share - f64::from(step)).abs() <= 8.0, "weight {step}: v2 served {canary_share:.1}%");
    }

    // The analysis read the waypoint's metrics through Prometheus: the canary's requests are there.
    let query = format!("sum(meshproxy_requests_total{{namespace=\"{}\",backend=\"podinfo-canary\"}})", ns.name);
    let served = prometheus_query(prometheus, &query).await.unwrap();
    let count: f64 = served.first().and_then(|s| s["value"][1].as_str()?.parse().ok()).unwrap_or(0.0);
    assert!(count > 100.0, "Prometheus saw {count} canary requests at the waypoint: {served:?}");

    // After promotion every answer is the new version, and no request failed at any point.
    only_version_from_now_on(client, "v2").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "requests failed during the run: {whole:?}");
    stage.finish().await;
}

/// Waits until 40 answers in a row come from `version`, without a failure; returns them.
pub(super) async fn only_version_from_now_on(client: Ipv4Addr, version: &str) -> Report {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let window = traffic_after(client, &traffic_report(client).await.unwrap(), 40).await;
        let from_version = window.by_version.get(version).copied().unwrap_or(0);
        if from_version == window.answered && window.failed() == 0 {
            return window;
        }
        assert!(Instant::now() < deadline, "answers still not all from {version} after 60s: {window:?}");
    }
}

/// Watches the route's weights and the client's tally until the Canary succeeds (or fails); returns,
/// for each canary weight of the analysis, what the client got while the route held it (the first
/// half second after each change left out, while the waypoint catches up). Measuring ends when the
/// analysis does: while promoting, the primary itself turns into the new version.
async fn shares_per_weight(ns: &TestNamespace, client: std::net::Ipv4Addr, limit: Duration) -> BTreeMap<i32, Report> {
    let deadline = Instant::now() + limit;
    let mut shares: BTreeMap<i32, Report> = BTreeMap::new();
    let mut current = weights(ns).await.1;
    let mut since = Instant::now();
    let mut start: Option<Report> = None;
    // The tally taken just before the last look at the route, when it still held `current`: a step
    // ends there, so a slow poll never counts the next step's answers.
    let mut last_before_check = traffic_report(client).await.unwrap();
    loop {
        assert!(Instant::now() < deadline, "the run did not finish within {limit:?}; shares so far {shares:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let report = traffic_report(client).await.unwrap();
        let phase = ns.api::<Canary>().get("podinfo").await.unwrap().status.map(|s| s.phase);
        let analysing = phase == Some(CanaryPhase::Progressing);
        let now = weights(ns).await.1;
        if now != current || !analysing {
            if let Some(start) = start.take() {
                shares.insert(current, last_before_check.since(&start));
            }
            current = now;
            since = Instant::now();
        } else if start.is_none() && since.elapsed() >= Duration::from_millis(500) {
            start = Some(report.clone());
        }
        last_before_check = report;
        if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            return shares;
        }
    }
}

/// The controller for this test's namespace, with the rig's Prometheus as its metrics server.
fn start_controller_with_prometheus(ns: &TestNamespace, prometheus: &str) -> tokio::task::JoinHandle<()> {
    let context = super::controller_context(ns, Some(prometheus.to_string()));
    tokio::spawn(serin_controller::kube::run(std::sync::Arc::new(context)))
}

#[tokio::test]
async fn the_waypoint_replaced_under_traffic_fails_no_request() {
    let mut stage = Stage::new("waypoint-restart").await;
    let (client, before) = stage.client("client", &[]).await;
    stage.canary(json!({"interval": "5s", "threshold": 2, "stepWeight": 50, "maxWeight": 50})).await;
    let ns = &stage.ns;
    only_version_from_now_on(client, "v1").await;
    admin_is_out_of_reach(ns).await;
    let old: Vec<String> = waypoint_pods(ns).await;

    // `kubectl rollout restart deployment/serin-waypoint`: every waypoint pod is replaced.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"serin.dev/restarted-at": "now"}}}}});
    ns.api::<Deployment>()
        .patch("serin-waypoint", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(&patch))
        .await
        .unwrap();
    eventually("every waypoint pod replaced", Duration::from_secs(120), || async {
        let now = waypoint_pods(ns).await;
        let replaced = now.len() == 2 && now.iter().all(|p| !old.contains(p));
        if replaced { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    ready_deployment(ns, "serin-waypoint").await;
    only_version_from_now_on(client, "v1").await;
    let whole = traffic_report(client).await.unwrap().since(&before);
    assert_eq!(whole.failed(), 0, "{whole:?}");
    stage.finish().await;
}

/// From outside a waypoint pod only its metrics port answers, and only with metrics and health:
/// the admin API (which would show every route) listens on the pod's loopback alone.
async fn admin_is_out_of_reach(ns: &TestNamespace) {
    let pods = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=serin-waypoint"))
        .await
        .unwrap();
    for ip in pods.items.iter().filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse::<Ipv4Addr>().ok()) {
        let admin = tokio::net::TcpStream::connect((ip, 4191)).await;
        assert!(admin.is_err(), "the admin port of waypoint {ip} answers from outside the pod");
        assert_eq!(http_get(ip, 4190, "/ready").await.unwrap().0, 200);
        assert_eq!(http_get(ip, 4190, "/config").await.unwrap().0, 404, "the metrics port serves no config");
    }
}

async fn waypoint_pods(ns: &TestNamespace) -> Vec<String> {
    let pods = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=serin-waypoint"))
        .await
        .unwrap();
    pods.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}
