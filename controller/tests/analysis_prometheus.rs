//! The Prometheus provider against a real Prometheus server scraping a real meshproxy: builtins,
//! the comparison with the primary, templates, every result shape, the availability check, and
//! TLS with basic auth.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serin_controller::analysis::{Catalog, MetricSources, Subject};
use serin_controller::engine::MetricValue;
use serin_controller::outbound::Outbound;
use serin_crds::CanarySpec;
use serin_crds::metric_template::MetricTemplateSpec;
use support::prometheus::{self, BASIC_AUTH_PASSWORD, Options};
use support::value;

fn canary(target: &str, metrics: &str) -> CanarySpec {
    support::canary_spec(target, metrics)
}

fn sources(prometheus: Option<&str>) -> MetricSources {
    MetricSources {
        client: Outbound::new(),
        prometheus: prometheus.map(str::to_string),
        embedded: None,
        min_requests: 10,
        query_timeout: Duration::from_secs(5),
    }
}

async fn measure(
    sources: &MetricSources,
    spec: &CanarySpec,
    catalog: &Catalog,
) -> BTreeMap<String, (MetricValue, Option<MetricValue>)> {
    let subject = Subject { name: "podinfo", namespace: "test", spec };
    sources.measure(subject, catalog).await.into_iter().map(|m| (m.name, (m.value, m.primary))).collect()
}

/// Sends traffic spread over a few scrapes, then waits until Prometheus has seen all of it.
async fn traffic_seen_by(prometheus: &str, proxy: std::net::SocketAddr) {
    for _ in 0..4 {
        support::traffic(proxy, 60).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = sources(Some(prometheus));
    let server = serin_controller::analysis::prometheus::Prometheus::new(prometheus, query.client.clone()).unwrap();
    loop {
        // Every request the proxy served, as Prometheus has it: 240 once the last scrape is in.
        if let MetricValue::Value(v) = server.query("sum(meshproxy_requests_total)").await
            && v >= 240.0
        {
            // One more scrape so rate() windows end after the last request.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return;
        }
        assert!(Instant::now() < deadline, "prometheus never saw the traffic");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtins_leave_out_requests_the_proxys_breaker_shed() {
    let primary = support::app("v1", 0.0, 0).await;
    // Slow enough that four clients at once overlap at the canary, whose breaker lets one through.
    let canary_app = support::app("v2", 0.0, 30).await;
    let breaker = "trafficPolicies:
  - apiVersion: serin.dev/v1alpha1
    kind: TrafficPolicy
    metadata: {name: podinfo-canary, namespace: test}
    spec:
      targetRef: {kind: Service, name: podinfo-canary}
      connectionPool: {maxConnections: 1, maxPendingRequests: 0}
";
    let mesh = support::mesh_with(&(support::mesh_yaml(primary, canary_app, (50, 50)) + breaker)).await;
    let server = prometheus::start(&[mesh.admin], Options::default());
    let sources = sources(Some(&server.address));
    let prometheus =
        serin_controller::analysis::prometheus::Prometheus::new(&server.address, sources.client.clone()).unwrap();
    // Prometheus must have scraped meshproxy before the traffic, or increase() has no start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.query("sum(up)").await != MetricValue::Value(1.0) {
        assert!(Instant::now() < deadline, "prometheus never scraped meshproxy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Spread over a few scrapes, as in traffic_seen_by, so rate() has points to work with.
    let mut shed = 0;
    for _ in 0..4 {
        let clients: Vec<_> = (0..4).map(|_| tokio::spawn(support::traffic(mesh.proxy, 15))).collect();
        for client in clients {
            shed += client.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(shed > 0, "the breaker shed part of the canary's traffic");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(prometheus.query("sum(meshproxy_requests_total)").await, MetricValue::Value(v) if v >= 240.0) {
        assert!(Instant::now() < deadline, "prometheus never saw the traffic");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let policy_blamed = r#"sum(meshproxy_requests_total{backend="podinfo-canary",blame="policy",code="503"})"#;
    assert_eq!(prometheus.query(policy_blamed).await, MetricValue::Value(shed as f64));

    let spec = canary("podinfo", "      - {name: request-success-rate, interval: 1m, thresholdRange: {min: 99}}");
    let results = measure(&sources, &spec, &Catalog::default()).await;
    assert_eq!(value(&results["request-success-rate"].0), 100.0, "{shed} shed requests are not the canary's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_templates_and_result_shapes_against_a_real_prometheus() {
    let primary = support::app("v1", 0.0, 0).await;
    let canary_app = support::app("v2", 0.25, 40).await;
    let mesh = support::mesh(primary, canary_app, (50, 50)).await;
    let server = prometheus::start(&[mesh.admin], Options::default());
    traffic_seen_by(&server.address, mesh.proxy).await;
    let sources = sources(Some(&server.address));

    // Builtins, with the primary measured alongside for the comparison.
    let spec = canary(
        "podinfo",
        r#"
      - {name: request-success-rate, interval: 1m, thresholdRange: {min: 99}, compareToPrimary: {maxDecrease: 1}}
      - {name: request-duration, interval: 1m, thresholdRange: {max: 500}, compareToPrimary: {maxIncrease: 20}}"#,
    );
    let results = measure(&sources, &spec, &Catalog::default()).await;
    let (canary_rate, primary_rate) = &results["request-success-rate"];
    let canary_rate = value(canary_rate);
    assert!((60.0..=90.0).contains(&canary_rate), "a canary failing 25 % has a success rate of {canary_rate}");
    assert_eq!(value(primary_rate.as_ref().unwrap()), 100.0);
    let (canary_p99, primary_p99) = &results["request-duration"];
    assert!(value(canary_p99) >= 40.0, "the canary adds 40 ms; p99 {canary_p99:?}");
    assert!(value(primary_p99.as_ref().unwrap()) < 40.0, "primary p99 {primary_p99:?}");

    // A backend with no requests is no data, naming the floor, for both builtins.
    let idle = canary("other", "      - {name: request-success-rate, interval: 1m, thresholdRange: {min: 99}}");
    let results = measure(&sources, &idle, &Catalog::default()).await;
    assert_eq!(
        results["request-success-rate"].0,
        MetricValue::TooFewRequests("fewer than 10 requests reached other-canary in the last 1m".into())
    );

    // Templates: placeholders, a missing variable, and each answer shape.
    let template = |query: &str| MetricTemplateSpec {
        provider: serde_json::from_value(serde_json::json!({"type": "prometheus"})).unwrap(),
        query: query.to_string(),
    };
    let mut catalog = Catalog::default();
    for (name, query) in [
        (
            "errors",
            r#"sum(increase(meshproxy_requests_total{namespace="{{ namespace }}",backend="{{ target }}-canary",code="{{ variables.code }}"}[{{ interval }}]))"#,
        ),
        ("by-backend", r#"sum by (backend) (meshproxy_requests_total{namespace="{{ namespace }}"})"#),
        ("nan", "vector(0) / vector(0)"),
        ("infinite", "vector(1) / vector(0)"),
        ("scalar", "scalar(vector(7))"),
        ("range", "meshproxy_requests_total[1m]"),
        ("broken", "sum(rate(meshproxy_requests_total[1m]"),
        (
            "backend-latency",
            r#"histogram_quantile(0.5, sum by (le) (rate(meshproxy_request_duration_seconds_bucket{backend="{{ backend }}"}[1m]))) * 1000"#,
        ),
    ] {
        catalog.templates.insert(("test".into(), name.into()), template(query));
    }
    let spec = canary(
        "podinfo",
        r#"
      - {name: errors, templateRef: {name: errors}, templateVariables: {code: "500"}, thresholdRange: {max: 1000}}
      - {name: missing-variable, templateRef: {name: errors}, thresholdRange: {max: 1}}
      - {name: by-backend, templateRef: {name: by-backend}, thresholdRange: {max: 1}}
      - {name: nan, templateRef: {name: nan}, thresholdRange: {max: 1}}
      - {name: infinite, templateRef: {name: infinite}, thresholdRange: {max: 1}}
      - {name: scalar, templateRef: {name: scalar}, thresholdRange: {max: 10}}
      - {name: range, templateRef: {name: range}, thresholdRange: {max: 1}}
      - {name: broken, templateRef: {name: broken}, thresholdRange: {max: 1}}
      - {name: absent, templateRef: {name: absent}, thresholdRange: {max: 1}}
      - {name: backend-latency, templateRef: {name: backend-latency}, compareToPrimary: {maxIncrease: 100}}"#,
    );
    let results = measure(&sources, &spec, &catalog).await;
    let errors = value(&results["errors"].0);
    assert!(errors > 5.0, "the canary's 500s over the window: {errors}");
    let text = |name: &str| format!("{:?}", results[name].0);
    assert!(text("missing-variable").contains("templateVariables has no \\\"code\\\""), "{}", text("missing-variable"));
    assert!(text("by-backend").contains("2 series") && text("by-backend").contains("sum("), "{}", text("by-backend"));
    assert!(matches!(&results["nan"].0, MetricValue::NoData(why) if why.contains("NaN")));
    assert_eq!(results["infinite"].0, MetricValue::Value(f64::INFINITY));
    assert_eq!(results["scalar"].0, MetricValue::Value(7.0));
    assert!(text("range").contains("range vector"), "{}", text("range"));
    assert!(
        text("broken").contains("prometheus refused the query") && text("broken").contains("bad_data"),
        "{}",
        text("broken")
    );
    assert!(text("absent").contains("MetricTemplate test/absent not found"), "{}", text("absent"));
    let (canary_p50, primary_p50) = &results["backend-latency"];
    assert!(value(canary_p50) > value(primary_p50.as_ref().unwrap()), "{canary_p50:?} vs {primary_p50:?}");

    // The availability check.
    let subject = Subject { name: "podinfo", namespace: "test", spec: &spec };
    let problems = sources.check_online(subject, &catalog).await;
    assert_eq!(problems, vec!["metric absent: MetricTemplate test/absent not found".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_hanging_prometheus_is_an_error_naming_it() {
    let spec = canary("podinfo", "      - {name: request-success-rate, thresholdRange: {min: 99}}");
    let subject = Subject { name: "podinfo", namespace: "test", spec: &spec };

    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let results = measure(&sources(Some(&closed)), &spec, &Catalog::default()).await;
    let MetricValue::Error(why) = &results["request-success-rate"].0 else { panic!("{results:?}") };
    assert!(why.starts_with("prometheus is unreachable") && why.contains(&closed), "{why}");
    let problems = sources(Some(&closed)).check_online(subject, &Catalog::default()).await;
    assert!(problems[0].contains("unreachable"), "{problems:?}");

    // Accepts connections and never answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    let mut slow = sources(Some(&hanging_url));
    slow.query_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let results = measure(&slow, &spec, &Catalog::default()).await;
    let MetricValue::Error(why) = &results["request-success-rate"].0 else { panic!("{results:?}") };
    assert!(why.contains("did not answer in time") && why.contains("300ms"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_from_the_templates_secret() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
    let server = prometheus::start(&[], Options { tls_and_auth: Some((cert.pem(), key.serialize_pem())) });
    let sources = sources(None);
    let provider = |skip_verify: bool| {
        serde_json::from_value(serde_json::json!({
            "type": "prometheus",
            "address": server.address,
            "secretRef": {"name": "prom-auth"},
            "insecureSkipVerify": skip_verify,
            "headers": {"X-Scope-OrgID": ["serin"]},
        }))
        .unwrap()
    };
    let mut catalog = Catalog::default();
    catalog.templates.insert(
        ("test".into(), "verified".into()),
        MetricTemplateSpec { provider: provider(false), query: "vector(1)".into() },
    );
    catalog.templates.insert(
        ("test".into(), "unverified".into()),
        MetricTemplateSpec { provider: provider(true), query: "vector(1)".into() },
    );
    let secret = |password: &str| -> BTreeMap<String, String> {
        [("username".to_string(), "serin".to_string()), ("password".to_string(), password.to_string())].into()
    };
    let spec = canary(
        "podinfo",
        r#"
      - {name: verified, templateRef: {name: verified}, thresholdRange: {max: 1}}
      - {name: unverified, templateRef: {name: unverified}, thresholdRange: {max: 1}}"#,
    );

    catalog.secrets.insert(("test".into(), "prom-auth".into()), secret(BASIC_AUTH_PASSWORD));
    let results = measure(&sources, &spec, &catalog).await;
    assert_eq!(results["unverified"].0, MetricValue::Value(1.0));
    let verified = format!("{:?}", results["verified"].0);
    assert!(verified.contains("unreachable") && verified.to_lowercase().contains("certificate"), "{verified}");

    catalog.secrets.insert(("test".into(), "prom-auth".into()), secret("wrong"));
    let results = measure(&sources, &spec, &catalog).await;
    let unauthorized = format!("{:?}", results["unverified"].0);
    assert!(unauthorized.contains("401") && unauthorized.contains("check the provider's secret"), "{unauthorized}");

    catalog.secrets.clear();
    let results = measure(&sources, &spec, &catalog).await;
    assert!(format!("{:?}", results["unverified"].0).contains("secret \\\"prom-auth\\\" not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_carries_the_templates_headers_and_bearer_token() {
    // A receiver stands in for Prometheus here only to see what arrives; it answers no JSON.
    let receiver = support::receiver::Receiver::start().await;
    let provider = serde_json::from_value(serde_json::json!({
        "type": "prometheus",
        "address": receiver.url(""),
        "secretRef": {"name": "prom-token"},
        "headers": {"X-Scope-OrgID": ["team-a", "team-b"]},
    }))
    .unwrap();
    let mut catalog = Catalog::default();
    catalog
        .templates
        .insert(("test".into(), "q".into()), MetricTemplateSpec { provider, query: "up{job=\"{{ target }}\"}".into() });
    catalog.secrets.insert(("test".into(), "prom-token".into()), [("token".to_string(), "t0ken".to_string())].into());
    let spec = canary("podinfo", "      - {name: q, templateRef: {name: q}, thresholdRange: {max: 1}}");
    let results = measure(&sources(None), &spec, &catalog).await;
    let answer = format!("{:?}", results["q"].0);
    assert!(answer.contains("with no Prometheus JSON"), "{answer}");
    let calls = receiver.calls();
    assert_eq!(calls[0].path, "/api/v1/query");
    assert_eq!(calls[0].header("authorization"), Some("Bearer t0ken"));
    assert_eq!(String::from_utf8_lossy(&calls[0].body), "query=up%7Bjob%3D%22podinfo%22%7D");
    assert_eq!(calls[0].header("x-scope-orgid"), Some("team-a, team-b"));
}
