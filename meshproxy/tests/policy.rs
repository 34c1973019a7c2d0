//! TrafficPolicy applied to real traffic: retries, per-try timeouts, the circuit breaker, outlier
//! ejection, faults, rate limits and load balancing, against scripted backends on loopback.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{ScriptedBackend, app_config, client, endpoint_gauge, get, proxy, scrape};

fn policy(spec: &str) -> String {
    format!(
        "  - apiVersion: serin.dev/v1alpha1\n    kind: TrafficPolicy\n    metadata: {{name: app-a-policy, namespace: test}}\n    spec:\n      targetRef: {{kind: Service, name: app-a}}\n{spec}"
    )
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn retries_pass_a_failing_first_attempt_and_stop_at_the_limit() {
    // Every other request fails: with retries, every client request succeeds on its second try.
    let flaky = ScriptedBackend::start(
        "flaky",
        Arc::new(|n, _| (if n % 2 == 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, Duration::ZERO)),
    )
    .await;
    let broken =
        ScriptedBackend::start("broken", Arc::new(|_, _| (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO))).await;
    let retries = policy("      retries: {attempts: 3, retryOn: [5xx]}\n");
    let proxy_flaky = proxy(&app_config(&[flaky.addr], &[broken.addr], (1, 0), "", &retries)).await;
    let client = client();
    for _ in 0..20 {
        let (status, _, _) = get(&client, proxy_flaky.addr, "app.test", "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(flaky.count(), 40, "each request took exactly two attempts");

    // A backend that always fails gets exactly `attempts` tries per request, and the client its answer.
    let proxy_broken = proxy(&app_config(&[broken.addr], &[flaky.addr], (1, 0), "", &retries)).await;
    for _ in 0..5 {
        let (status, _, body) = get(&client, proxy_broken.addr, "app.test", "/", &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("broken"), "the endpoint's own answer is passed on: {body}");
    }
    assert_eq!(broken.count(), 15);

    // A body larger than the replay buffer is streamed once and never retried.
    let large = Request::post(format!("http://{}/upload", proxy_broken.addr))
        .header("host", "app.test")
        .body(Full::new(Bytes::from(vec![b'x'; 100 * 1024])))
        .unwrap();
    let response = client.request(large).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(broken.count(), 16, "a 100 KiB body is not kept for a retry");
    // A small one is replayed whole.
    let small = Request::post(format!("http://{}/upload", proxy_broken.addr))
        .header("host", "app.test")
        .body(Full::new(Bytes::from(vec![b'x'; 1024])))
        .unwrap();
    assert_eq!(client.request(small).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(broken.count(), 19);
    let lengths: Vec<String> = broken.seen()[16..].iter().map(|s| header(&s.headers, "content-length")).collect();
    assert_eq!(lengths, ["1024", "1024", "1024"]);

    let scrape = scrape(proxy_broken.admin).await;
    let retried: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == serin_meshproxy_api::metrics::RETRIES_TOTAL)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(retried, 12.0, "5 requests x 2 retries, plus 2 for the small POST");
}

#[tokio::test]
async fn a_per_try_timeout_fires_and_the_next_attempt_answers() {
    // The first request hangs for 5 s; the rest answer at once.
    let sticky = ScriptedBackend::start(
        "sticky",
        Arc::new(|n, _| (StatusCode::OK, if n == 0 { Duration::from_secs(5) } else { Duration::ZERO })),
    )
    .await;
    let slow = ScriptedBackend::start("slow", Arc::new(|_, _| (StatusCode::OK, Duration::from_secs(5)))).await;
    let retries = policy("      retries: {attempts: 2, perTryTimeout: 200ms, retryOn: [gateway-error]}\n");
    let client = client();

    let first = proxy(&app_config(&[sticky.addr], &[slow.addr], (1, 0), "", &retries)).await;
    let started = Instant::now();
    let (status, _, body) = get(&client, first.addr, "app.test", "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""n":1"#), "the second attempt answered: {body}");
    assert!(started.elapsed() < Duration::from_secs(5), "the hanging attempt was abandoned");

    let second = proxy(&app_config(&[slow.addr], &[sticky.addr], (1, 0), "", &retries)).await;
    let (status, headers, _) = get(&client, second.addr, "app.test", "/", &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let why = header(&headers, "x-meshproxy-error");
    assert!(why.contains("per-try timeout of 200ms") && why.contains("attempt 2 of 2"), "{why}");
    assert_eq!(slow.count(), 2);
}

#[tokio::test]
async fn the_breaker_sheds_load_with_503_and_recovers() {
    let slow = ScriptedBackend::start("slow", Arc::new(|_, _| (StatusCode::OK, Duration::from_millis(1500)))).await;
    let breaker = policy("      connectionPool: {maxConnections: 2, maxPendingRequests: 1}\n");
    let proxy = proxy(&app_config(&[slow.addr], &[slow.addr], (1, 0), "", &breaker)).await;
    let client = client();

    let burst: Vec<_> = (0..8)
        .map(|_| {
            let (client, addr) = (client.clone(), proxy.addr);
            tokio::spawn(async move { get(&client, addr, "app.test", "/", &[]).await })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for request in burst {
        let (status, headers, _) = request.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    header(&headers, "x-meshproxy-error")
                        .starts_with("policy: circuit breaker of TrafficPolicy test/app-a-policy")
                );
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, shed), (3, 5), "two in flight and one waiting get through; the rest are shed");
    assert_eq!(slow.count(), 3, "shed requests never reach the endpoint");

    // With the load gone the breaker closes again.
    for _ in 0..3 {
        assert_eq!(get(&client, proxy.addr, "app.test", "/", &[]).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_ejected_endpoint_gets_no_traffic_until_its_ejection_ends() {
    let good = ScriptedBackend::ok("good").await;
    let bad = ScriptedBackend::start("bad", Arc::new(|_, _| (StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO))).await;
    let outlier = policy(
        "      outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 2s, maxEjectionPercent: 50}\n      loadBalancer: {algorithm: round-robin}\n",
    );
    let proxy = proxy(&app_config(&[good.addr, bad.addr], &[good.addr], (1, 0), "", &outlier)).await;
    let client = client();

    // Round robin alternates until the bad endpoint has failed twice in a row.
    for _ in 0..4 {
        get(&client, proxy.addr, "app.test", "/", &[]).await;
    }
    assert_eq!(bad.count(), 2);
    let ejected_at = Instant::now();
    let ejected = |scrape: &prometheus_parse::Scrape| {
        endpoint_gauge(scrape, serin_meshproxy_api::metrics::ENDPOINT_EJECTED, bad.addr)
    };
    assert_eq!(ejected(&scrape(proxy.admin).await), Some(1.0));

    let mut sent = 0;
    while ejected_at.elapsed() < Duration::from_millis(1500) && sent < 200 {
        let (status, _, _) = get(&client, proxy.addr, "app.test", "/", &[]).await;
        assert_eq!(status, StatusCode::OK, "only the good endpoint answers while the bad one is ejected");
        sent += 1;
    }
    assert!(sent >= 10, "sent {sent}");
    assert_eq!(bad.count(), 2, "no request reached the ejected endpoint");

    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(ejected_at.elapsed())).await;
    assert_eq!(ejected(&scrape(proxy.admin).await), Some(0.0));
    for _ in 0..6 {
        get(&client, proxy.addr, "app.test", "/", &[]).await;
    }
    assert!(bad.count() > 2, "after its ejection the endpoint gets traffic again");
}

#[tokio::test]
async fn faults_and_rate_limits_answer_for_the_endpoint() {
    let app = ScriptedBackend::ok("app").await;
    let client = client();

    let aborts = policy("      fault: {abort: {percent: 100, httpStatus: 503}}\n");
    let proxy_abort = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &aborts)).await;
    let (status, headers, _) = get(&client, proxy_abort.addr, "app.test", "/", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&headers, "x-meshproxy-error"), "fault: fault injected by TrafficPolicy test/app-a-policy");
    assert_eq!(app.count(), 0);

    let half = policy("      fault: {abort: {percent: 50, httpStatus: 500}}\n");
    let proxy_half = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &half)).await;
    let mut failed = 0;
    for _ in 0..1000 {
        if get(&client, proxy_half.addr, "app.test", "/", &[]).await.0 == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        }
    }
    assert!((400..=600).contains(&failed), "{failed} of 1000 aborted at 50 %");
    assert_eq!(app.count(), 1000 - failed);

    let delays = policy("      fault: {delay: {percent: 100, fixedDelay: 300ms}}\n");
    let proxy_delay = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &delays)).await;
    let started = Instant::now();
    assert_eq!(get(&client, proxy_delay.addr, "app.test", "/", &[]).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let limited = policy("      rateLimit: {requestsPerSecond: 0.001, burst: 5}\n");
    let proxy_limited = proxy(&app_config(&[app.addr], &[app.addr], (1, 0), "", &limited)).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&client, proxy_limited.addr, "app.test", "/", &[]).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 15);
}

#[tokio::test]
async fn p2c_over_peak_ewma_avoids_the_slow_endpoint() {
    let fast = ScriptedBackend::ok("fast").await;
    let slow = ScriptedBackend::start("slow", Arc::new(|_, _| (StatusCode::OK, Duration::from_millis(40)))).await;
    // No policy: P2C over peak EWMA is the default.
    let proxy = proxy(&app_config(&[fast.addr, slow.addr], &[fast.addr], (1, 0), "", "  []")).await;
    let client = client();
    for _ in 0..100 {
        get(&client, proxy.addr, "app.test", "/", &[]).await;
    }
    assert!(fast.count() >= 85, "fast {} slow {}", fast.count(), slow.count());
}
