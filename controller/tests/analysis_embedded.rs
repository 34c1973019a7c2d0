//! The embedded provider: meshproxy's own `/metrics`, scraped by the controller, with no
//! Prometheus. Counts are exact here, so the values are too.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serin_controller::analysis::scrape::MeshproxyScraper;
use serin_controller::analysis::{Catalog, MetricSources, Subject};
use serin_controller::engine::MetricValue;
use serin_controller::outbound::Outbound;
use serin_crds::CanarySpec;
use serin_crds::metric_template::MetricTemplateSpec;
use support::value;

fn canary(metrics: &str) -> CanarySpec {
    support::canary_spec("podinfo", metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_from_meshproxys_own_metrics_with_a_request_floor() {
    let primary = support::app("v1", 0.0, 0).await;
    let canary_app = support::app("v2", 0.3, 25).await;
    // Everything to the canary first, so the client's count of 5xx is the canary's.
    let mesh = support::mesh(primary, canary_app, (0, 100)).await;
    let client = Outbound::new();
    let scraper = Arc::new(MeshproxyScraper::new(
        vec![format!("http://{}", mesh.admin)],
        Duration::from_secs(120),
        client.clone(),
    ));
    let sources = MetricSources {
        client,
        prometheus: None,
        embedded: Some(scraper.clone()),
        min_requests: 20,
        query_timeout: Duration::from_secs(5),
    };
    let spec = canary(
        r#"
      - {name: request-success-rate, interval: 1m, thresholdRange: {min: 99}, compareToPrimary: {maxDecrease: 1}}
      - {name: request-duration, interval: 1m, thresholdRange: {max: 500}}
      - {name: rate, templateRef: {name: rate}, thresholdRange: {min: 0}}
      - {name: p50, templateRef: {name: p50}, thresholdRange: {max: 1000}}"#,
    );
    let mut catalog = Catalog::default();
    for (name, query) in [("rate", "request-rate"), ("p50", "request-duration-p50"), ("bad", "errors please")] {
        let provider = serde_json::from_value(serde_json::json!({"type": "meshproxy"})).unwrap();
        catalog.templates.insert(("test".into(), name.into()), MetricTemplateSpec { provider, query: query.into() });
    }
    let subject = Subject { name: "podinfo", namespace: "test", spec: &spec };
    assert_eq!(sources.check_online(subject, &catalog).await, Vec::<String>::new());

    // One sample so far: the source is warming up (a fresh controller), and it says why.
    let first = sources.measure(subject, &catalog).await;
    assert!(matches!(&first[0].value, MetricValue::Warming(why) if why.contains("since it started")), "{first:?}");

    // Too few requests is never a pass; before the scraper has covered the window it is not yet
    // evidence either.
    let failed_early = support::traffic(mesh.proxy, 5).await;
    let few = sources.measure(subject, &catalog).await;
    let MetricValue::Warming(why) = &few[0].value else { panic!("{few:?}") };
    assert!(why.starts_with("only 5 requests reached podinfo-canary"), "{why}");
    assert!(why.contains("of the 1m window since it started"), "{why}");

    let failed = support::traffic(mesh.proxy, 200).await;
    let results = sources.measure(subject, &catalog).await;
    // The window holds all 205 requests.
    let expected = 100.0 * (205 - failed - failed_early) as f64 / 205.0;
    let success = value(&results[0].value);
    assert!((success - expected).abs() < 1e-9, "success rate {success}, expected {expected}");
    assert!(success < 90.0, "a canary failing 30 % is below 90: {success}");
    // The primary got nothing: its comparison side is no data.
    assert!(matches!(&results[0].primary, Some(MetricValue::Warming(why)) if why.contains("podinfo-primary")));
    let p99 = value(&results[1].value);
    assert!((25.0..=100.0).contains(&p99), "p99 of a backend adding 25 ms: {p99}");
    assert!(value(&results[2].value) > 0.0);
    assert!(value(&results[3].value) >= 25.0);

    // Once the scraper has covered a (short) window, a thin one is too few requests: evidence the
    // engine weighs against thinTrafficTimeout.
    let short = canary("      - {name: request-success-rate, interval: 1s, thresholdRange: {min: 99}}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let results = sources.measure(Subject { name: "podinfo", namespace: "test", spec: &short }, &catalog).await;
    let MetricValue::TooFewRequests(why) = &results[0].value else { panic!("{results:?}") };
    assert!(why.starts_with("only 0 requests reached podinfo-canary"), "{why}");

    let bad = canary("      - {name: bad, templateRef: {name: bad}, thresholdRange: {max: 1}}");
    let results = sources.measure(Subject { name: "podinfo", namespace: "test", spec: &bad }, &catalog).await;
    assert!(matches!(&results[0].value, MetricValue::Error(why) if why.contains("a meshproxy query is one of")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_meshproxy_is_reported_by_the_availability_check() {
    let spec = canary("      - {name: request-success-rate, thresholdRange: {min: 99}}");
    let client = Outbound::new();
    let target = format!("http://127.0.0.1:{}", support::free_port());
    let scraper = Arc::new(MeshproxyScraper::new(vec![target.clone()], Duration::from_secs(60), client.clone()));
    let sources = MetricSources {
        client,
        prometheus: None,
        embedded: Some(scraper),
        min_requests: 1,
        query_timeout: Duration::from_secs(1),
    };
    let subject = Subject { name: "podinfo", namespace: "test", spec: &spec };
    let problems = sources.check_online(subject, &Catalog::default()).await;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("scraping meshproxy") && problems[0].contains(&target), "{problems:?}");
    let results = sources.measure(subject, &Catalog::default()).await;
    assert!(matches!(&results[0].value, MetricValue::Warming(why) if why.contains("scraped 0 time(s)")), "{results:?}");
}
